r"""Mirror descent, Bregman proximal point and natural-gradient descent: gradient steps in
another geometry."""
from __future__ import annotations

import numpy as np

from ..backends import on_jax, refuse
from ..geometry import Metric, potential_of
from ..rules import bound_rule
from ._driver import as_record, common_arguments, finish, iterate, run_rule, schedule_steps
from ..ensemble.workers import parallel

__all__ = ["mirror_descent", "natural_gradient", "bregman_proximal_point", "rule_of",
           "natural_rule_of"]


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
                   record_every=1, backend="numpy"):
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
    gtol, max_norm, record, record_every, backend
        As in :func:`~flowsim.schemes.gradient_descent`: one update rule (:func:`rule_of`)
        on numpy and on JAX, there for the simplex and for potentials whose inverse mirror
        map is in closed form (Newton's inverse runs on numpy).

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
    on_jax(backend, compiled=True)   # checked before the potential is built
    loss, X0, steps, gtol, max_norm, single, psi, etas, spec = _setup(
        loss, x0, eta, steps, gtol, max_norm, record, record_every, potential)
    if backend == "jax" and not psi.closed_form:
        refuse("backend='jax' runs mirror steps whose inverse mirror map is in closed form "
               "(or the simplex); this potential's is found by Newton's method: use "
               "backend='numpy'.")
    return run_rule(loss, rule_of(psi), {}, X0, steps, etas, etas, gtol=gtol,
                    max_norm=max_norm, spec=spec, single=single, name="mirror_descent",
                    label=psi.descent_label, backend=backend)


def _mirror_step(k, eta, x, state, ops, options, geometry):
    # a start whose step fails is held at x by the driver (numpy's and JAX's alike)
    g = ops.grad(x)
    x_next = geometry.mirror_update(x, g, eta, ops.xp)
    return x_next, g, state, ~ops.xp.all(ops.xp.isfinite(x_next), axis=-1)


def rule_of(geometry):
    r"""The :class:`~flowsim.rules.UpdateRule` of mirror descent in ``geometry`` (a
    :class:`~flowsim.geometry.Potential` or :class:`~flowsim.geometry.SimplexEntropy`):
    :math:`\nabla\psi(x_{k+1}) = \nabla\psi(x_k) - \eta_k g_k`, a start failed where the
    inverse mirror map finds no point. One rule per geometry (by its potential), so the
    JAX backend compiles it once."""
    psi = getattr(geometry, "psi", None)   # (the simplex has no formula: n says it all)
    key = (type(geometry).__name__, geometry.n, "" if psi is None else str(psi.expr),
           () if psi is None else tuple(v.name for v in psi.variables))
    return bound_rule(_mirror_step, key, "the inverse mirror map found no point (the step "
                      "left the potential's domain); take a smaller eta", geometry=geometry)


@parallel
def natural_gradient(loss, x0, eta, steps, *, metric=None, gtol=None, max_norm=1e8, record="all",
                     record_every=1, backend="numpy"):
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
    gtol, max_norm, record, record_every, backend
        As in :func:`~flowsim.schemes.gradient_descent`: one update rule
        (:func:`natural_rule_of`) on numpy and JAX (the metric's entries printed to JAX).

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
    on_jax(backend, compiled=True)
    loss, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    if metric is None:
        metric = [[int(i == j) for j in range(loss.n)] for i in range(loss.n)]
    G_of = metric if isinstance(metric, Metric) else Metric(loss, metric)
    etas = schedule_steps(eta, steps)
    return run_rule(loss, natural_rule_of(G_of), {}, X0, steps, etas, etas, gtol=gtol,
                    max_norm=max_norm,
                    spec=as_record(record, record_every), single=single,
                    name="natural_gradient", label="natural gradient", backend=backend)


def _natural_step(k, eta, x, state, ops, options, metric):
    g = ops.grad(x)
    d = ops.solve(metric.matrix(x, ops.xp), g)   # a singular metric gives a non-finite row
    return x - eta * d, g, state, ~ops.xp.all(ops.xp.isfinite(d), axis=-1)


def natural_rule_of(metric):
    r"""The :class:`~flowsim.rules.UpdateRule` of natural-gradient descent with ``metric``
    (a :class:`~flowsim.geometry.Metric`): :math:`x_{k+1} = x_k - \eta_k G(x_k)^{-1} g_k`,
    a start failed where G is singular. One rule per metric (by its entries)."""
    key = ("metric", metric.n, tuple(str(e.expr) for r in metric.entries for e in r),
           tuple(v.name for v in metric.entries[0][0].variables))
    return bound_rule(_natural_step, key, "the metric is singular here", metric=metric)


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
