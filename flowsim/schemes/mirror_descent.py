r"""Mirror descent, Bregman proximal point and natural-gradient descent: gradient steps in
another geometry."""
from __future__ import annotations

import numpy as np

from ..geometry import Metric, potential_of
from ._driver import as_record, common_arguments, finish, iterate, schedule_steps
from ..ensemble.workers import parallel

__all__ = ["mirror_descent", "natural_gradient", "bregman_proximal_point"]


def _setup(loss, x0, eta, steps, gtol, max_norm, record, record_every, potential):
    """The checked arguments of a mirror scheme and its potential (|x|^2/2 by default)."""
    loss, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    psi = potential_of(loss, potential)
    psi.check_at(X0)
    return (loss, X0, steps, gtol, max_norm, single, psi, schedule_steps(eta, steps),
            as_record(record, record_every))


@parallel
def mirror_descent(loss, x0, eta, steps, *, potential=None, gtol=None, max_norm=1e8, record="all",
                   record_every=1):
    r"""Mirror descent :math:`\nabla\psi(x_{k+1}) = \nabla\psi(x_k) - \eta_k \nabla L(x_k)`.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
    eta : float or callable
        Step, or a schedule ``k -> eta_k``.
    steps : int
    potential : str or sympy.Expr
        psi in the loss's variables (see :class:`flowsim.geometry.Potential`): with
        ``"x*log(x) + y*log(y)"`` it is the unnormalized exponentiated gradient on the
        orthant, x_{k+1} = x_k exp(-eta_k grad L(x_k)); ``"simplex"`` is exponentiated
        gradient on the probability simplex, x_{k+1} proportional to that (starts must lie
        on the simplex; see :class:`flowsim.geometry.SimplexEntropy`); with
        ``"(x**2 + y**2)/2"`` (the default, |x|^2/2) gradient descent.
    gtol, max_norm, record, record_every
        As in :func:`~flowsim.schemes.gradient_descent`.

    Returns
    -------
    Trajectory or BatchTrajectory
        Iterate k at time eta_0 + ... + eta_{k-1} on :func:`flowsim.flows.mirror.mirror_flow`.
        A step whose inverse mirror map fails (Newton finds no x) ends that start as failed.

    Examples
    --------
    >>> tr = mirror_descent("2*x + 3*y", [1.0, 2.0], 0.1, 10, potential="x*log(x) + y*log(y)")
    >>> bool(np.allclose(tr.xs[-1], [np.exp(-2), 2 * np.exp(-3)], rtol=1e-13))
    True
    """
    loss, X0, steps, gtol, max_norm, single, psi, etas, spec = _setup(
        loss, x0, eta, steps, gtol, max_norm, record, record_every, potential)
    grad = loss.evaluator("grad")

    def step(k, X, rows):
        G = grad(X)
        X_next = psi.inverse(psi.grad(X) - etas[k] * G, X)
        failed = ~np.all(np.isfinite(X_next), axis=1)
        info = None
        if failed.any():
            X_next[failed] = X[failed]
            text = ("the inverse mirror map found no point (the step left the potential's "
                    "domain); take a smaller eta")
            info = {"failed": failed, "failed_messages": [text] * int(failed.sum())}
        return X_next, G, info

    before = loss.counts
    run = iterate(loss, X0, steps, step, etas, gtol=gtol, max_norm=max_norm, record=spec)
    return finish(loss, run, "mirror_descent", psi.descent_label, before, single=single,
                  record=spec)


@parallel
def natural_gradient(loss, x0, eta, steps, *, metric=None, gtol=None, max_norm=1e8, record="all",
                     record_every=1):
    r"""Natural-gradient descent :math:`x_{k+1} = x_k - \eta_k G(x_k)^{-1}\nabla L(x_k)`.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
    eta : float or callable
    steps : int
    metric : n x n nested sequence of formulas
        G(x) (see :class:`flowsim.geometry.Metric`); the identity (the default) gives
        gradient descent.
    gtol, max_norm, record, record_every
        As in :func:`~flowsim.schemes.gradient_descent`.

    Returns
    -------
    Trajectory or BatchTrajectory
        Iterate k at time eta_0 + ... + eta_{k-1} on the natural-gradient flow
        (:func:`flowsim.flows.mirror.mirror_flow` with ``metric=``).

    Examples
    --------
    >>> tr = natural_gradient("x**2 + y**2", [1.0, 1.0], 0.25, 1, metric=[[2, 0], [0, 1]])
    >>> tr.xs[-1].tolist()
    [0.75, 0.5]
    """
    loss, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    if metric is None:
        metric = [[int(i == j) for j in range(loss.n)] for i in range(loss.n)]
    G_of = metric if isinstance(metric, Metric) else Metric(loss, metric)
    etas = schedule_steps(eta, steps)
    spec = as_record(record, record_every)
    grad = loss.evaluator("grad")

    def step(k, X, rows):
        G = grad(X)
        with np.errstate(all="ignore"):
            M = G_of(X)
            ok = np.abs(np.linalg.det(M)) > 0
            direction = np.zeros_like(X)
            direction[ok] = np.linalg.solve(M[ok], G[ok][..., None])[..., 0]
        info = None
        if not ok.all():
            info = {"failed": ~ok,
                    "failed_messages": ["the metric is singular here"] * int((~ok).sum())}
        return X - etas[k] * direction, G, info

    before = loss.counts
    run = iterate(loss, X0, steps, step, etas, gtol=gtol, max_norm=max_norm, record=spec)
    return finish(loss, run, "natural_gradient", "natural gradient", before, single=single,
                  record=spec)


@parallel
def bregman_proximal_point(loss, x0, eta, steps, *, potential=None, iterations=50, gtol=None,
                           max_norm=1e8, record="all", record_every=1):
    r"""Bregman proximal point :math:`\nabla\psi(x_{k+1}) = \nabla\psi(x_k) -
    \eta_k\nabla L(x_{k+1})`: the implicit (backward Euler) step of the mirror flow,
    :math:`x_{k+1} = \arg\min_x L(x) + D_\psi(x, x_k)/\eta_k`.

    Parameters
    ----------
    loss, x0, eta, steps
        As for every scheme.
    potential : str or sympy.Expr, optional
        psi (see :func:`mirror_descent`); |x|^2/2 by default, which gives
        :func:`~flowsim.schemes.proximal_point`.
    iterations : int
        Newton iterations per step on :math:`\nabla\psi(x) + \eta_k\nabla L(x) =
        \nabla\psi(x_k)`, with Jacobian :math:`\nabla^2\psi + \eta_k H`, from x_k.
    gtol, max_norm, record, record_every
        As in :func:`~flowsim.schemes.gradient_descent`.

    Returns
    -------
    Trajectory or BatchTrajectory
        A start whose implicit equation is not solved to 1e-10 (relative) ends as failed.

    Examples
    --------
    >>> tr = bregman_proximal_point("x**2/2", [1.0], 0.5, 1)
    >>> round(float(tr.xs[-1, 0]), 15)   # Euclidean: x / (1 + eta)
    0.666666666666667
    """
    loss, X0, steps, gtol, max_norm, single, psi, etas, spec = _setup(
        loss, x0, eta, steps, gtol, max_norm, record, record_every, potential)

    def step(k, X, rows):
        # the geometry's own implicit step: Newton, on the simplex with its multiplier
        Y, solved = psi.bregman_step(loss, X, etas[k], iterations)
        return _implicit_outcome(X, Y, solved)

    before = loss.counts
    run = iterate(loss, X0, steps, step, etas, gtol=gtol, max_norm=max_norm, record=spec)
    return finish(loss, run, "bregman_proximal_point", "Bregman proximal point", before,
                  single=single, record=spec)


def _implicit_outcome(X, Y, solved):
    """A Bregman step's ``(Y, None, info)``: rows not ``solved`` (or not finite) keep X and
    fail with the reason."""
    failed = ~(solved & np.all(np.isfinite(Y), axis=1))
    info = None
    if failed.any():
        Y = Y.copy()
        Y[failed] = X[failed]
        info = {"failed": failed, "failed_messages": [
            "Newton's method did not solve the implicit step; take a smaller eta"]
            * int(failed.sum())}
    return Y, None, info
