r"""The explicit per-start engine of :mod:`flowsim.ensemble.explicit`, compiled: a batched
gradient flow (or any autonomous field given as formulas) with ``backend="numba"``.

Each start runs alone through its own steps (steps inner, starts outer): scipy's first step,
the embedded pair's stages, scipy's error norm and step-size rule, steps cut to land on the
output times, and after each step the batch engines' stop rules in their order: past
``max_norm`` (diverged), |f| <= ``gtol`` (converged) on an accepted step; a step that
underflowed on a rejected one and a spent budget (a finite-time blow-up where the state is
far out, else failed); the stiffness watch every 200 steps (the spectral radius of the
Hessian, from ``numpy.linalg.eigvalsh`` as the numpy engine takes it). The outputs, stop
times, step counts, statuses and messages are those of
:func:`flowsim.ensemble.explicit.explicit`; the numbers differ in rounding only (sympy's
printed formulas against symengine's kernels), so a step whose error sits at the threshold
can go the other way, after which that start's path differs within the tolerance.
"""
from __future__ import annotations

import math

import numpy as np

from .. import stops
from ..results import Status
from .codegen import LANES, _inline
from .kernel import _jit

__all__ = ["engine_of", "METHODS", "run_field", "batch_engine", "LANES"]

#: The scipy names this engine runs (the explicit pairs; implicit ones stay on numpy).
METHODS = ("RK23", "RK45", "DOP853")
#: A start's code after the engine: how it ended.
GOES, REACHED, DIVERGED, CONVERGED, BLOWN, TINY, OVER, STIFF, GUARD = range(9)
#: Accepted steps between two stiffness checks, and the steps to go that make one stiff
#: (the values of :mod:`flowsim.ensemble.explicit` for a named explicit method).
STIFF_CHECK_EVERY, STIFF_STEPS = 200, 50_000

def engine_of(field, attempt, matrix, stationarity, guard, n, tableau, watch, own_speed,
               guarded):
    """The per-start loop for ``tableau`` (an embedded pair of S stages) over lanes of
    starts; n, the tableau and the flags are constants of the compiled code: the stiffness
    ``watch`` (with ``matrix``), the ``stationarity`` tested against gtol (``own_speed``;
    else |f|) and the ``guard`` (``guarded``)."""
    S = len(tableau.B)
    has_low = tableau.E_low is not None
    order, stability = tableau.error_order, float(tableau.stability)
    exponent = -1.0 / (order + 1)

    @_inline
    def _min(a, b):   # numpy's minimum: NaN wins
        return a if a != a or a < b else b

    @_inline
    def _squares(v):
        s = 0.0
        for j in range(n):
            s += v[j] * v[j]
        return s

    @_inline
    def _rms(v):
        s = 0.0
        for j in range(n):
            s += v[j] * v[j]
        return math.sqrt(s / n)

    @_jit
    def begin(s, l, Y0, C, t0, t_end, reach, rtol, atol, dense, Yv, Fv, lane, t, h, nsteps,
              count, jo, start_norm, out, sout, fout, work):
        """Start s into lane l: f at its start, scipy's first step (Hairer, Norsett and
        Wanner II.4), the outputs at t0."""
        y, F, stage, scale, err, k1 = work[0], work[1], work[2], work[3], work[4], work[5]
        for j in range(n):
            y[j] = Y0[s, j]
        field(y, C, F)
        for j in range(n):
            scale[j] = atol + abs(y[j]) * rtol
            stage[j] = y[j] / scale[j]
            err[j] = F[j] / scale[j]
        d0, d1 = _rms(stage), _rms(err)
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / (d1 if d1 > 0 else 1.0)
        h0 = _min(h0, t_end - t0)
        for j in range(n):
            stage[j] = y[j] + h0 * F[j]
        field(stage, C, k1)
        for j in range(n):
            err[j] = (k1[j] - F[j]) / scale[j]
        d2 = _rms(err) / h0
        big = d2 if d1 < d2 or d2 != d2 else d1
        h1 = max(1e-6, h0 * 1e-3) if big <= 1e-15 else \
            (0.01 / (big if big > 0 else 1.0)) ** (1.0 / (order + 1))
        lane[l], t[l], h[l] = s, t0, _min(_min(100 * h0, h1), t_end - t0)
        nsteps[l], count[l], start_norm[l] = 0, 2, math.sqrt(_squares(y))
        for j in range(n):
            Yv[j, l], Fv[j, l] = y[j], F[j]
        k = 0
        while k < reach.shape[0] and t0 >= reach[k]:   # the outputs at the start
            for j in range(n):
                out[s, k, j] = y[j]
                if dense:
                    fout[s, k, j] = F[j]
            sout[s, k] = 0
            k += 1
        jo[l] = k

    @_jit
    def engine(Y0, C, t0, t_end, t_out, reach, rtol, atol, max_steps, use_gtol, gtol,
               max_norm, stiff_steps, dense, out, sout, fout, code, t_stop, steps_taken,
               values, evals):
        m, K = Y0.shape[0], t_out.shape[0]
        quick = max_norm / math.sqrt(n)
        work = np.empty((6, n))
        y = work[0]
        H = np.empty(n * n)
        lane = np.full(LANES, -1)
        t, h, hs, start_norm = (np.zeros(LANES), np.zeros(LANES), np.zeros(LANES),
                                np.zeros(LANES))
        nsteps, count, jo = (np.zeros(LANES, dtype=np.int64), np.zeros(LANES, dtype=np.int64),
                             np.zeros(LANES, dtype=np.int64))
        lands = np.zeros(LANES, dtype=np.bool_)
        Yv, Fv = np.zeros((n, LANES)), np.zeros((n, LANES))
        Yn, Fn, R = np.zeros((n, LANES)), np.zeros((n, LANES)), np.zeros((3, LANES))
        nxt, active = 0, 0
        for l in range(LANES):   # a start into every lane
            while nxt < m and code[nxt] != GOES:
                nxt += 1
            if nxt < m:
                begin(nxt, l, Y0, C, t0, t_end, reach, rtol, atol, dense, Yv, Fv, lane, t,
                      h, nsteps, count, jo, start_norm, out, sout, fout, work)
                nxt += 1
                active += 1
        while active > 0:
            for l in range(LANES):
                hs[l] = 0.0
                if lane[l] >= 0 and jo[l] < K:
                    gap = t_out[jo[l]] - t[l]
                    lands[l] = h[l] >= gap
                    hs[l] = _min(h[l], gap)
            attempt(hs, Yv, Fv, C, rtol, atol, Yn, Fn, R)   # every lane's step at once
            for l in range(LANES):
                s = lane[l]
                if s < 0:
                    continue
                ended = GOES
                if jo[l] >= K:
                    ended = REACHED
                else:
                    count[l] += S
                    norm = math.sqrt(R[0, l] / n)
                    if has_low:   # DOP853's blend of its 5th and 3rd order errors
                        low2 = math.sqrt(R[1, l] / n) ** 2
                        norm = 0.0 if norm == 0 else \
                            norm ** 2 / math.sqrt(norm ** 2 + 0.01 * low2)
                    finite = math.isfinite(R[2, l])
                    ok = norm <= 1.0 and finite
                    factor = 10.0 if norm == 0 else \
                        min(max(0.9 * norm ** exponent, 0.2), 10.0)
                    if not (math.isfinite(factor) and finite) or norm != norm:
                        factor = 0.2
                    if not ok:
                        factor = min(factor, 1.0)
                    h_next = hs[l] * factor
                    h[l] = max(h_next, h[l]) if ok and hs[l] < h[l] and factor >= 1.0 \
                        else h_next
                    for j in range(n):
                        y[j] = Yn[j, l] if ok else Yv[j, l]
                    if ok:
                        t[l] = t[l] + hs[l]
                        for j in range(n):
                            Yv[j, l], Fv[j, l] = Yn[j, l], Fn[j, l]
                        nsteps[l] += 1
                        while lands[l] and jo[l] < K and t[l] >= reach[jo[l]]:
                            for j in range(n):   # the output it reached
                                out[s, jo[l], j] = y[j]
                                if dense:
                                    fout[s, jo[l], j] = Fv[j, l]
                            sout[s, jo[l]] = nsteps[l]
                            jo[l] += 1
                        top = 0.0
                        for j in range(n):
                            if not abs(y[j]) <= top:
                                top = abs(y[j])
                        if not top <= quick:
                            r = math.sqrt(_squares(y))
                            if not r < math.inf and top < math.inf:
                                r = 0.0
                                for j in range(n):
                                    r += (y[j] / top) ** 2
                                r = top * math.sqrt(r)
                            if not r <= max_norm:
                                ended, values[s] = DIVERGED, r
                        if ended == GOES and use_gtol:
                            if own_speed:
                                g = stationarity(y, C)
                            else:
                                g = 0.0
                                for j in range(n):
                                    g += Fv[j, l] * Fv[j, l]
                                g = math.sqrt(g)
                            if g <= gtol:
                                ended, values[s] = CONVERGED, g
                        if ended == GOES and guarded and guard(y, C) != 0:
                            ended = GUARD
                    elif not hs[l] > 10 * np.spacing(max(abs(t[l]), 1.0)):
                        ended = TINY
                    if (ended == GOES or ended == TINY) and nsteps[l] >= max_steps:
                        ended = OVER if ended == GOES else TINY
                    if ended == TINY or ended == OVER:
                        radius = math.sqrt(_squares(y))
                        if radius > 10 * max(1.0, start_norm[l]):
                            ended, values[s] = BLOWN, radius
                    if ended == GOES and watch and nsteps[l] > 0 and \
                            nsteps[l] % STIFF_CHECK_EVERY == 0 and \
                            (t_end - t[l]) / h[l] > stiff_steps:
                        matrix(y, C, H)
                        rho = np.max(np.abs(np.linalg.eigvalsh(H.reshape(n, n))))
                        if h[l] * rho >= 0.5 * stability:
                            ended = STIFF
                    if ended == GOES and jo[l] >= K:
                        ended = REACHED
                if ended == GOES:
                    continue
                for jj in range(jo[l], K):   # held at its last state, at rest
                    for j in range(n):
                        out[s, jj, j] = Yv[j, l]
                        if dense:
                            fout[s, jj, j] = 0.0
                    sout[s, jj] = nsteps[l]
                code[s], t_stop[s], steps_taken[s], evals[s] = ended, t[l], nsteps[l], count[l]
                lane[l] = -1
                active -= 1
                while nxt < m and code[nxt] != GOES:
                    nxt += 1
                if nxt < m:   # the next start takes the lane
                    begin(nxt, l, Y0, C, t0, t_end, reach, rtol, atol, dense, Yv, Fv, lane,
                          t, h, nsteps, count, jo, start_norm, out, sout, fout, work)
                    nxt += 1
                    active += 1
    return engine


def run_field(compiled, Y0, t0, t_end, tableau, rtol, atol, t_out, max_steps, gtol,
              max_norm, dense, outputs):
    """The starts ``Y0`` (m, n) through the compiled engine of ``tableau``; writes their
    outputs into ``outputs`` (``out``, ``sout``, ``fout``, as
    :class:`~flowsim.ensemble.run.Outputs` holds them) and returns ``(status, message,
    steps_taken, t_stop, evaluations)``, each of shape (m,)."""
    m = Y0.shape[0]
    out, sout, fout = outputs
    code = np.zeros(m, dtype=np.int64)
    t_stop, steps_taken = np.zeros(m), np.zeros(m, dtype=np.int64)
    values, evals = np.zeros(m), np.zeros(m, dtype=np.int64)
    reach = t_out - 1e-12 * np.maximum(1.0, np.abs(t_out))
    with np.errstate(all="ignore"):
        compiled.engine(tableau)(
            np.ascontiguousarray(Y0, dtype=float), compiled.constants, float(t0),
            float(t_end), t_out, reach, float(rtol), float(atol), int(max_steps),
            gtol is not None, -1.0 if gtol is None else float(gtol), float(max_norm),
            STIFF_STEPS, dense, out, sout, fout if dense else np.empty((1, 1, 1)),
            code, t_stop, steps_taken, values, evals)
    status = stops.every_start(m, Status.REACHED_END)
    message = stops.every_start(m, "")
    for s in np.flatnonzero(code > REACHED):
        status[s], message[s] = _ending(code[s], values[s], t_stop[s], gtol, max_norm,
                                        max_steps)
    return status, message, steps_taken, t_stop, evals, code


def _ending(code, value, t, gtol, max_norm, max_steps):
    """The status and message of a start that ended with ``code``, in the numpy engine's
    words."""
    if code == DIVERGED:
        return Status.DIVERGED, stops.diverged(value, max_norm)
    if code == CONVERGED:
        return Status.CONVERGED, stops.converged(value, gtol)
    if code == BLOWN:
        return Status.DIVERGED, (f"the path blows up in finite time: |state| = {value:.3g} "
                                 f"at t = {t:.6g}, where the steps could go no further")
    if code == TINY:
        return Status.FAILED, stops.step_underflow(t)
    if code == OVER:
        return Status.FAILED, f"spent its max_steps = {max_steps} steps"
    return Status.FAILED, (f"the flow is stiff here: |h lambda_max| is held at the explicit "
                           f"method's stability limit with more than {STIFF_STEPS:,} steps to "
                           "go; use an implicit method (BDF, Radau) or method='auto'")


def batch_engine(loss, compiled, why=None):
    """The engine of ``compiled`` (a :class:`CompiledField` of ``loss``) as
    :func:`flowsim.ensemble.run.batch_run` takes it (``engine=``): ``engine(Y0, t0, t_end,
    method, rtol, atol, t_out, budget, gtol, max_norm, dense)`` -> the
    :class:`~flowsim.ensemble.run.Outputs` of the starts Y0, the loss charged with the
    evaluations the numpy engine makes (f at each stage; the stationarity and the guard at
    each step). ``why(x)`` is the message of a start its guard stopped at x."""
    from ..ensemble.explicit import TABLEAUS
    from ..ensemble.run import Outputs

    def engine(Y0, t0, t_end, method, rtol, atol, t_out, budget, gtol, max_norm, dense):
        m, K = Y0.shape[0], t_out.size
        tableau = TABLEAUS[method]
        ens = Outputs.empty(m, K, Y0.shape[1], dense)
        status, message, steps, t_stop, evals, code = run_field(
            compiled, Y0, t0, t_end, tableau, rtol, atol, t_out, budget, gtol, max_norm,
            dense, ens.rows(slice(None)))
        for s in np.flatnonzero(code == GUARD):   # held where the guard stopped it
            status[s], message[s] = Status.FAILED, why(ens.out[s, -1])
        ens.status[:], ens.message[:] = status, message
        ens.steps_taken[:], ens.t_stop[:] = steps, t_stop
        per = {"field": int(evals.sum())}
        per["guard"] = per["stationarity"] = (per["field"] - 2 * m) // len(tableau.B)
        if gtol is None:
            per["stationarity"] = 0
        spent = {"value": 0, "grad": 0, "hess": 0}
        for part, calls in compiled.calls.items():
            for kind, count in calls.items():
                spent[kind] += count * per[part]
        loss.charge(**spent)
        return ens
    return engine
