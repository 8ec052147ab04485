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
import sympy as sp

from .. import stops
from ..loss._audit import lambdify_audited
from ..results import Status
from .kernel import MAX_OUTPUTS, _jit, numba, require

# small functions inlined into the engine at numba's level (LLVM does not always)
_inline = numba.njit(error_model="numpy", inline="always") if numba is not None else _jit

__all__ = ["CompiledField", "compiled_field", "METHODS", "run_field", "batch_engine"]

#: The scipy names this engine runs (the explicit pairs; implicit ones stay on numpy).
METHODS = ("RK23", "RK45", "DOP853")
#: A start's code after the engine: how it ended.
GOES, REACHED, DIVERGED, CONVERGED, BLOWN, TINY, OVER, STIFF = range(8)
#: Accepted steps between two stiffness checks, and the steps to go that make one stiff
#: (the values of :mod:`flowsim.ensemble.explicit` for a named explicit method).
STIFF_CHECK_EVERY, STIFF_STEPS = 200, 50_000

_FIELD_TEMPLATE = """def field(y, C, out):
    r = core({args})
{writes}
"""


def _vector_function(args, exprs, reads, name="field"):
    """A compiled ``field(y, C, out)`` writing the formulas ``exprs`` of ``args`` (read as
    ``reads`` from y and C) into ``out``; from a fixed template and integers only."""
    core = _inline(lambdify_audited(args, exprs, ["math"], as_tuple=True))
    writes = "\n".join(f"    out[{j}] = r[{j}]" for j in range(len(exprs)))
    namespace = {"core": core}
    exec(_FIELD_TEMPLATE.format(args=", ".join(reads), writes=writes), namespace)
    return _inline(namespace["field"])


class CompiledField:
    """An autonomous field x' = f(x) on ``n`` variables compiled with its Hessian-like
    ``spectral`` matrix (or None) and the loss's bound parameters ``constants``."""

    def __init__(self, field, matrix, n, constants, calls):
        self.field, self.matrix, self.n = field, matrix, n
        self.constants, self.calls = constants, calls
        self.engines = {}

    def engine(self, tableau):
        """The compiled engine of ``tableau`` (a :class:`~flowsim.ensemble.explicit.Tableau`)."""
        if tableau.name not in self.engines:
            self.engines[tableau.name] = _engine_of(self.field, self.matrix, self.n, tableau)
        return self.engines[tableau.name]


def compiled_field(loss, sign):
    """The gradient flow x' = sign grad L(x) of ``loss`` compiled (kept with the loss)."""
    require()
    kept = loss.memo("compiled_fields", dict)
    if sign not in kept:
        from ..backends import refuse
        n = loss.n
        if loss.n_samples is not None:
            refuse("a finite-sum loss (data bound) is not compiled; use backend='numpy' or "
                   "'jax'.")
        if n * n > MAX_OUTPUTS:
            refuse(f"backend='numba' integrates flows of up to {int(MAX_OUTPUTS ** 0.5)} "
                   f"variables (the Hessian's {n * n} entries are compiled for the "
                   "stiffness watch); use backend='numpy' or 'jax'.")
        bound = loss.symbol_values()
        args = list(loss.variables) + list(bound)
        reads = [f"y[{j}]" for j in range(n)] + [f"C[{j}]" for j in range(len(bound))]
        s = sp.Integer(int(sign))
        H = loss.hessian_expr
        kept[sign] = CompiledField(
            _vector_function(args, [s * g for g in loss.gradient_expr], reads),
            _vector_function(args, [H[i, j] for i in range(n) for j in range(n)], reads),
            n, np.array([float(v) for v in bound.values()], dtype=float), {"grad": 1})
    return kept[sign]


def _engine_of(field, matrix, n, tableau):
    """The per-start loop for ``tableau`` (an embedded pair of S stages); n and the tableau's
    coefficients are constants of the compiled code (closure variables), so the stage sums
    unroll with their weights folded in."""
    S = len(tableau.B)
    A = tuple(float(a) for i in range(S) for a in
              tuple(tableau.A[i]) + (0.0,) * (S - len(tableau.A[i])))
    B, E = tuple(float(b) for b in tableau.B), tuple(float(e) for e in tableau.E)
    has_low = tableau.E_low is not None
    E_low = tuple(float(e) for e in tableau.E_low) if has_low else E
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
    def engine(Y0, C, t0, t_end, t_out, reach, rtol, atol, max_steps, use_gtol, gtol,
               max_norm, stiff_steps, dense, watch, out, sout, fout, code, t_stop,
               steps_taken, values, evals):
        m, K = Y0.shape[0], t_out.shape[0]
        quick = max_norm / math.sqrt(n)
        Ks = np.empty((S + 1, n))
        work = np.empty((6, n))
        y, F, y_new, stage, scale, err = work[0], work[1], work[2], work[3], work[4], work[5]
        H = np.empty(n * n)
        for s in range(m):
            if code[s] != GOES:
                continue
            for j in range(n):
                y[j] = Y0[s, j]
            field(y, C, F)
            start_norm = math.sqrt(_squares(y))
            t = t0
            # scipy's first step (Hairer, Norsett and Wanner II.4)
            for j in range(n):
                scale[j] = atol + abs(y[j]) * rtol
                stage[j] = y[j] / scale[j]
                err[j] = F[j] / scale[j]
            d0, d1 = _rms(stage), _rms(err)
            h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / (d1 if d1 > 0 else 1.0)
            h0 = _min(h0, t_end - t)
            for j in range(n):
                stage[j] = y[j] + h0 * F[j]
            field(stage, C, Ks[1])
            for j in range(n):
                err[j] = (Ks[1, j] - F[j]) / scale[j]
            d2 = _rms(err) / h0
            big = d2 if d1 < d2 or d2 != d2 else d1
            h1 = max(1e-6, h0 * 1e-3) if big <= 1e-15 else \
                (0.01 / (big if big > 0 else 1.0)) ** (1.0 / (order + 1))
            h = _min(_min(100 * h0, h1), t_end - t)
            count = 2
            nsteps, jo = 0, 0
            ended = GOES
            while jo < K and t >= reach[jo]:   # the outputs at the start
                for j in range(n):
                    out[s, jo, j] = y[j]
                    if dense:
                        fout[s, jo, j] = F[j]
                sout[s, jo] = nsteps
                jo += 1
            while True:
                if jo >= K:
                    ended = REACHED
                    break
                gap = t_out[jo] - t
                lands = h >= gap
                hs = _min(h, gap)
                for j in range(n):
                    Ks[0, j] = F[j]
                for i in range(1, S):
                    for j in range(n):
                        acc = 0.0
                        for q in range(i):
                            acc += A[i * S + q] * Ks[q, j]
                        stage[j] = acc * hs + y[j]
                    field(stage, C, Ks[i])
                for j in range(n):
                    acc = 0.0
                    for q in range(S):
                        acc += B[q] * Ks[q, j]
                    y_new[j] = acc * hs + y[j]
                field(y_new, C, Ks[S])
                count += S
                total = 0.0
                for j in range(n):
                    total += Ks[S, j]
                    scale[j] = max(abs(y[j]), abs(y_new[j])) * rtol + atol
                    acc = 0.0
                    for q in range(S + 1):
                        acc += E[q] * Ks[q, j]
                    err[j] = acc * hs / scale[j]
                norm = _rms(err)
                if has_low:   # DOP853's blend of its 5th and 3rd order errors
                    for j in range(n):
                        acc = 0.0
                        for q in range(S + 1):
                            acc += E_low[q] * Ks[q, j]
                        stage[j] = acc * hs / scale[j]
                    low2 = _rms(stage) ** 2
                    norm = 0.0 if norm == 0 else norm ** 2 / math.sqrt(norm ** 2 + 0.01 * low2)
                finite = math.isfinite(total)
                ok = norm <= 1.0 and finite
                factor = 10.0 if norm == 0 else min(max(0.9 * norm ** exponent, 0.2), 10.0)
                if not (math.isfinite(factor) and finite) or norm != norm:
                    factor = 0.2
                if not ok:
                    factor = min(factor, 1.0)
                h_next = hs * factor
                h = max(h_next, h) if ok and hs < h and factor >= 1.0 else h_next
                if ok:
                    t = t + hs
                    for j in range(n):
                        y[j] = y_new[j]
                        F[j] = Ks[S, j]
                    nsteps += 1
                    while lands and jo < K and t >= reach[jo]:   # the outputs it reached
                        for j in range(n):
                            out[s, jo, j] = y[j]
                            if dense:
                                fout[s, jo, j] = F[j]
                        sout[s, jo] = nsteps
                        jo += 1
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
                        g = math.sqrt(_squares(F))
                        if g <= gtol:
                            ended, values[s] = CONVERGED, g
                else:
                    if not hs > 10 * np.spacing(max(abs(t), 1.0)):
                        ended = TINY
                if (ended == GOES or ended == TINY) and nsteps >= max_steps:
                    ended = OVER if ended == GOES else TINY
                if ended == TINY or ended == OVER:
                    radius = math.sqrt(_squares(y))
                    if radius > 10 * max(1.0, start_norm):
                        ended, values[s] = BLOWN, radius
                if ended == GOES and watch and nsteps > 0 and \
                        nsteps % STIFF_CHECK_EVERY == 0 and (t_end - t) / h > stiff_steps:
                    matrix(y, C, H)
                    rho = np.max(np.abs(np.linalg.eigvalsh(H.reshape(n, n))))
                    if h * rho >= 0.5 * stability:
                        ended = STIFF
                if ended != GOES:
                    for jj in range(jo, K):   # held at its last state, at rest
                        for j in range(n):
                            out[s, jj, j] = y[j]
                            if dense:
                                fout[s, jj, j] = 0.0
                        sout[s, jj] = nsteps
                    break
            code[s], t_stop[s], steps_taken[s], evals[s] = ended, t, nsteps, count
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
            STIFF_STEPS, dense, True, out, sout, fout if dense else np.empty((1, 1, 1)),
            code, t_stop, steps_taken, values, evals)
    status = stops.every_start(m, Status.REACHED_END)
    message = stops.every_start(m, "")
    for s in np.flatnonzero(code > REACHED):
        status[s], message[s] = _ending(code[s], values[s], t_stop[s], gtol, max_norm,
                                        max_steps)
    return status, message, steps_taken, t_stop, evals


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


def batch_engine(loss, sign):
    """The compiled engine as :func:`flowsim.ensemble.run.batch_run` takes it (``engine=``):
    ``engine(Y0, t0, t_end, method, rtol, atol, t_out, budget, gtol, max_norm, dense)`` ->
    the :class:`~flowsim.ensemble.run.Outputs` of the starts Y0, the loss charged with the
    gradients they took."""
    from ..ensemble.explicit import TABLEAUS
    from ..ensemble.run import Outputs
    compiled = compiled_field(loss, sign)

    def engine(Y0, t0, t_end, method, rtol, atol, t_out, budget, gtol, max_norm, dense):
        m, K = Y0.shape[0], t_out.size
        ens = Outputs.empty(m, K, Y0.shape[1], dense)
        status, message, steps, t_stop, evals = run_field(
            compiled, Y0, t0, t_end, TABLEAUS[method], rtol, atol, t_out, budget, gtol,
            max_norm, dense, ens.rows(slice(None)))
        ens.status[:], ens.message[:] = status, message
        ens.steps_taken[:], ens.t_stop[:] = steps, t_stop
        loss.charge(grad=int(evals.sum()) * compiled.calls["grad"])
        return ens
    return engine
