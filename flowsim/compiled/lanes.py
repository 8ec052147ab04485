"""The loop of the compiled flow engine (:mod:`flowsim.compiled.engine`), as source.

This file is not run as it is: its text opens each generated module of a compiled field
(:class:`flowsim.compiled.fields.CompiledField`, :mod:`flowsim.compiled.store`), whose own
definitions follow and replace the placeholders below: ``field`` (writes f(y)), ``attempt``
(one step of the pair over every lane, :func:`flowsim.compiled.codegen.attempt_source`),
``matrix``, ``stationarity`` and ``guard`` where the field has them, and the sizes and flags
``N``, ``S``, ``HAS_LOW``, ``ORDER``, ``STABILITY``, ``EXPONENT``, ``WATCH``, ``OWN_SPEED``,
``GUARDED``. Each function is then compiled with numba's cache.

``engine`` advances ``LANES`` starts together, each on its own steps: ``begin`` puts a start
into a lane (scipy's first step, the outputs at t0), every lane's step is taken at once, and
each lane then applies the numpy engine's control and stop rules; a finished start's lane goes
to the next start.
"""
import math

import numpy as np

#: A start's code after the engine: how it ended.
GOES, REACHED, DIVERGED, CONVERGED, BLOWN, TINY, OVER, STIFF, GUARD = range(9)
#: Accepted steps between two stiffness checks (:mod:`flowsim.ensemble.explicit`'s).
STIFF_CHECK_EVERY = 200
#: Starts advanced together, one per lane: the step loop over 16 lanes vectorizes
#: (Rosenbrock RK45: 14.7 us a start, against 23 with 8 lanes and 35 one by one).
LANES = 16
N = NX = S = ORDER = 0
STABILITY = EXPONENT = 0.0
HAS_LOW = WATCH = OWN_SPEED = GUARDED = SYMMETRIC = False
field = attempt = None   # (the generated module's)


def matrix(t, y, C, out):   # (replaced where the field has a matrix to watch)
    pass


def stationarity(t, y, C):   # (replaced where the field has its own)
    return 0.0


def guard(t, y, C):   # (replaced where the field has a guard)
    return 0.0


def _nmax(a, b):
    """numpy's maximum of two floats: NaN wins."""
    if a != a or b != b:
        return a + b
    return a if a > b else b


def _min(a, b):   # numpy's minimum: NaN wins
    return a if a != a or a < b else b

def _squares(v):
    s = 0.0
    for j in range(N):
        s += v[j] * v[j]
    return s

def _rms(v):
    s = 0.0
    for j in range(N):
        s += v[j] * v[j]
    return math.sqrt(s / N)

def begin(s, l, Y0, C, t0, t_end, reach, rtol, atol, dense, Yv, Fv, lane, t, h, nsteps,
          count, jo, start_norm, out, sout, fout, work):
    """Start s into lane l: f at its start, scipy's first step (Hairer, Norsett and
    Wanner II.4), the outputs at t0."""
    y, F, stage, scale, err, k1 = work[0], work[1], work[2], work[3], work[4], work[5]
    for j in range(N):
        y[j] = Y0[s, j]
    field(t0, y, C, F)
    for j in range(N):
        scale[j] = atol + abs(y[j]) * rtol
        stage[j] = y[j] / scale[j]
        err[j] = F[j] / scale[j]
    d0, d1 = _rms(stage), _rms(err)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / (d1 if d1 > 0 else 1.0)
    h0 = _min(h0, t_end - t0)
    for j in range(N):
        stage[j] = y[j] + h0 * F[j]
    field(t0 + h0, stage, C, k1)
    for j in range(N):
        err[j] = (k1[j] - F[j]) / scale[j]
    d2 = _rms(err) / h0
    big = d2 if d1 < d2 or d2 != d2 else d1
    h1 = max(1e-6, h0 * 1e-3) if big <= 1e-15 else \
        (0.01 / (big if big > 0 else 1.0)) ** (1.0 / (ORDER + 1))
    lane[l], t[l], h[l] = s, t0, _min(_min(100 * h0, h1), t_end - t0)
    nsteps[l], count[l], start_norm[l] = 0, 2, math.sqrt(_squares(y))
    for j in range(N):
        Yv[j, l], Fv[j, l] = y[j], F[j]
    k = 0
    while k < reach.shape[0] and t0 >= reach[k]:   # the outputs at the start
        for j in range(N):
            out[s, k, j] = y[j]
            if dense:
                fout[s, k, j] = F[j]
        sout[s, k] = 0
        k += 1
    jo[l] = k

def engine(Y0, C, t0, t_end, t_out, reach, rtol, atol, max_steps, use_gtol, gtol,
           max_norm, stiff_steps, dense, out, sout, fout, code, t_stop, steps_taken,
           values, evals, next_out):
    m, K = Y0.shape[0], t_out.shape[0]
    quick = max_norm / math.sqrt(NX)
    work = np.empty((6, N))
    y = work[0]
    H = np.empty(N * N)
    lane = np.full(LANES, -1)
    t, h, hs, start_norm = (np.zeros(LANES), np.zeros(LANES), np.zeros(LANES),
                            np.zeros(LANES))
    nsteps, count, jo = (np.zeros(LANES, dtype=np.int64), np.zeros(LANES, dtype=np.int64),
                         np.zeros(LANES, dtype=np.int64))
    lands = np.zeros(LANES, dtype=np.bool_)
    Yv, Fv = np.zeros((N, LANES)), np.zeros((N, LANES))
    Yn, Fn, R = np.zeros((N, LANES)), np.zeros((N, LANES)), np.zeros((3, LANES))
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
        attempt(t, hs, Yv, Fv, C, rtol, atol, Yn, Fn, R)   # every lane's step at once
        for l in range(LANES):
            s = lane[l]
            if s < 0:
                continue
            ended = GOES
            if jo[l] >= K:
                ended = REACHED
            else:
                count[l] += S
                norm = math.sqrt(R[0, l] / N)
                if HAS_LOW:   # DOP853's blend of its 5th and 3rd order errors
                    low2 = math.sqrt(R[1, l] / N) ** 2
                    norm = 0.0 if norm == 0 else \
                        norm ** 2 / math.sqrt(norm ** 2 + 0.01 * low2)
                finite = math.isfinite(R[2, l])
                ok = norm <= 1.0 and finite
                factor = 10.0 if norm == 0 else \
                    min(max(0.9 * norm ** EXPONENT, 0.2), 10.0)
                if not (math.isfinite(factor) and finite) or norm != norm:
                    factor = 0.2
                if not ok:
                    factor = min(factor, 1.0)
                h_next = hs[l] * factor
                h[l] = max(h_next, h[l]) if ok and hs[l] < h[l] and factor >= 1.0 \
                    else h_next
                for j in range(N):
                    y[j] = Yn[j, l] if ok else Yv[j, l]
                if ok:
                    t[l] = t[l] + hs[l]
                    for j in range(N):
                        Yv[j, l], Fv[j, l] = Yn[j, l], Fn[j, l]
                    nsteps[l] += 1
                    while lands[l] and jo[l] < K and t[l] >= reach[jo[l]]:
                        for j in range(N):   # the output it reached
                            out[s, jo[l], j] = y[j]
                            if dense:
                                fout[s, jo[l], j] = Fv[j, l]
                        sout[s, jo[l]] = nsteps[l]
                        jo[l] += 1
                    top = 0.0
                    for j in range(NX):   # |x|: the position, the state's first NX
                        if not abs(y[j]) <= top:
                            top = abs(y[j])
                    if not top <= quick:
                        r = 0.0
                        for j in range(NX):
                            r += y[j] * y[j]
                        r = math.sqrt(r)
                        if not r < math.inf and top < math.inf:
                            r = 0.0
                            for j in range(NX):
                                r += (y[j] / top) ** 2
                            r = top * math.sqrt(r)
                        if not r <= max_norm:
                            ended, values[s] = DIVERGED, r
                    if ended == GOES and use_gtol:
                        if OWN_SPEED:
                            g = stationarity(t[l], y, C)
                        else:
                            g = 0.0
                            for j in range(N):
                                g += Fv[j, l] * Fv[j, l]
                            g = math.sqrt(g)
                        if g <= gtol:
                            ended, values[s] = CONVERGED, g
                    if ended == GOES and GUARDED and guard(t[l], y, C) != 0:
                        ended = GUARD
                elif not hs[l] > 10 * np.spacing(max(abs(t[l]), 1.0)):
                    ended = TINY
                if (ended == GOES or ended == TINY) and nsteps[l] >= max_steps:
                    ended = OVER if ended == GOES else TINY
                if ended == TINY or ended == OVER:
                    radius = math.sqrt(_squares(y))
                    if radius > 10 * max(1.0, start_norm[l]):
                        ended, values[s] = BLOWN, radius
                if ended == GOES and WATCH and nsteps[l] > 0 and \
                        nsteps[l] % STIFF_CHECK_EVERY == 0 and \
                        (t_end - t[l]) / h[l] > stiff_steps:
                    matrix(t[l], y, C, H)
                    rho = 0.0
                    try:   # (LAPACK refuses a matrix with infs or NaNs: no stiffness then)
                        if SYMMETRIC:
                            rho = np.max(np.abs(np.linalg.eigvalsh(H.reshape(N, N))))
                        else:
                            rho = np.max(np.abs(np.linalg.eigvals(H.reshape(N, N))))
                    except Exception:
                        rho = 0.0
                    if h[l] * rho >= 0.5 * STABILITY:
                        ended = STIFF
                if ended == GOES and jo[l] >= K:
                    ended = REACHED
            if ended == GOES:
                continue
            for jj in range(jo[l], K):   # held at its last state, at rest
                for j in range(N):
                    out[s, jj, j] = Yv[j, l]
                    if dense:
                        fout[s, jj, j] = 0.0
                sout[s, jj] = nsteps[l]
            code[s], t_stop[s], steps_taken[s], evals[s] = ended, t[l], nsteps[l], count[l]
            next_out[s] = jo[l]
            lane[l] = -1
            active -= 1
            while nxt < m and code[nxt] != GOES:
                nxt += 1
            if nxt < m:   # the next start takes the lane
                begin(nxt, l, Y0, C, t0, t_end, reach, rtol, atol, dense, Yv, Fv, lane,
                      t, h, nsteps, count, jo, start_norm, out, sout, fout, work)
                nxt += 1
                active += 1
