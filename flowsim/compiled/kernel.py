r"""A traced step compiled with numba, and the one loop that runs it over starts and steps.

:func:`compiled_step` prints a :class:`~flowsim.compiled.trace.TracedStep` with sympy's
Python printer (math functions, common subexpressions; the source audited like every kernel
of the loss, :func:`flowsim.loss._audit.lambdify_audited`) and compiles it with numba. A
second function, made from a fixed template and the step's sizes (integers only), reads one
start's row of the state arrays, calls the step and writes its outputs to a buffer.

:func:`run_rows` is the loop: for each block of rows that stays in the caches, for each step,
for each start still running, one step and the stop rules of the numpy driver
(:func:`flowsim.schemes._driver.iterate`), in its order: a failed step, then |g| <= gtol,
then |x_{k+1}| > max_norm or a non-finite iterate. A start that stops keeps its state and is
skipped from then on; its code, its last iterate and the norm that stopped it are written
for the messages. Each start's numbers depend only on its own row, so any split of a batch
gives the same numbers.
"""
from __future__ import annotations

import math

import numpy as np
import sympy as sp

from ..loss._audit import lambdify_audited

try:   # an optional extra: without it this module imports, and require() says what to do
    import numba
    _jit = numba.njit(error_model="numpy")
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

    def _jit(func):
        return func

__all__ = ["require", "compiled_step", "CompiledStep", "run_rows", "RUNNING", "CONVERGED",
           "DIVERGED", "FAILED", "HELD", "MAX_OUTPUTS"]

#: The largest float: a sum of squares above it overflowed.
BIGGEST = float(np.finfo(float).max)
#: A start's code in :func:`run_rows`.
RUNNING, CONVERGED, DIVERGED, FAILED, HELD = 0, 1, 2, 3, 4
#: The most numbers one compiled step may return (x_{k+1}, g, the state, the flag): numba's
#: compile time grows with the tuple (about 10 s at 500).
MAX_OUTPUTS = 400


def require():
    """The numba module, or an ImportError that says how to install it."""
    if numba is None:
        raise ImportError('backend="numba" needs numba: pip install "flowsim[numba]" (or '
                          'numba), or use backend="numpy".')
    return numba


class CompiledStep:
    """One rule's step on one loss, compiled: ``row`` (numba) and what the loop needs.

    Attributes
    ----------
    row : numba function
        ``row(k, eta, X, S, C, i, out)``: writes start i's x_{k+1} (n), its gradient (n,
        where the rule returns one), its next state (p) and the failure flag (1: failed)
        into ``out``.
    n, p : int
        Variables and state entries per start.
    has_grad : bool
        The step returns grad L(x_k) (the gtol test applies).
    constants : ndarray
        The values of the trace's constants and the loss's parameters (``C``).
    calls : dict
        Loss evaluations per step.
    """

    def __init__(self, row, put, n, p, has_grad, constants, calls):
        self.row, self.n, self.p, self.has_grad = row, n, p, has_grad
        self.constants, self.calls = constants, calls
        self.loop = _loop_of(row, put, n, p, has_grad)
        self.put = put


_ROW_TEMPLATE = """def row(k, eta, W, C, i):
    r = core(k, eta, {args})
    return ({floats}, {x_squares}, {g_squares})


def put(W, i, out, a):
{puts}
"""


def compiled_step(loss, traced):
    """The :class:`CompiledStep` of ``traced`` (a TracedStep) on ``loss``."""
    require()
    bound = loss.symbol_values()
    n, p = loss.n, len(traced.state)
    grad = list(traced.grad or ())
    flag = sp.Piecewise((1.0, traced.failed), (0.0, True))
    outs = list(traced.x_next) + grad + list(traced.state_next) + [flag]
    if len(outs) > MAX_OUTPUTS:
        from ..backends import refuse
        refuse(f"the step returns {len(outs)} numbers per start (more than {MAX_OUTPUTS}) "
               "and would take long to compile; use backend='numpy' or 'jax'.")
    args = [traced.k, traced.eta, *loss.variables, *traced.state, *traced.constants,
            *bound]
    core = _jit(
        lambdify_audited(args, outs, ["math"], as_tuple=True))
    reads = ([f"W[{j}, i]" for j in range(n + p)] +
             [f"C[{j}]" for j in range(len(traced.constants) + len(bound))])
    def squares(first, count):
        return " + ".join(f"float(r[{j}]) * float(r[{j}])"
                          for j in range(first, first + count)) or "0.0"
    s0 = n + len(grad)
    puts = [f"    W[{j}, i] = out[{j}] if a else W[{j}, i]" for j in range(n)]
    puts += [f"    W[{n + j}, i] = out[{s0 + j}] if a else W[{n + j}, i]" for j in range(p)]
    source = _ROW_TEMPLATE.format(
        args=", ".join(reads), floats=", ".join(f"float(r[{j}])" for j in range(len(outs))),
        x_squares=squares(0, n), g_squares=squares(n, len(grad)), puts="\n".join(puts))
    namespace = {"core": core}
    # the template and integers only: no text from the rule or the loss reaches exec
    exec(source, namespace)
    row, put = _jit(namespace["row"]), _jit(namespace["put"])
    constants = np.array(list(traced.constant_values) + [float(v) for v in bound.values()],
                         dtype=float)
    return CompiledStep(row, put, n, p, bool(grad), constants, dict(traced.calls))


@_jit
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


def _loop_of(row, put, n, p, has_grad):
    """The loop of :func:`run_rows` around ``row``, compiled with it; the sizes are constants
    of the compiled code (numba freezes a closure's variables), so its short loops unroll."""
    d = n + p
    g0 = n   # where the gradient begins in a step's output

    @_jit
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
                gn = _norm(out, g0, g0 + n)
                if gn <= gtol:
                    code[row0 + i], last[row0 + i], norms[row0 + i] = 1, k, gn
                    return True
            if not out[-2] <= max_near and not _norm(out, 0, n) <= max_norm:
                r = _norm(out, 0, n)
                code[row0 + i], norms[row0 + i] = 2, r
                if r < math.inf:   # a finite iterate past max_norm is kept
                    for j in range(n):
                        W[j, i] = out[j]
                    last[row0 + i] = k + 1
                else:
                    last[row0 + i] = k
                return True
            put(W, i, out, True)
            if (k + 1) % every == 0:
                for j in range(n):
                    slots[(k + 1) // every, row0 + i, j] = W[j, i]
        return False

    @_jit
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
                        for j in range(n):
                            slots[(k + 1) // every, row0 + i, j] = W[j, i]
            alive = False
            for i in range(b):
                if hit[i]:   # run its chunk again from where it began, with the stop rules
                    hit[i] = False
                    for j in range(d):
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
    return loop


#: Steps run without a stop decision before the starts that may have stopped are run again.
CHUNK = 32


def run_rows(step, X, S, etas, steps, every, gtol, max_norm, slots, last, code, block):
    """Run ``step`` (a :class:`CompiledStep`) on the starts ``X`` (m, n) with states ``S``
    (m, p), in place, for up to ``steps`` steps of sizes ``etas`` (steps,), ``block`` starts
    at a time.

    Iterate k + 1 of a running start goes to ``slots[(k + 1) // every]`` when ``every``
    divides k + 1. ``code`` (m,) enters with RUNNING or HELD per start and leaves with how
    each ended, ``last`` (m,) with the iterate each ended at. Returns ``(calls, norms)``:
    steps computed per start, and the |g| or |x| that stopped it.
    """
    require()
    m = X.shape[0]
    norms = np.zeros(m)
    g = -1.0 if gtol is None else gtol
    for row0 in range(0, m, block):
        rows = slice(row0, min(m, row0 + block))
        W = np.ascontiguousarray(np.concatenate([X[rows], S[rows]], axis=1).T)
        step.loop(W, step.constants, etas, steps, every, gtol is not None and step.has_grad,
                  g, max_norm,
                  slots, row0, last, code, norms, CHUNK)
        X[rows], S[rows] = W[:step.n].T, W[step.n:].T
    # a start that stopped at iterate k computed k + 1 steps, unless its step k + 1 was kept
    calls = last + ((code == CONVERGED) | (code == FAILED) |
                    ((code == DIVERGED) & ~np.isfinite(norms)))
    calls[code == HELD] = 0
    return calls, norms
