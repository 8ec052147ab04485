"""The Newton flow dx/dt = -H(x)^{-1} grad L(x), the continuous limit of damped Newton."""
from __future__ import annotations

import numpy as np

from ..ensemble.workers import parallel
from ..rules import VectorField
from .field import FieldFlow

__all__ = ["newton_flow", "not_descent", "not_descent_message", "PD_MARGIN", "NEWTON_FIELD"]

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


def _newton_field(x, ops, options):
    return -ops.solve(ops.hess(x), ops.grad(x))


def _newton_guard(x, ops, options):
    return not_descent(ops.xp.linalg.eigvalsh(ops.hess(x)), ops.xp)


def _newton_why(x, ops, options):
    return not_descent_message(x, np.linalg.eigvalsh(ops.hess(x[None])[0])[0])


#: The Newton flow written once: x' = -H(x)^{-1} grad L(x), stopped (failed) where H(x) is
#: not positive definite (:func:`not_descent`). Every path runs it: scipy's steppers for one
#: start, the per-start engines for a batch (implicit ones with a finite-difference
#: Jacobian), diffrax with ``backend="jax"``.
NEWTON_FIELD = VectorField(_newton_field, guard=_newton_guard, why=_newton_why)
_NEWTON = FieldFlow("newton_flow", "Newton flow", NEWTON_FIELD)


@parallel
def newton_flow(loss, x0, t_end, *, method="RK45", rtol=1e-8, atol=1e-10, t_eval=None,
                dense_output=True, gtol=None, max_norm=1e8,
                max_steps="default", backend="numpy"):
    r"""Integrate the Newton flow dx/dt = -H(x)^{-1} grad L(x), the limit of damped Newton.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together on :mod:`flowsim.ensemble`.
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
    return _NEWTON._run(loss, x0, t_end, method=method, rtol=rtol, atol=atol, t_eval=t_eval,
                        dense_output=dense_output, gtol=gtol, max_norm=max_norm,
                        max_steps=max_steps, backend=backend)
