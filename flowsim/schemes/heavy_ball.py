"""Polyak's heavy ball: a discretization of the damped oscillator x'' + gamma x' + grad L = 0."""
from __future__ import annotations

import numpy as np

from .._validate import nonnegative
from ._driver import as_record, common_arguments, run_rule, schedule_steps
from ..ensemble.workers import parallel
from ..rules import UpdateRule

__all__ = ["heavy_ball", "DEFAULT_MOMENTUM", "check_momentum", "HEAVY_BALL"]

#: Default momentum beta of :func:`heavy_ball`.
DEFAULT_MOMENTUM = 0.9


def check_momentum(beta, name="momentum"):
    """``beta`` checked to lie in [0, 1)."""
    beta = nonnegative(beta, name)
    if beta >= 1:
        raise ValueError(f"{name} must lie in [0, 1), got {beta}.")
    return beta


def _previous_iterate(X0, options, xp):
    """The state of a two-step scheme: the previous iterate, x_{-1} = x_0."""
    return xp.array(X0, copy=True)


def _heavy_ball_step(k, eta, x, prev, ops, options):
    g = ops.grad(x)
    return x - eta * g + options["momentum"] * (x - prev), g, x, False


#: x_{k+1} = x_k - eta_k grad L(x_k) + beta (x_k - x_{k-1}), on every backend.
HEAVY_BALL = UpdateRule(_heavy_ball_step, _previous_iterate,
                        options={"momentum": DEFAULT_MOMENTUM})


@parallel
def heavy_ball(loss, x0, eta, steps, *, momentum=DEFAULT_MOMENTUM, gtol=None, max_norm=1e8,
               record="all", record_every=1, backend="numpy"):
    r"""Polyak's heavy ball x_{k+1} = x_k - eta_k grad L(x_k) + beta (x_k - x_{k-1}).

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together (a BatchTrajectory equal to m single runs).
    eta : float or callable
        Step, or a schedule ``k -> eta_k``.
    steps : int
    momentum : float
        beta in [0, 1).
    gtol, max_norm, record, record_every, backend
        As in :func:`~flowsim.schemes.gradient_descent`.

    Returns
    -------
    Trajectory
        Iterate k at time sqrt(eta_0) + ... + sqrt(eta_{k-1}): with a fixed step the scheme
        follows :func:`flowsim.heavy_ball_flow` with mass 1 and friction
        (1 - beta)/sqrt(eta).

    Notes
    -----
    .. math:: x_{k+1} = x_k - \eta_k \nabla L(x_k) + \beta (x_k - x_{k-1}), \quad
              x_{-1} = x_0

    On L = lambda x^2 / 2 the iterates solve the linear recurrence
    x_{k+1} = (1 + beta - eta lambda) x_k - beta x_{k-1}.

    Examples
    --------
    >>> traj = heavy_ball("x**2 / 2", [1.0], eta=0.5, steps=2, momentum=0.5)
    >>> traj.xs[:, 0].tolist()
    [1.0, 0.5, 0.0]
    """
    loss, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    etas = schedule_steps(eta, steps)
    beta = check_momentum(momentum)
    spec = as_record(record, record_every)
    return run_rule(loss, HEAVY_BALL, {"momentum": beta}, X0, steps, etas, etas.map(np.sqrt),
                    gtol=gtol, max_norm=max_norm, spec=spec, single=single, name="heavy_ball",
                    label=f"heavy ball (beta={beta:g})",
                    backend=backend)
