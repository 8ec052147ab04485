"""Proximal gradient (forward-backward splitting) for a smooth loss plus a penalty."""
from __future__ import annotations

import numpy as np

from ..prox import Composite, check_dimension
from ._driver import as_record, common_arguments, finish, iterate, schedule_steps
from ..ensemble.workers import parallel

__all__ = ["proximal_gradient"]


@parallel
def proximal_gradient(loss, x0, eta, steps, *, prox=None, gtol=None, max_norm=1e8,
                      record="all", record_every=1):
    r"""Forward-backward splitting x_{k+1} = prox_{eta_k g}(x_k - eta_k grad f(x_k)).

    Parameters
    ----------
    loss : Loss, str or flowsim.prox.Composite
        The smooth part f; a :class:`~flowsim.prox.Composite` brings its own penalty.
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together (a BatchTrajectory equal to m single runs).
    eta : float or callable
        Step, or a schedule ``k -> eta_k``; converges for eta <= 1/Lipschitz(grad f).
    steps : int
    prox : penalty from :mod:`flowsim.prox`
        g, with ``value`` and ``prox``; required unless ``loss`` is a Composite.
    gtol : float, optional
        Stop when the gradient mapping |x - prox(x - eta grad f(x))| / eta <= gtol.
    max_norm : float
        Stop (diverged) once |x_k| > max_norm.
    record, record_every
        What a run keeps (see :func:`~flowsim.schemes.gradient_descent`).

    Returns
    -------
    Trajectory
        ``values`` are f + g; ``grad_norms`` are the gradient-mapping norms, the
        stationarity measure of composite problems (0 exactly at minimizers of f + g).

    Notes
    -----
    .. math:: x_{k+1} = \operatorname{prox}_{\eta_k g}\bigl(x_k - \eta_k \nabla f(x_k)\bigr)

    It discretizes the subgradient flow of f + g with iterate k at t_k = eta_0 + ... +
    eta_{k-1}, explicit in f and implicit in g.

    Examples
    --------
    >>> from flowsim.prox import L1
    >>> traj = proximal_gradient("(x - 3)**2 / 2", [0.0], 1.0, 2, prox=L1(1.0))
    >>> traj.xs[:, 0].tolist()
    [0.0, 2.0, 2.0]
    """
    if isinstance(loss, Composite):
        prox = loss.penalty if prox is None else prox
        loss = loss.smooth
    if prox is None or not hasattr(prox, "prox") or not hasattr(prox, "value"):
        raise ValueError("prox must be a penalty from flowsim.prox (with value and prox), "
                         "e.g. flowsim.prox.L1(0.1).")
    f, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    check_dimension(prox, f.n)
    etas = schedule_steps(eta, steps)
    spec = as_record(record, record_every)
    grad = f.evaluator("grad", batched=not single)

    def step(k, X, rows):
        X_next = prox.prox(X - etas[k] * grad(X), etas[k])
        return X_next, (X - X_next) / etas[k], None

    before = f.counts
    run = iterate(f, X0, steps, step, etas, gtol=gtol, max_norm=max_norm, record=spec)
    smooth, grads = f.observe(run.xs, full=True)
    e = etas[np.minimum(run.ks, steps - 1)][:, None]  # the step used from each kept x_k
    mapping = np.linalg.norm(run.xs - prox.prox(run.xs - e * grads, e), axis=-1) / e[:, 0]
    values = smooth + prox.value(run.xs)
    return finish(f, run, "proximal_gradient", f"proximal gradient ({type(prox).__name__})",
                  before, single=single, values=values, grad_norms=mapping, record=spec)
