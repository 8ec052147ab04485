"""Heun's method: the explicit trapezoid rule, a second-order discretization of the flow."""
from __future__ import annotations

from ._driver import as_record, common_arguments, finish, iterate, jax_run, schedule_steps
from ..jax_backend import on_jax
from ..ensemble.workers import parallel

__all__ = ["heun"]


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
    if on_jax(backend):
        return jax_run(loss, "heun", X0, etas, etas, options={}, gtol=gtol, max_norm=max_norm,
                       spec=spec, single=single, label="Heun")
    grad = loss._fast("grad", single)

    def step(k, X, rows):
        G = grad(X)
        return X - etas[k] / 2 * (G + grad(X - etas[k] * G)), G, None

    before = loss.counts
    run = iterate(loss, X0, steps, step, etas, gtol=gtol, max_norm=max_norm, record=spec)
    return finish(loss, run, "heun", "Heun", before, single=single, record=spec)
