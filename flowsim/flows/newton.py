"""The Newton flow dx/dt = -H(x)^{-1} grad L(x), the continuous limit of damped Newton."""
from __future__ import annotations

import numpy as np

from ..results import Status
from ._common import bound_stop, converged, finish_flow, flow_arguments
from ._solver import Integration, integrate
from .._numeric import row_norms
from ..ensemble.explicit import TABLEAUS
from ..ensemble.run import System, batch_run
from ..ensemble.workers import parallel
from ..backends import on_jax

__all__ = ["newton_flow", "not_descent", "not_descent_message", "PD_MARGIN"]

#: The Newton flow's own rule, on every path (single start, batches, JAX): it is a descent
#: flow only where H(x) is positive definite, its smallest eigenvalue above this fraction of
#: the largest (or of 1).
PD_MARGIN = 1e-12


def not_descent(eigs, xp=np):
    """Where the Newton flow must stop: Hessian eigenvalues (..., n), ascending, -> a bool
    mask (...); ``xp`` is numpy or jax.numpy."""
    return ~xp.all(xp.isfinite(eigs), axis=-1) | \
        (eigs[..., 0] <= PD_MARGIN * xp.maximum(1.0, xp.abs(eigs[..., -1])))


def not_descent_message(x, smallest):
    """The stop message at ``x`` with smallest Hessian eigenvalue ``smallest``."""
    return (f"the Hessian is not positive definite at x = {np.round(x, 6).tolist()} "
            f"(smallest eigenvalue {smallest:.3g}); the Newton flow is not a descent flow there")


def _newton_system(loss):
    """The Newton flow of many starts: x' = -H^{-1} grad L, stopped (failed) per start where
    H is not positive definite."""
    grad = loss.evaluator("grad")

    def fun(t, X):
        H, G = loss.hess(X), grad(X)
        out = np.full_like(X, np.nan)
        eigs = np.linalg.eigvalsh(H)
        ok = np.isfinite(eigs).all(axis=1) & (eigs[:, 0] > 0)
        if ok.any():
            out[ok] = -np.linalg.solve(H[ok], G[ok][..., None])[..., 0]
        return out

    def guard(X):
        eigs = np.linalg.eigvalsh(loss.hess(X))
        bad = not_descent(eigs)
        status = np.where(bad, Status.FAILED, None)
        message = np.array([not_descent_message(x, e[0]) if b else None
                            for x, e, b in zip(X, eigs, bad)], dtype=object)
        return status, message

    return System(fun, None, loss.n, guard=guard, speed=lambda F: row_norms(F))


@parallel
def newton_flow(loss, x0, t_end, *, method="RK45", rtol=1e-8, atol=1e-10, t_eval=None,
                dense_output=True, gtol=None, max_norm=1e8,
                max_steps="default", backend="numpy"):
    r"""Integrate the Newton flow dx/dt = -H(x)^{-1} grad L(x), the limit of damped Newton.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together on :mod:`flowsim.ensemble` (explicit methods).
    t_end : float
    method : str
        RK45 by default: near a non-degenerate minimum the Newton flow's linearization is -I,
        so it is not stiff (implicit methods approximate its Jacobian by finite differences).
    gtol, max_norm, max_steps, backend
        As in :func:`gradient_flow`.

    Returns
    -------
    Trajectory
        Status ``failed`` with a message where H(x) stops being positive definite (the flow
        is then no longer a descent flow, or H is singular); the path up to there is kept.

    Notes
    -----
    .. math:: \dot x = -H(x)^{-1} \nabla L(x), \qquad
              \nabla L(x(t)) = e^{-t} \nabla L(x_0) .

    Examples
    --------
    >>> traj = newton_flow("x**4/4 + y**2", [1.0, 1.0], t_end=5.0)
    >>> bool(abs(traj.grad_norms[-1] - np.exp(-5.0) * np.sqrt(5.0)) < 1e-6)
    True
    """
    loss, x0, t_end, gtol, max_norm, t_eval = flow_arguments(
        loss, x0, t_end, method, rtol, atol, max_steps, gtol, max_norm, t_eval)
    bound = bound_stop(max_norm, loss.n)
    if on_jax(backend):
        from ..jax_backend.flows import newton_flow_jax
        batch = newton_flow_jax(loss, np.atleast_2d(x0), t_end, method, rtol, atol, t_eval,
                                dense_output, gtol, max_norm, max_steps)
        return batch if x0.ndim == 2 else batch.trajectory(0)
    if x0.ndim == 2:
        if method not in TABLEAUS:
            raise ValueError(f"method: a batch of Newton flows runs on an explicit method "
                             f"(RK23, RK45, DOP853), got {method!r}.")
        return batch_run(loss, _newton_system(loss), x0, t_end, method, rtol, atol, t_eval,
                         dense_output, gtol, max_norm, max_steps, "newton_flow",
                         f"Newton flow ({method})")

    def not_positive_definite(x):
        eigs = np.linalg.eigvalsh(loss.hess(x))
        if not_descent(eigs):
            return Status.FAILED, not_descent_message(x, eigs[0])
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
            reason = converged(np.linalg.norm(loss.grad(x)), gtol)
        return reason

    before = loss.counts
    start_problem = not_positive_definite(x0)
    if start_problem is not None:
        run = Integration(np.array([0.0]), x0[None, :], None, *start_problem)
    else:
        run = integrate(fun, x0, t_end, method=method, rtol=rtol, atol=atol,
                        dense_output=dense_output or t_eval is not None, stop=stop,
                        max_steps=max_steps)
    return finish_flow(loss, run, t_eval if run.dense is not None else None, "newton_flow",
                   f"Newton flow ({method})", before)
