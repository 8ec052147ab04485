"""Heun's method: the explicit trapezoid rule, a second-order discretization of the flow."""
from __future__ import annotations

from ._driver import common_arguments, finish, iterate, schedule_steps

__all__ = ["heun"]


def heun(loss, x0, eta, steps, *, gtol=None, max_norm=1e8):
    r"""Heun's method (explicit trapezoid) on the gradient flow.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,)
    eta : float or callable
        Step, or a schedule ``k -> eta_k``.
    steps : int
    gtol : float, optional
        Stop (converged) at the first iterate with |grad L| <= gtol.
    max_norm : float
        Stop (diverged) once |x_k| > max_norm.

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
    loss, x0, steps, gtol, max_norm = common_arguments(loss, x0, steps, gtol, max_norm)
    etas = schedule_steps(eta, steps)
    grad = loss._fast("grad")

    def step(k, x):
        g = grad(x)
        return x - etas[k] / 2 * (g + grad(x - etas[k] * g)), g, None

    before = loss.counts
    xs, ts, status, message, _ = iterate(loss, x0, steps, step, etas, gtol=gtol,
                                         max_norm=max_norm)
    return finish(loss, xs, ts, status, message, "heun", "Heun", before)
