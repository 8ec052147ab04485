"""The gradient flow of many starts at once, each start's faults kept to itself.

The m paths are one stacked system of size m*n: each right-hand side is one batched gradient
call, implicit methods get the block-diagonal sparse Jacobian, and each start keeps its own
error control (:func:`flowsim.flows._solver.stacked`). A start that leaves ``max_norm`` or meets a
non-finite gradient is frozen inside the system. A start that breaks the shared solver (its
path is singular, so the common step collapses) is found at the state where the solver gave
up, frozen there and marked alone; the others continue from that time in a new stacked
system. So one bad start never ends the others' runs.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse

from ._solver import AUTO, integrate, jacobian_for, stacked
from .nonsmooth import has_kinks
from .._numeric import row_norms
from ..results import BatchTrajectory, Status

__all__ = ["batch_gradient_flow", "SegmentedDense"]

#: Causes of an early end that come from the solver, not from the run's own rules.
_BREAKDOWNS = ("solver", "stall", "nonfinite")


class SegmentedDense:
    """Dense solution of a batch integrated in segments: ``dense(t)`` -> (m, n), or
    (m, n, len(t)) for an array of times. A start held after it stopped stays constant."""

    def __init__(self, segments, held, m, n):
        self.segments, self.held, self.m, self.n = segments, held, m, n

    def __call__(self, t):
        t_arr = np.asarray(t, dtype=float)
        flat = np.atleast_1d(t_arr)
        out = np.repeat(self.held[:, :, None], flat.size, axis=2)
        for a, b, dense, idx in self.segments:
            inside = (flat >= a) & (flat <= b)
            if inside.any() and dense is not None:
                part = np.asarray(dense(flat[inside])).reshape(len(idx), self.n, -1)
                out[np.ix_(idx, np.arange(self.n), np.flatnonzero(inside))] = part
        return out[:, :, 0] if t_arr.ndim == 0 else out


class _AtSteps:
    """The accepted states of a run without dense output, looked up at its own times."""

    def __init__(self, ts, ys):
        self.ts, self.ys = ts, ys

    def __call__(self, t):
        idx = np.clip(np.searchsorted(self.ts, t), 0, len(self.ts) - 1)
        return self.ys[idx].T


def _system(loss, k, n, sign, max_norm, gtol):
    """Right-hand side, sparse Jacobian and stop test of k stacked starts."""
    grad = loss._fast("grad")
    quick_bound = max_norm / np.sqrt(n)  # every |x_i| <= max_norm if all entries are below

    def frozen(x):
        return row_norms(x) > max_norm

    def fun(t, y):
        x = y.reshape(k, n)
        g = grad(x)
        # two cheap global checks first; the per-start mask only when one of them fails
        if not np.isfinite(g.sum()) or np.abs(y).max() > quick_bound:
            dead = frozen(x) | ~np.isfinite(g).all(axis=1)
            g[dead] = 0.0  # left the bound, or a non-finite gradient: frozen where it is
        g *= sign
        return g.ravel()

    def sparse_jac(t, y):
        x = y.reshape(k, n)
        J = loss.hess(x, sparse=True)
        dead = frozen(x) if np.abs(y).max() > quick_bound else np.zeros(k, bool)
        if dead.any():
            J = scipy.sparse.diags((~dead).repeat(n).astype(float)) @ J
        return sign * J

    def stop(t, y, solver):
        if gtol is None:
            return None
        x = y.reshape(k, n)
        live = ~frozen(x)
        if np.all(row_norms(grad(x[live])) <= gtol):
            return Status.CONVERGED, f"every start reached |grad L| <= gtol = {gtol:g}"
        return None

    return fun, sparse_jac, stop


def _culprits(loss, x):
    """The starts (rows of ``x``) that broke the shared solver: a non-finite L or gradient,
    else a gradient far out of scale (|g|/(1 + |x|) over 100 times the median), else the
    largest such."""
    with np.errstate(all="ignore"):
        values, grads = loss._observe(x, full=True)
    broken = ~np.isfinite(values) | ~np.isfinite(grads).all(axis=1)
    if broken.any():
        return np.flatnonzero(broken)
    score = row_norms(grads) / (1 + row_norms(x))
    wild = np.flatnonzero(score > 100 * max(np.median(score), 1e-300))
    return wild if wild.size else np.array([int(np.argmax(score))])


def _one_by_one(loss, X, t_end, method, rtol, atol, t_eval, dense_output, gtol, max_norm,
                max_steps):
    """Subgradient flows of a loss with kinks, start by start (each has its own kink events),
    on the common grid t_eval or the union of their steps; a start that ended early is held."""
    from .gradient import gradient_flow
    before = loss.counts
    runs = [gradient_flow(loss, x0, t_end, method=method, rtol=rtol, atol=atol, gtol=gtol,
                          max_norm=max_norm, max_steps=max_steps) for x0 in X]
    counts = loss.counts.spent_since(before)
    ts = np.unique(np.concatenate([r.ts for r in runs])) if t_eval is None else t_eval
    xs = np.stack([r.at(np.minimum(ts, r.ts[-1])) for r in runs])
    values, grad_norms = loss._observe(xs)
    spans = [(r.ts[0], r.ts[-1], r.dense, np.array([i]))
             for i, r in enumerate(runs)]
    dense = SegmentedDense(spans, np.stack([r.x_final for r in runs]), len(runs), loss.n)
    return BatchTrajectory(ts, xs, values, grad_norms, tuple(r.status for r in runs),
                           tuple(r.message for r in runs), "gradient_flow",
                           f"{runs[0].label}, m={len(runs)}",
                           dense=dense if dense_output else None, **counts)


def batch_gradient_flow(loss, X, t_end, method, rtol, atol, t_eval, dense_output, gtol,
                        max_norm, maximize, max_steps):
    """:func:`flowsim.gradient_flow` for starts ``X`` of shape (m, n) (checked there)."""
    m, n = X.shape
    if not maximize and has_kinks(loss.expr) and loss.n_samples is None:
        return _one_by_one(loss, X, t_end, method, rtol, atol, t_eval, dense_output, gtol,
                           max_norm, max_steps)
    sign = 1.0 if maximize else -1.0
    solver_method = AUTO[0] if method == "auto" else method
    alive, t_now, x_now = np.arange(m), 0.0, X.copy()
    held = X.copy()
    statuses = np.full(m, Status.REACHED_END, dtype=object)
    messages = np.full(m, "", dtype=object)
    segments = []
    before = loss.counts
    while True:
        k = alive.size
        fun, sparse_jac, stop = _system(loss, k, n, sign, max_norm, gtol)
        options = jacobian_for(method, sparse_jac, lambda t, y: sparse_jac(t, y).toarray(),
                               k * n, n - 1, True)
        implicit = jacobian_for(AUTO[1], sparse_jac, None, k * n, n - 1, True)
        solver_class, factor = stacked(solver_method, k)  # each start: its own error control
        run = integrate(fun, x_now[alive].ravel(), t_end, t0=t_now, method=method,
                        rtol=rtol * factor, atol=atol * factor, solver_class=solver_class,
                        solver_options=options,
                        dense_output=dense_output or t_eval is not None, stop=stop,
                        max_steps=max_steps, jacobian=loss._watchdog(sparse_jac),
                        switch_options=implicit)
        segments.append((run, alive))
        last = run.ys[-1].reshape(k, n)
        held[alive] = last
        if run.cause not in _BREAKDOWNS or k == 1:
            break
        bad = _culprits(loss, last)
        if bad.size == k:
            break
        statuses[alive[bad]] = Status.FAILED
        messages[alive[bad]] = (f"stopped at t = {run.ts[-1]:.6g}, where it broke the shared "
                                f"solver ({run.message}); the other starts went on")
        x_now[alive] = last
        alive, t_now = np.delete(alive, bad), run.ts[-1]
    counts = loss.counts.spent_since(before)
    ended = Status.FAILED if run.status in (Status.FAILED, Status.DIVERGED) else \
        Status.REACHED_END
    statuses[alive] = ended
    spans = [(r.ts[0], r.ts[-1], r.dense if r.dense is not None else _AtSteps(r.ts, r.ys),
              idx) for r, idx in segments]
    dense = SegmentedDense(spans, held.copy(), m, n)
    if t_eval is None and len(segments) == 1:  # the usual case: the accepted steps as they are
        ts, xs = run.ts, run.ys.reshape(len(run.ts), m, n).transpose(1, 0, 2)
    elif t_eval is None:
        ts = np.concatenate([segments[0][0].ts] + [r.ts[1:] for r, _ in segments[1:]])
        xs = dense(ts).transpose(0, 2, 1)
    else:
        ts = t_eval[t_eval <= run.ts[-1] * (1 + 1e-12)]
        ts = ts if ts.size else run.ts[:1]
        xs = dense(ts).transpose(0, 2, 1)
    values, grad_norms = loss._observe(xs)
    final, last_g = xs[:, -1], grad_norms[:, -1]
    outside = ~(row_norms(final) <= max_norm) | ~np.isfinite(last_g)
    messages[alive] = run.message
    for i in np.flatnonzero(outside):
        messages[i] = (f"|x| = {row_norms(final[i]):.3g} exceeded max_norm = {max_norm:g} "
                       f"(or |grad L| is not finite there); frozen where it left")
    statuses = np.where(outside, Status.DIVERGED, statuses)
    if gtol is not None:
        done = ~outside & (last_g <= gtol)
        statuses = np.where(done, Status.CONVERGED, statuses)
        messages[done] = [f"|grad L| = {g:.3g} <= gtol = {gtol:g}" for g in last_g[done]]
    return BatchTrajectory(ts, xs, values, grad_norms, tuple(statuses), tuple(messages),
                           "gradient_flow",
                           f"gradient {'ascent' if maximize else 'flow'} ({method}), m={m}",
                           dense=dense if dense_output else None, **counts)
