"""Heun's method: the explicit trapezoid rule, a second-order discretization of the flow."""
from __future__ import annotations

from ._driver import as_record, common_arguments, run_rule, schedule_steps
from ..ensemble.workers import parallel
from ..rules import UpdateRule

__all__ = ["heun", "HEUN"]


def _heun_step(k, eta, x, state, ops, options):
    g = ops.grad(x)
    return x - eta / 2 * (g + ops.grad(x - eta * g)), g, state, False


#: x_{k+1} = x_k - eta_k/2 (grad L(x_k) + grad L(x_k - eta_k grad L(x_k))), on every backend.
HEUN = UpdateRule(_heun_step, grads_per_step=2)


@parallel
def heun(loss, x0, eta, steps, *, gtol=None, max_norm=1e8, record="all", record_every=1,
         backend="numpy"):
    r"""Heun's method (explicit trapezoid) on the gradient flow.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together (a BatchTrajectory equal to m single runs).
    eta : float or callable
        Step, or a schedule ``k -> eta_k``.
    steps : int
    gtol, max_norm, record, record_every, backend
        As in :func:`~flowsim.schemes.gradient_descent`.

    Returns
    -------
    Trajectory
        Iterate k at time eta_0 + ... + eta_{k-1}. Its error against the flow at a fixed
        time falls like eta^2, against eta for the Euler schemes: the control of
        :func:`flowsim.convergence_order`.

    Notes
    -----
    .. math:: \tilde x = x_k - \eta_k \nabla L(x_k), \quad
              x_{k+1} = x_k - \frac{\eta_k}{2}\bigl(\nabla L(x_k) + \nabla L(\tilde x)\bigr)

    On L = lambda x^2 / 2 each step multiplies x by 1 - eta lambda + (eta lambda)^2 / 2, the
    Taylor polynomial of e^{-eta lambda} to second order.

    Examples
    --------
    >>> traj = heun("x**2 / 2", [1.0], eta=0.5, steps=1)
    >>> traj.xs[:, 0].tolist()
    [1.0, 0.625]
    """
    loss, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    etas = schedule_steps(eta, steps)
    spec = as_record(record, record_every)
    return run_rule(loss, HEUN, {}, X0, steps, etas, etas, gtol=gtol, max_norm=max_norm,
                    spec=spec, single=single, name="heun", label="Heun",
                    backend=backend)
