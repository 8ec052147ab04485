"""Nesterov's accelerated gradient: a discretization of x'' + (r/t) x' + grad L = 0."""
from __future__ import annotations

import numpy as np

from .._validate import positive
from ._driver import as_record, common_arguments, run_rule, schedule_steps
from .heavy_ball import _previous_iterate, check_momentum
from ..ensemble.workers import parallel
from ..rules import UpdateRule

__all__ = ["nesterov", "NESTEROV"]


def _nesterov_step(k, eta, x, prev, ops, options):
    xp, beta = ops.xp, options["momentum"]
    if beta is None:
        beta = xp.where(k > 0, (k - 1.0) / (k + options["r"] - 1.0), 0.0)
    y = x + beta * (x - prev)
    g = ops.grad(y)
    # |grad L| is tested where the gradient is taken at x_k itself (beta_k = 0)
    return y - eta * g, xp.where(beta == 0, g, xp.inf), x, False


#: y_k = x_k + beta_k (x_k - x_{k-1}), x_{k+1} = y_k - eta_k grad L(y_k), beta_k =
#: (k - 1)/(k + r - 1) or a constant momentum, on every backend.
NESTEROV = UpdateRule(_nesterov_step, _previous_iterate, options={"momentum": None, "r": 3.0})


@parallel
def nesterov(loss, x0, eta, steps, *, r=3.0, momentum=None, gtol=None, max_norm=1e8,
             record="all", record_every=1, backend="numpy"):
    r"""Nesterov's accelerated gradient y_k = x_k + beta_k (x_k - x_{k-1}),
    x_{k+1} = y_k - eta_k grad L(y_k).

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together (a BatchTrajectory equal to m single runs).
    eta : float or callable
        Step, or a schedule ``k -> eta_k``.
    steps : int
    r : float
        beta_k = (k - 1)/(k + r - 1); r = 3 is Nesterov's choice (k - 1)/(k + 2).
    momentum : float, optional
        A constant beta in [0, 1) instead (for strongly convex losses).
    gtol : float, optional
        Stop (converged) where |grad L(y_k)| <= gtol at a step with beta_k = 0.
    max_norm : float
        Stop (diverged) once |x_k| > max_norm.
    record, record_every
        What a run keeps (see :func:`~flowsim.schemes.gradient_descent`).
    backend : {"numpy", "jax", "auto"}
        As in :func:`~flowsim.schemes.gradient_descent`.

    Returns
    -------
    Trajectory
        Iterate k at time sqrt(eta_0) + ... + sqrt(eta_{k-1}): with a fixed step and
        beta_k = (k-1)/(k+r-1) the scheme follows :func:`flowsim.nesterov_flow` with the
        same r (Su, Boyd and Candes).

    Notes
    -----
    .. math:: y_k = x_k + \beta_k (x_k - x_{k-1}), \quad
              x_{k+1} = y_k - \eta_k \nabla L(y_k), \quad
              \beta_k = \frac{k - 1}{k + r - 1}, \ x_{-1} = x_0

    Examples
    --------
    >>> traj = nesterov("x**2 / 2", [1.0], eta=0.5, steps=2)
    >>> traj.xs[:, 0].tolist()
    [1.0, 0.5, 0.25]
    """
    loss, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    etas = schedule_steps(eta, steps)
    r = positive(r, "r")
    beta_const = None if momentum is None else check_momentum(momentum)
    spec = as_record(record, record_every)
    label = f"Nesterov (r={r:g})" if beta_const is None else f"Nesterov (beta={beta_const:g})"
    return run_rule(loss, NESTEROV, {"momentum": beta_const, "r": r}, X0, steps, etas,
                    etas.map(np.sqrt), gtol=gtol, max_norm=max_norm, spec=spec,
                    single=single, name="nesterov", label=label,
                    backend=backend)
