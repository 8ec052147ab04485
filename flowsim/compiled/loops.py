"""The loop of the compiled schemes (:func:`flowsim.compiled.kernel.run_rows`), as source.

This file is not run as it is: its text is written, after the step's own functions and
sizes, into each generated module (:func:`flowsim.compiled.kernel.compiled_step`,
:mod:`flowsim.compiled.store`), where ``row``, ``put``, ``N`` (variables), ``P`` (state
entries), ``D`` (their sum) and ``G0`` (where the gradient begins in a step's output) are
that module's, and its functions are compiled with numba's cache.

``loop`` runs the starts of a block (a column each of W, shape (D, b)) through chunks of
steps without a stop decision (the loop over the starts vectorizes) and runs each start that
may have stopped in a chunk through it again with ``checked``: the numpy driver's stop rules
in their order, on the same function, so the same bits.
"""
import math

import numpy as np

row = put = None   # (the generated module's)
N = P = D = G0 = 0
#: The largest float: a sum of squares above it overflowed.
BIGGEST = float(np.finfo(float).max)


def _norm(v, lo, hi):
    """|v[lo:hi]| as numpy's row_norms has it: the plain sum of squares, rescaled where it
    overflows; inf where an entry is not finite."""
    s = 0.0
    for j in range(lo, hi):
        s += v[j] * v[j]
    r = math.sqrt(s)
    if r < math.inf:
        return r
    top = 0.0
    for j in range(lo, hi):
        a = abs(v[j])
        if not a <= top:
            top = a
    if not top < math.inf:
        return math.inf
    s = 0.0
    for j in range(lo, hi):
        s += (v[j] / top) ** 2
    return top * math.sqrt(s)


def checked(W, C, etas, i, k0, k1, every, use_gtol, gtol, max_norm, near, slots, row0,
            last, code, norms):
    """Start i of the block W from step k0 to k1 with every stop rule; True if it
    stopped."""
    gtol_near, max_near = near
    for k in range(k0, k1):
        out = row(k, etas[k], W, C, i)
        if out[-3] != 0.0:
            code[row0 + i], last[row0 + i] = 3, k
            return True
        if use_gtol and out[-1] <= gtol_near:
            gn = _norm(out, G0, G0 + N)
            if gn <= gtol:
                code[row0 + i], last[row0 + i], norms[row0 + i] = 1, k, gn
                return True
        if not out[-2] <= max_near and not _norm(out, 0, N) <= max_norm:
            r = _norm(out, 0, N)
            code[row0 + i], norms[row0 + i] = 2, r
            if r < math.inf:   # a finite iterate past max_norm is kept
                for j in range(N):
                    W[j, i] = out[j]
                last[row0 + i] = k + 1
            else:
                last[row0 + i] = k
            return True
        put(W, i, out, True)
        if (k + 1) % every == 0:
            for j in range(N):
                slots[(k + 1) // every, row0 + i, j] = W[j, i]
    return False


def loop(W, C, etas, steps, every, use_gtol, gtol, max_norm, slots, row0, last, code,
         norms, chunk):
    """The starts row0, row0 + 1, ... in W (d, b): chunks of steps without a decision,
    each start that may have stopped in a chunk run through it again, checked."""
    b = W.shape[1]
    # squared norms at or below these decide without a square root (4 ulps of margin;
    # a sum of squares that overflows is measured again, whatever max_norm is)
    near = (gtol * gtol * (1 + 1e-15), min(max_norm * max_norm * (1 - 1e-15), BIGGEST))
    gtol_near, max_near = near
    active = np.empty(b, dtype=np.bool_)
    for i in range(b):
        active[i] = code[row0 + i] == 0
    hit = np.zeros(b, dtype=np.bool_)
    saved = np.empty_like(W)
    for k0 in range(0, steps, chunk):
        k1 = min(steps, k0 + chunk)
        saved[:] = W
        for k in range(k0, k1):
            eta = etas[k]
            kept = (k + 1) % every == 0
            for i in range(b):
                out = row(k, eta, W, C, i)
                may = (out[-3] != 0.0) | (use_gtol & (out[-1] <= gtol_near)) | \
                    (out[-2] > max_near) | (out[-2] != out[-2])
                a = active[i]
                hit[i] |= a & may
                put(W, i, out, a)
            if kept:
                for i in range(b):
                    for j in range(N):
                        slots[(k + 1) // every, row0 + i, j] = W[j, i]
        alive = False
        for i in range(b):
            if hit[i]:   # run its chunk again from where it began, with the stop rules
                hit[i] = False
                for j in range(D):
                    W[j, i] = saved[j, i]
                if checked(W, C, etas, i, k0, k1, every, use_gtol, gtol, max_norm, near,
                           slots, row0, last, code, norms):
                    active[i] = False
            alive |= active[i]
        if not alive:
            break
    for i in range(b):
        if active[i]:
            last[row0 + i] = steps
