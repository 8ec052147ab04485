"""Nesterov's accelerated gradient: a discretization of x'' + (r/t) x' + grad L = 0."""
from __future__ import annotations

import numpy as np

from .._validate import positive
from ._driver import as_record, common_arguments, finish, iterate, jax_run, schedule_steps
from ..jax_backend import on_jax
from .heavy_ball import check_momentum
from ..ensemble.workers import parallel

__all__ = ["nesterov"]


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
    backend : {"numpy", "jax"}
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
    if on_jax(backend):
        return jax_run(loss, "nesterov", X0, etas, etas.map(np.sqrt),
                       options={"momentum": beta_const, "r": r}, gtol=gtol, max_norm=max_norm,
                       spec=spec, single=single, label=label)
    grad = loss._fast("grad", single)
    prev = X0.copy()

    def step(k, X, rows):
        beta = beta_const if beta_const is not None else (k - 1) / (k + r - 1) if k else 0.0
        Y = X + beta * (X - prev[rows])
        G = grad(Y)
        prev[rows] = X
        return Y - etas[k] * G, G if beta == 0 else None, None

    before = loss.counts
    run = iterate(loss, X0, steps, step, etas.map(np.sqrt), gtol=gtol, max_norm=max_norm,
                  record=spec)
    return finish(loss, run, "nesterov", label, before, single=single, record=spec)
