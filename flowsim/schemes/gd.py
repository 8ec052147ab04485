"""Gradient descent: the forward Euler discretization of the gradient flow."""
from __future__ import annotations

import math

import numpy as np

from .._numeric import row_norms
from .._validate import positive
from ..results import BatchTrajectory, Status
from ._driver import (StepFailed, common_arguments, converged_message, escape, finish,
                      iterate, schedule_steps)

__all__ = ["gradient_descent"]


def gradient_descent(loss, x0, eta, steps, *, line_search=None, c=1e-4, shrink=0.5,
                     maximize=False, gtol=None, max_norm=1e8):
    r"""Gradient descent x_{k+1} = x_k - eta_k grad L(x_k): forward Euler on the flow.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        Start, or m starts run together (one batched gradient call per step).
    eta : float or callable
        A fixed step, or a schedule ``k -> eta_k`` (see :mod:`flowsim.schedules`). With a
        line search it is the first trial step of each backtracking.
    steps : int
        Number of steps.
    line_search : {None, "armijo"}
        Armijo backtracking: shrink the trial step by ``shrink`` until
        L(x - a g) <= L(x) - c a |g|^2.
    c, shrink : float
        Sufficient-decrease constant in (0, 1) and shrink factor in (0, 1).
    maximize : bool
        Gradient ascent x_{k+1} = x_k + eta_k grad L(x_k).
    gtol : float, optional
        Stop (converged) at the first iterate with |grad L| <= gtol.
    max_norm : float
        Stop (diverged) once |x_k| > max_norm.

    Returns
    -------
    Trajectory
        Iterate k at time t_k = eta_0 + ... + eta_{k-1}; ``extras["step_sizes"]`` holds
        eta_k, the step from iterate k (at the last iterate, the step the schedule or the
        line search would try next).
        For m starts a :class:`~flowsim.BatchTrajectory`, ``xs`` of shape
        (m, steps + 1, n); a start that diverges is frozen at its last finite iterate.

    Notes
    -----
    .. math:: x_{k+1} = x_k - \eta_k \nabla L(x_k)

    On L = 1/2 (x - x*)^T A (x - x*) with a fixed step, x_k - x* = (I - eta A)^k (x_0 - x*):
    each eigendirection shrinks by |1 - eta lambda_i| per step against the flow's
    e^{-eta lambda_i}, so GD is stable exactly when eta < 2/lambda_max.

    Examples
    --------
    >>> traj = gradient_descent("(x - 1)**2 / 2", [3.0], eta=0.5, steps=3)
    >>> traj.xs[:, 0].tolist()
    [3.0, 2.0, 1.5, 1.25]
    """
    loss, x0, steps, gtol, max_norm = common_arguments(loss, x0, steps, gtol, max_norm,
                                                       batch=True)
    # one step more than run: the step size recorded at the last iterate is the one the
    # schedule would take from it, so extras["step_sizes"] has no trailing nan
    recorded = schedule_steps(eta, steps, extra=1)
    etas = recorded[:-1]
    if x0.ndim == 2:
        if line_search is not None:
            raise ValueError("line_search works on one start; pass x0 of shape (n,).")
        return _batch(loss, x0, recorded, gtol, max_norm, maximize)
    if line_search not in (None, "armijo"):
        raise ValueError(f"line_search must be None or 'armijo', got {line_search!r}.")
    c, shrink = positive(c, "c"), positive(shrink, "shrink")
    if not 0 < c < 1 or not 0 < shrink < 1:
        raise ValueError(f"c and shrink must lie in (0, 1), got c={c!r}, shrink={shrink!r}.")
    sign = 1.0 if maximize else -1.0
    label = ("gradient ascent" if maximize else "gradient descent") + \
        (" + Armijo" if line_search else "")
    before = loss.counts
    if line_search is None:
        fast = _python_float_loop(loss, x0, etas, sign, gtol, max_norm)
        if fast is not None:
            xs, status, message = fast
            ts = np.concatenate([[0.0], np.cumsum(etas[:len(xs) - 1])])
            return finish(loss, xs, ts, status, message, "gradient_descent", label, before,
                          maximize=maximize,
                          extras={"step_sizes": recorded[:len(xs)]})
    grad = loss._fast("grad")
    value = loss._fast("value")

    def plain(k, x):
        g = grad(x)
        return x + sign * etas[k] * g, g, None

    def armijo(k, x):
        g = grad(x)
        gg = g @ g
        f0 = value(x)
        a = etas[k]
        for _ in range(60):
            trial = x + sign * a * g
            f1 = value(trial)
            if (f1 >= f0 + c * a * gg) if maximize else (f1 <= f0 - c * a * gg):
                return trial, g, {"dt": a, "step_sizes": a}
            a *= shrink
        raise StepFailed(f"Armijo backtracking found no sufficient {'increase' if maximize else 'decrease'} "
                         f"down to step {a:.3g}")

    step = armijo if line_search else plain
    xs, ts, status, message, rec = iterate(loss, x0, steps, step, etas, gtol=gtol,
                                           max_norm=max_norm,
                                           records=("step_sizes",) if line_search else ())
    if line_search:
        rec["step_sizes"][-1] = recorded[len(xs) - 1]  # the next first trial step
    extras = rec if line_search else {"step_sizes": recorded[:len(xs)]}
    return finish(loss, xs, ts, status, message, "gradient_descent", label, before,
                  extras=extras, maximize=maximize)


def _python_float_loop(loss, x0, etas, sign, gtol, max_norm):
    """GD on plain Python floats with the loss's counted float gradient, for few variables.

    A numpy update on a 2-vector costs about a microsecond per operation; on floats the
    whole step costs less than the numpy gradient call alone. Returns None (the caller then
    runs the array loop) where the loss has no float gradient or it meets a domain error
    (the gradients spent before that stay counted: they were evaluated).
    Stops and messages are the driver's, as in :func:`~flowsim.schemes._driver.iterate`.
    """
    grad = loss._float_grad()
    if grad is None:
        return None
    xl = x0.tolist()
    out = [xl]
    status, message = Status.REACHED_END, f"ran all {len(etas)} steps"
    try:
        for k, e in enumerate((sign * etas).tolist()):
            g = grad(*xl)
            if gtol is not None and sum(b * b for b in g) <= gtol * gtol:
                status = Status.CONVERGED
                message = converged_message(math.sqrt(sum(b * b for b in g)), gtol, k)
                break
            xl = [a + e * b for a, b in zip(xl, g)]
            out.append(xl)
            probe = sum(xl)
            if probe - probe != 0 or max(map(abs, xl)) > max_norm:
                break
    except (ValueError, OverflowError, ZeroDivisionError, TypeError):
        return None
    xs = np.array(out, dtype=float)
    with np.errstate(all="ignore"):
        norms = row_norms(xs)
    bad = np.flatnonzero(~(norms <= max_norm))
    if bad.size:
        k = bad[0]
        keep, message = escape(norms[k], max_norm, k)
        xs, status = xs[:k + 1 if keep else k], Status.DIVERGED
    return xs, status, message


#: Steps between the divergence checks of a batched run (they cost about as much as a step).
CHECK_EVERY = 8


def _hold_at_first_fault(xs, values, grad_norms, max_norm):
    """Per start: cut at its first fault and hold the last good iterate to the end.

    A fault is an iterate beyond ``max_norm`` (kept, it is finite), or one whose state, L or
    |grad L| is not finite (not kept: the start left the loss's domain or overflowed). The
    other starts are untouched; nothing after a fault is nan.

    Returns
    -------
    xs, values, grad_norms : arrays of shapes (m, k, n), (m, k), (m, k)
    diverged : ndarray of bool, shape (m,)
    """
    k = xs.shape[1]
    with np.errstate(all="ignore"):
        norms = row_norms(xs)
    outside = ~(norms <= max_norm)
    broken = ~(np.isfinite(values) & np.isfinite(grad_norms) & np.isfinite(norms))
    broken[:, 0] = False  # the start was checked at the door
    first_out = np.where(outside.any(axis=1), outside.argmax(axis=1), k)
    first_broken = np.where(broken.any(axis=1), broken.argmax(axis=1), k)
    keep = np.minimum(np.where(first_out < first_broken, first_out, first_broken - 1), k - 1)
    diverged = np.minimum(first_out, first_broken) < k
    for i in np.flatnonzero(diverged):
        j = keep[i]
        xs[i, j + 1:] = xs[i, j]
        values[i, j + 1:] = values[i, j]
        grad_norms[i, j + 1:] = grad_norms[i, j]
    return xs, values, grad_norms, diverged


def _batch(loss, X0, etas_recorded, gtol, max_norm, maximize):
    """Gradient descent on m starts at once: one batched gradient call per step."""
    sign = 1.0 if maximize else -1.0
    m, n = X0.shape
    etas = etas_recorded[:-1]
    steps = len(etas)
    grad = loss._fast("grad")
    before = loss.counts
    path = np.empty((steps + 1, m, n))
    path[0] = X0
    frozen = np.zeros(m, dtype=bool)
    done = steps
    with np.errstate(all="ignore"):
        for k in range(steps):
            G = grad(path[k])
            if k % CHECK_EVERY == 0 or k == steps - 1:
                norms = row_norms(path[k])
                frozen |= ~(norms <= max_norm) | ~np.isfinite(G).all(axis=1)
                if gtol is not None:
                    small = row_norms(G) <= gtol
                    if np.all(small | frozen):
                        done = k
                        break
            if frozen.any():
                G[frozen] = 0.0
            G *= sign * etas[k]
            np.add(path[k], G, out=path[k + 1])
    xs = path[:done + 1].transpose(1, 0, 2)
    spent = loss.counts.spent_since(before)
    values, grad_norms = loss._observe(path[:done + 1])  # contiguous: then transpose
    values, grad_norms = values.T, grad_norms.T
    xs, values, grad_norms, diverged = _hold_at_first_fault(xs, values, grad_norms, max_norm)
    statuses = np.where(diverged, Status.DIVERGED, Status.REACHED_END)
    messages = np.full(m, f"ran all {done} steps", dtype=object)
    messages[diverged] = (f"left |x| <= max_norm = {max_norm:g} or met a non-finite value; "
                          "held at its last good iterate")
    if gtol is not None:
        small = ~diverged & (grad_norms[:, -1] <= gtol)
        statuses = np.where(small, Status.CONVERGED, statuses)
        messages[small] = [converged_message(g, gtol, done) for g in grad_norms[small, -1]]
    ts = np.concatenate([[0.0], np.cumsum(etas[:done])])
    name = "gradient ascent" if maximize else "gradient descent"
    return BatchTrajectory(ts, xs, values, grad_norms, tuple(statuses), tuple(messages),
                           "gradient_descent", f"{name}, m={m}",
                           extras={"step_sizes": np.broadcast_to(etas_recorded[:done + 1],
                                                                 (m, done + 1))}, **spent)
