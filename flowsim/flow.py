"""First-order continuous flows on scipy's ODE solvers: the gradient flow and the Newton flow.

The second-order flows (heavy ball, Nesterov) live in :mod:`flowsim.second_order`.

Gradient flows of ill-conditioned losses are stiff: the Hessian's eigenvalues are the
flow's rates, so an explicit method (RK45, DOP853) must take steps below 2/lambda_max
wherever it goes, while an implicit one (LSODA, BDF, Radau) with the analytic Jacobian
steps at the pace of the solution. Measured on the 2-D Rosenbrock flow to t = 50 at
rtol 1e-8: RK45 about 100,000 gradient calls, LSODA with the analytic Jacobian about 1,000.
So the default is LSODA, which switches between a non-stiff and a stiff method by itself;
pick RK45/DOP853 for smooth, well-conditioned problems or tight closed-form comparisons, and
BDF/Radau for very stiff or large sparse ones (they take the Hessian as a sparse matrix).
"""
from __future__ import annotations

import numpy as np

from ._ode import (AUTO, METHODS, STABILITY_LIMIT, Integration, default_max_steps, integrate,
                   jacobian_for)
from .nonsmooth import has_kinks, integrate_nonsmooth
from ._validate import as_loss, choice, positive, positive_int, real_array, start_points
from .trajectory import (PositionPart, Status, Trajectory,
                         cut_at_nonfinite, safe_norm)

__all__ = ["gradient_flow", "newton_flow"]

#: Dimension from which the Hessian is handed to the implicit solvers as a sparse matrix.
SPARSE_FROM = 100


def _common(loss, t_end, method, rtol, atol, max_steps):
    loss = as_loss(loss)
    t_end = positive(t_end, "t_end")
    choice(method, tuple(METHODS) + ("auto",), "method")
    positive(rtol, "rtol")
    positive(atol, "atol")
    if max_steps is not None and max_steps != "default":
        positive_int(max_steps, "max_steps")
    return loss, t_end


def _times(t_eval, t_end):
    if t_eval is None:
        return None
    t_eval = real_array(t_eval, "t_eval")
    if t_eval.ndim != 1 or t_eval.size == 0 or not np.all(np.isfinite(t_eval)) or \
            np.any(np.diff(t_eval) <= 0) or t_eval[0] < 0 or t_eval[-1] > t_end:
        raise ValueError(f"t_eval must be an increasing 1-D array inside [0, t_end = {t_end:g}].")
    return t_eval


def _check_start(loss, X, what="x0"):
    with np.errstate(all="ignore"):
        finite = np.all(np.isfinite(loss.grad(X))) and np.all(np.isfinite(loss.value(X)))
    if not finite:
        raise ValueError(f"{what}: the loss or its gradient is not finite at the start "
                         f"{np.round(X, 6).tolist() if X.size <= 10 else '(some start)'}; "
                         "start inside the loss's domain.")


def _samples(run, t_eval):
    """Output times and states: the accepted steps, or ``t_eval`` within the reached span."""
    if t_eval is None:
        return run.ts, run.ys
    keep = t_eval[t_eval <= run.ts[-1] * (1 + 1e-12)]
    if keep.size == 0:
        return run.ts[:1], run.ys[:1]
    return keep, np.asarray(run.dense(keep)).T


def _finish(loss, run, t_eval, label, before, split=None, extras=None):
    """Build the Trajectory: states, L and |grad L| at the output times, counts."""
    counts = loss.counts.spent_since(before)
    ts, ys = _samples(run, t_eval)
    xs = ys if split is None else ys[:, :split]
    values, grad_norms = loss._observe(xs)
    k, status, message = cut_at_nonfinite(values, run.status, run.message, ts)
    ts, ys, xs, values, grad_norms = ts[:k], ys[:k], xs[:k], values[:k], grad_norms[:k]
    dense = run.dense if split is None or run.dense is None else PositionPart(run.dense, split)
    more = extras(ys) if extras is not None else {}
    return Trajectory(ts, xs, values, grad_norms, status, message, label,
                      extras=more, dense=dense, **counts)


def _converged(gnorm, gtol):
    """The converged stop reason when |grad L| = ``gnorm`` is at most ``gtol``, else None."""
    if gtol is not None and gnorm <= gtol:
        return Status.CONVERGED, f"|grad L| = {gnorm:.3g} <= gtol = {gtol:g}"
    return None


def _bound_stop(max_norm, n):
    limit = max_norm ** 2 if max_norm < 1e150 else np.inf  # a float ** 2 raises past 1.3e154

    def check(y):
        x = y[:n]
        if not x @ x <= limit:
            norm = safe_norm(x)
            if not norm <= max_norm:
                return Status.DIVERGED, (f"|x| = {norm:.3g} exceeded max_norm = "
                                         f"{max_norm:g}; the path diverges")
        return None
    return check


def gradient_flow(loss, x0, t_end, method="LSODA", *, rtol=1e-8, atol=1e-10, t_eval=None,
                  dense_output=True, gtol=None, max_norm=1e8, maximize=False,
                  max_steps="default"):
    """Integrate the gradient flow dx/dt = -grad L(x) from ``x0`` over [0, t_end].

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        Start, or m starts integrated together as one stacked system (see Notes).
    t_end : float
        End time, > 0.
    method : {"LSODA", "RK45", "DOP853", "RK23", "Radau", "BDF", "auto"}
        A :func:`scipy.integrate.solve_ivp` method. Implicit methods get the analytic
        Jacobian -H(x) (sparse for n >= 100, banded for LSODA when the Hessian is banded).
        Explicit methods watch for stiffness (|h lambda_max(H)| held at their stability
        limit) and end ``failed`` with a message naming an implicit method rather than take
        millions of steps; ``"auto"`` starts with DOP853 and switches to Radau there.
    rtol, atol : float
        Solver tolerances.
    t_eval : array_like, optional
        Output times; by default the solver's accepted steps.
    dense_output : bool
        Keep the continuous solution, ``traj.at(t)``.
    gtol : float, optional
        Stop with status ``converged`` once |grad L(x)| <= gtol.
    max_norm : float
        Stop with status ``diverged`` once |x| > max_norm.
    maximize : bool
        Integrate gradient ascent dx/dt = +grad L(x) instead.
    max_steps : int, "default" or None
        Step budget (status ``failed``, with a message naming it, when exhausted). The
        default is 100,000 steps, fewer for large systems so the stored dense solution stays
        under 2e8 numbers (:func:`flowsim._ode.default_max_steps`); None means no budget.

    Returns
    -------
    Trajectory, or BatchTrajectory for ``x0`` of shape (m, n)

    Notes
    -----
    .. math:: \\dot x = -\\nabla L(x), \\qquad
              \\frac{d}{dt} L(x(t)) = -|\\nabla L(x(t))|^2 \\le 0 .

    Losses with kinks (``abs``, ``max``, ``min``, ``relu``), one start: the minimal-norm
    subgradient flow x' = -d°L(x), which slides along a kink that both sides push into
    (:mod:`flowsim.nonsmooth`; an explicit method, DOP853 unless RK23/RK45 is named).

    Many starts (:mod:`flowsim.batch_flow`): the m paths are one system of size m*n; each
    right-hand side is one batched gradient call, and implicit methods get the
    block-diagonal sparse Jacobian. A start that breaks the shared solver is frozen and
    marked ``failed`` alone; the others go on to their own end. ``rtol`` and
    ``atol`` hold for every start: RK23/RK45 control the largest per-start error norm, the
    other methods run at tolerances divided by sqrt(m) (their error norm is the RMS over
    the whole stacked state, see :func:`flowsim._ode.stacked`). A start that
    leaves ``max_norm`` (or meets a non-finite gradient) is frozen there and marked
    diverged, so it cannot stall the others.

    Examples
    --------
    >>> from flowsim import losses
    >>> traj = gradient_flow(losses.rosenbrock(2), [-1.0, 1.0], t_end=50.0)
    >>> bool(np.allclose(traj.x_final, [1.0, 1.0], atol=1e-3))
    True
    """
    loss, t_end = _common(loss, t_end, method, rtol, atol, max_steps)
    X = start_points(x0, loss.n)
    if gtol is not None:
        gtol = positive(gtol, "gtol")
    max_norm = positive(max_norm, "max_norm")
    t_eval = _times(t_eval, t_end)
    _check_start(loss, X)
    if X.ndim == 2:
        from .batch_flow import batch_gradient_flow
        return batch_gradient_flow(loss, X, t_end, method, rtol, atol, t_eval, dense_output,
                                   gtol, max_norm, maximize, max_steps)
    if not maximize and has_kinks(loss.expr) and loss.n_samples is None:
        return _subgradient_flow(loss, X, t_end, method, rtol, atol, t_eval, gtol, max_norm,
                                 max_steps)
    sign = 1.0 if maximize else -1.0
    n = loss.n
    rows, cols = loss.hessian_pattern
    sparse = n >= SPARSE_FROM and rows.size < 0.1 * n * n

    def sparse_jac(t, x):
        return sign * loss.hess(x, sparse=True)

    def dense_jac(t, x):
        return sign * loss.hess(x)

    jac_args = (sparse_jac, dense_jac, n, int(np.max(np.abs(rows - cols), initial=0)), sparse)
    options = jacobian_for(method, *jac_args)
    implicit = jacobian_for(AUTO[1], *jac_args)
    bound = _bound_stop(max_norm, n)

    grad = loss._fast("grad")

    def stop(t, x, solver):
        reason = bound(x)
        if reason is None and gtol is not None:
            f = getattr(solver, "f", None)  # explicit RK solvers keep f(t, y) = sign * grad
            reason = _converged(np.linalg.norm(f if f is not None else grad(x)), gtol)
        return reason

    if maximize:
        def fun(t, x):
            return grad(x)
    else:
        def fun(t, x):
            out = grad(x)
            np.negative(out, out=out)
            return out

    before = loss.counts
    run = integrate(fun, X, t_end, method=method, rtol=rtol,
                    atol=atol, solver_options=options,
                    dense_output=dense_output or t_eval is not None, stop=stop,
                    max_steps=max_steps,
                    jacobian=loss._watchdog(sparse_jac if sparse else dense_jac),
                    switch_options=implicit)
    label = f"gradient {'ascent' if maximize else 'flow'} ({method})"
    return _finish(loss, run, t_eval, label, before)


def _subgradient_flow(loss, x0, t_end, method, rtol, atol, t_eval, gtol, max_norm,
                      max_steps):
    """The minimal-norm subgradient flow of a loss with kinks (see flowsim.nonsmooth)."""
    explicit = method if method in STABILITY_LIMIT else AUTO[0]
    bound = _bound_stop(max_norm, loss.n)

    def stop(t, x, velocity):  # |x'| = |d°L(x)|, the stationarity measure of the flow
        reason = bound(x)
        if reason is None and gtol is not None:
            reason = _converged(np.linalg.norm(velocity()), gtol)
        return reason

    before = loss.counts
    budget = default_max_steps(loss.n) if max_steps == "default" else (max_steps or 10 ** 9)
    ts, xs, dense, status, message = integrate_nonsmooth(
        loss, x0, t_end, method=explicit, rtol=rtol, atol=atol, max_steps=budget, stop=stop)
    run = Integration(ts, xs, dense, status, message)
    return _finish(loss, run, t_eval if dense is not None else None,
                   f"subgradient flow ({explicit})", before)


def newton_flow(loss, x0, t_end, method="RK45", *, rtol=1e-8, atol=1e-10, t_eval=None,
                dense_output=True, gtol=None, max_norm=1e8,
                max_steps="default"):
    """Integrate the Newton flow dx/dt = -H(x)^{-1} grad L(x), the limit of damped Newton.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,)
    t_end : float
    method : str
        RK45 by default: near a non-degenerate minimum the Newton flow's linearization is -I,
        so it is not stiff (implicit methods approximate its Jacobian by finite differences).
    gtol, max_norm, max_steps
        As in :func:`gradient_flow`.

    Returns
    -------
    Trajectory
        Status ``failed`` with a message where H(x) stops being positive definite (the flow
        is then no longer a descent flow, or H is singular); the path up to there is kept.

    Notes
    -----
    .. math:: \\dot x = -H(x)^{-1} \\nabla L(x), \\qquad
              \\nabla L(x(t)) = e^{-t} \\nabla L(x_0) .

    Examples
    --------
    >>> traj = newton_flow("x**4/4 + y**2", [1.0, 1.0], t_end=5.0)
    >>> bool(abs(traj.grad_norms[-1] - np.exp(-5.0) * np.sqrt(5.0)) < 1e-6)
    True
    """
    loss, t_end = _common(loss, t_end, method, rtol, atol, max_steps)
    x0 = start_points(x0, loss.n, batch=False)
    if gtol is not None:
        gtol = positive(gtol, "gtol")
    bound = _bound_stop(positive(max_norm, "max_norm"), loss.n)
    t_eval = _times(t_eval, t_end)
    _check_start(loss, x0)

    def not_positive_definite(x):
        eigs = np.linalg.eigvalsh(loss.hess(x))
        if not np.all(np.isfinite(eigs)) or eigs[0] <= 1e-12 * max(1.0, abs(eigs[-1])):
            return Status.FAILED, (f"the Hessian is not positive definite at x = "
                                   f"{np.round(x, 6).tolist()} (smallest eigenvalue "
                                   f"{eigs[0]:.3g}); the Newton flow is not a descent flow there")
        return None

    def fun(t, x):
        with np.errstate(all="ignore"):
            try:
                return -np.linalg.solve(loss.hess(x), loss.grad(x))
            except np.linalg.LinAlgError:
                return np.full_like(x, np.nan)

    def stop(t, x, solver):
        reason = bound(x) or not_positive_definite(x)
        if reason is None and gtol is not None:
            reason = _converged(np.linalg.norm(loss.grad(x)), gtol)
        return reason

    before = loss.counts
    start_problem = not_positive_definite(x0)
    if start_problem is not None:
        run = Integration(np.array([0.0]), x0[None, :], None, *start_problem)
    else:
        run = integrate(fun, x0, t_end, method=method, rtol=rtol, atol=atol,
                        dense_output=dense_output or t_eval is not None, stop=stop,
                        max_steps=max_steps)
    return _finish(loss, run, t_eval if run.dense is not None else None,
                   f"Newton flow ({method})", before)
