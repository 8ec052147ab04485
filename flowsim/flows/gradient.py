"""The gradient flow dx/dt = -grad L(x) on scipy's ODE solvers.

The Newton flow is in :mod:`flowsim.flows.newton`, the momentum ODEs (heavy ball, Nesterov) in
:mod:`flowsim.flows.momentum`, many starts at once in :mod:`flowsim.flows.batch` and losses
with kinks in :mod:`flowsim.flows.nonsmooth`.

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

from .. import stops
from ..loss import SPARSE_FROM
from ._common import bound_stop, converged, finish_flow, flow_arguments, outside_run
from ._solver import (AUTO, STABILITY_LIMIT, Integration, integrate,
                      jacobian_for)
from .nonsmooth import has_kinks, integrate_nonsmooth
from ..backends import on_jax, refuse
from ..ensemble.workers import parallel
from ..rules import VectorField

__all__ = ["gradient_flow", "GRADIENT_FIELD"]


def _gradient_field(x, ops, options):
    return options["sign"] * ops.grad(x)


def _gradient_jacobian(x, ops, options):
    return options["sign"] * ops.hess(x)


#: The gradient flow as one vector field, x' = sign grad L(x) (sign -1: descent, +1: ascent),
#: with Jacobian sign H(x): what the JAX backend runs (:mod:`flowsim.jax_backend.flows`).
#: The numpy paths below are its explicit extensions: sparse and banded Jacobians for
#: scipy's implicit solvers, the stiffness watch, the subgradient flow on kinks.
GRADIENT_FIELD = VectorField(_gradient_field, _gradient_jacobian, options={"sign": -1.0})


@parallel
def gradient_flow(loss, x0, t_end, *, method="LSODA", rtol=1e-8, atol=1e-10, t_eval=None,
                  dense_output=True, gtol=None, max_norm=1e8, maximize=False,
                  max_steps="default", backend="numpy"):
    r"""Integrate the gradient flow dx/dt = -grad L(x) from ``x0`` over [0, t_end].

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        Start, or m starts integrated together, each on its own steps (see Notes).
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
        under 2e8 numbers (:func:`flowsim.flows._solver.default_max_steps`); None means no budget.
    backend : {"numpy", "jax", "numba", "auto"}
        ``"jax"`` solves the starts with diffrax, vmapped and compiled (an optional extra,
        :mod:`flowsim.jax_backend.flows`: float64, a GPU where JAX finds one), on ``t_eval``
        or 101 even output times. ``"numba"`` runs the per-start engine of RK23, RK45 and
        DOP853 compiled (:mod:`flowsim.compiled.engine`, ``flowsim[numba]``): the numpy
        engine's steps, stop rules and messages, start by start in machine code.
        ``"auto"``: whichever of the two finishes first for this batch, start-up included
        (:func:`flowsim.backends.choose`; numpy for one start or without JAX); the label
        ends with ``[auto: numpy]`` or ``[auto: jax]``.

    Returns
    -------
    Trajectory, or BatchTrajectory for ``x0`` of shape (m, n)

    Notes
    -----
    .. math:: \dot x = -\nabla L(x), \qquad
              \frac{d}{dt} L(x(t)) = -|\nabla L(x(t))|^2 \le 0 .

    Losses with kinks (``abs``, ``max``, ``min``, ``relu``), one start: the minimal-norm
    subgradient flow x' = -d°L(x), which slides along a kink that both sides push into
    (:mod:`flowsim.flows.nonsmooth`; an explicit method, DOP853 unless RK23/RK45 is named).

    Many starts (:mod:`flowsim.flows.batch`) run on the per-start engines of
    :mod:`flowsim.ensemble`: one batched gradient call per stage for all active starts,
    each start with its own step size, error control (``rtol``, ``atol``) and stop rules;
    explicit methods on the BS3/DP5 pairs, implicit ones on RODAS4 (order 4). A start
    that leaves ``max_norm``, meets a singular path or a non-finite gradient is held there
    with its own status and message; the others go on to their own end.

    Examples
    --------
    >>> from flowsim import losses
    >>> traj = gradient_flow(losses.rosenbrock(2), [-1.0, 1.0], t_end=50.0)
    >>> bool(np.allclose(traj.x_final, [1.0, 1.0], atol=1e-3))
    True
    """
    loss, X, t_end, gtol, max_norm, t_eval = flow_arguments(
        loss, x0, t_end, method, rtol, atol, max_steps, gtol, max_norm, t_eval)
    if on_jax(backend, compiled=True):
        if has_kinks(loss.expr) and loss.n_samples is None:
            refuse("backend='jax' integrates smooth flows; this loss has kinks (abs, "
                             "max, min): use backend='numpy' for its subgradient flow.")
        from ..jax_backend.flows import field_flow_jax
        batch = field_flow_jax(loss, "gradient_flow", GRADIENT_FIELD,
                               {"sign": 1.0 if maximize else -1.0}, np.atleast_2d(X), t_end,
                               method, rtol, atol, t_eval, dense_output, gtol, max_norm,
                               max_steps, f"gradient {'ascent' if maximize else 'flow'}")
        return batch if X.ndim == 2 else batch.trajectory(0)
    if X.ndim == 2 or backend == "numba":   # (one start on numba: a batch of one)
        from .batch import batch_gradient_flow
        batch = batch_gradient_flow(loss, np.atleast_2d(X), t_end, method, rtol, atol, t_eval,
                                    dense_output, gtol, max_norm, maximize, max_steps,
                                    backend)
        return batch if X.ndim == 2 else batch.trajectory(0)
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
    grad = loss.evaluator("grad", batched=False)

    def stop(t, x, solver):   # max_norm: integrate tests it with its finiteness dot
        f = getattr(solver, "f", None)  # explicit RK solvers keep f(t, y) = sign * grad
        return converged(np.linalg.norm(f if f is not None else grad(x)), gtol)

    if gtol is None:
        stop = None

    if maximize:
        def fun(t, x):
            return grad(x)
    else:
        def fun(t, x):
            out = grad(x)
            np.negative(out, out=out)
            return out

    before = loss.counts
    run = outside_run(X, max_norm) or integrate(
                    fun, X, t_end, method=method, rtol=rtol,
                    atol=atol, solver_options=options,
                    dense_output=dense_output or t_eval is not None, stop=stop,
                    max_steps=max_steps,
                    jacobian=loss.watched(sparse_jac if sparse else dense_jac),
                    switch_options=implicit, max_norm=max_norm)
    label = f"gradient {'ascent' if maximize else 'flow'} ({method})"
    return finish_flow(loss, run, t_eval, "gradient_flow", label, before)


def _subgradient_flow(loss, x0, t_end, method, rtol, atol, t_eval, gtol, max_norm,
                      max_steps):
    """The minimal-norm subgradient flow of a loss with kinks (see flowsim.flows.nonsmooth)."""
    explicit = method if method in STABILITY_LIMIT else AUTO[0]
    bound = bound_stop(max_norm, loss.n)

    def stop(t, x, velocity):  # |x'| = |d°L(x)|, the stationarity measure of the flow
        reason = bound(x)
        if reason is None and gtol is not None:
            reason = converged(np.linalg.norm(velocity()), gtol)
        return reason

    before = loss.counts
    budget = stops.budget(max_steps, loss.n)
    run = outside_run(x0, max_norm) or Integration(*integrate_nonsmooth(
        loss, x0, t_end, method=explicit, rtol=rtol, atol=atol, max_steps=budget, stop=stop))
    return finish_flow(loss, run, t_eval if run.dense is not None else None, "gradient_flow",
                       f"subgradient flow ({explicit})", before)
