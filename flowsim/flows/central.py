r"""The edge of stability: sharpness, its exact gradient, and the central flow of GD.

Gradient descent with step eta is stable near a point while the sharpness
:math:`S(x) = \lambda_{\max}(H(x))` stays below :math:`2/\eta`. When the gradient flow sharpens
past it, GD oscillates along the top eigenvector and *self-stabilizes* at :math:`S = 2/\eta`.
The **central flow** (Cohen, Damian, Talwalkar, Kolter and Lee, "Understanding Optimization in
Deep Learning with Central Flows", 2024) is the ODE that GD's time average follows:

.. math::

    \dot x = -\Big(\nabla L + \sum_{i \in A} c_i \nabla\lambda_i\Big), \qquad
    c = \arg\min_{c \ge 0} \Big|\nabla L + \sum_{i\in A} c_i \nabla \lambda_i\Big|,

where A holds the eigenvalues at the edge (:math:`\lambda_i \ge 2/\eta`) and
:math:`\nabla\lambda_i = D^3L[u_i, u_i]` (u_i the unit eigenvector) comes from the symbolic
third derivatives. With one eigenvalue at the edge this is the gradient flow projected so that
S stays at 2/eta while the flow would raise it; the non-negative least squares problem is the
complementarity problem for several. :math:`c_i = \sigma_i^2/2` is half the variance of GD's
oscillation along u_i, so GD's time-averaged loss is predicted as
:math:`L(x) + \sum_i c_i \lambda_i`. Below the edge (A empty) it is the gradient flow.
"""
from __future__ import annotations

import numpy as np
import scipy.optimize
import symengine as se
import sympy as sp

from ..loss._audit import lambdify_audited
from .._validate import as_loss, int_between, positive, start_points
from ..ensemble.workers import parallel
from ._common import (bound_stop, check_flow_arguments, check_start, finish_flow, outside_run,
                      output_times, refuse_kinks)
from ._solver import integrate

__all__ = ["third_derivatives", "sharpness_gradient", "central_flow"]


def third_derivatives(loss):
    """A function x (n,) -> D^3 L(x), shape (n, n, n), from the symbolic third derivatives
    (parameters bound; a finite-sum loss averaged over its samples).

    The n(n+1)(n+2)/6 distinct entries are compiled once (symengine's ``Lambdify`` with
    common subexpressions, evaluated on all samples in one call; sympy's ``lambdify`` where
    symengine cannot take the expression) and scattered into the symmetric tensor.
    """
    return loss.memo("third_derivatives", lambda: _build_third(loss))


def _build_third(loss):
    """The compiled third-derivative function of :func:`third_derivatives`."""
    xs = list(loss.variables)
    bound = loss.symbol_values()
    n = len(xs)
    H = loss.hessian_expr
    index = [(i, j, k) for i in range(n) for j in range(i, n) for k in range(j, n)]
    exprs = [sp.diff(H[i, j], xs[k]) for i, j, k in index]
    # where each computed entry goes in the symmetric tensor: every ordering of (i, j, k)
    where = np.array([index.index(tuple(sorted(t)))
                      for t in np.ndindex(n, n, n)]).reshape(n, n, n)
    columns = [np.atleast_1d(np.asarray(v, dtype=float)) for v in bound.values()]
    rows = max([len(c) for c in columns], default=1)
    table = np.zeros((rows, n + len(columns)))
    for j, c in enumerate(columns):
        table[:, n + j] = c
    try:
        f = se.Lambdify(xs + list(bound), exprs, cse=True)
        f(table[0])   # symengine may refuse a function only when it is first called
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        f = None
    if f is None:
        g = lambdify_audited(xs + list(bound), exprs, "numpy")
        values = [np.asarray(v, dtype=float) for v in bound.values()]

        def entries_of(x):
            return np.array([np.mean(v) for v in g(*x, *values)], dtype=float)
    else:
        def entries_of(x):
            table[:, :n] = x
            return np.asarray(f(table), dtype=float).reshape(rows, -1).mean(axis=0)

    def third(x):
        return entries_of(np.asarray(x, dtype=float))[where]
    return third


def sharpness_gradient(loss, x):
    r"""The sharpness S(x) = lambda_max(H(x)), its gradient D^3L[u, u] and the eigenvector u.

    Parameters
    ----------
    loss : Loss or str
    x : array_like, shape (n,)

    Returns
    -------
    S : float
    grad_S : ndarray, shape (n,)
        :math:`\partial_k S = \sum_{ij} \partial_{ijk} L\, u_i u_j` (exact where the top
        eigenvalue is simple).
    u : ndarray, shape (n,)

    Examples
    --------
    >>> S, g, u = sharpness_gradient("x**4/12 + y**2", [3.0, 0.0])
    >>> float(S), g.tolist()
    (9.0, [6.0, 0.0])
    """
    loss = as_loss(loss)
    x = start_points(x, loss.n, batch=False, name="x")
    lam, vecs = np.linalg.eigh(loss.hess(x))
    u = vecs[:, -1]
    return float(lam[-1]), np.einsum("ijk,i,j->k", third_derivatives(loss)(x), u, u), u


_BAND = 1e-3   # relative width of the band below 2/eta in which an eigenvalue is at the edge


def _central_rates(loss, third, x, edge, gain):
    """(x', c, active eigenvalues, sharpness) of the central flow at x."""
    g = loss.grad(x)
    lam, vecs = np.linalg.eigh(loss.hess(x))
    # eigenvalues within a thin band below the edge count as at the edge: the state then sits
    # inside the band while it rides the edge instead of toggling the active set (and the
    # right-hand side) at every stage, which cost explicit solvers thousands of rejected steps
    active = np.flatnonzero(lam >= edge * (1 - _BAND))
    if not len(active):
        return -g, np.zeros(0), lam[active], lam[-1]
    T = third(x)
    U = vecs[:, active]
    G = np.einsum("ijk,ia,ja->ka", T, U, U)   # column a: grad lambda_a = D^3L[u_a, u_a]
    c, _ = scipy.optimize.nnls(G, -g)
    rate = -(g + G @ c)
    # hold the held eigenvalues at the edge exactly (the constraint is kept by the solver only
    # to its tolerance, and the band lets them sit slightly below): a relaxation along
    # grad lambda_a at rate ``gain`` for those the flow pushes (c > 0) or that drift above
    over = lam[active] - edge
    held = (c > 0) | (over > 0)
    norms = np.maximum(np.einsum("ka,ka->a", G, G), 1e-300)
    rate -= G @ np.where(held, gain * over / norms, 0.0)
    return rate, c, lam[active], lam[-1]


#: Most distinct third derivatives the central flow compiles (n = 24 variables): their count
#: grows like n^3/6 and each output solves an eigenproblem and a least-squares problem.
MAX_THIRD = 2_600
MAX_N = 24
#: Step budget of the central flow (each step makes six eigendecompositions).
MAX_STEPS = 20_000


@parallel
def central_flow(loss, x0, eta, t_end, *, n_outputs=201, rtol=1e-9, atol=1e-12, gain=10.0,
                 max_norm=1e8, max_steps=MAX_STEPS, dense_output=True):
    r"""The central flow of gradient descent with step ``eta`` (see the module docstring).

    Parameters
    ----------
    loss : Loss or str
        Twice differentiable (its third derivatives are compiled symbolically).
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts (run start by start on the same output times; a
        :class:`~flowsim.BatchTrajectory` with the extras stacked per start).
    eta : float
        GD's step; the edge is S = 2/eta.
    t_end : float
        Flow time (GD's k steps sit at t = k eta).
    n_outputs : int
        Output times, evenly spaced on [0, t_end].
    rtol, atol : float
        Tolerances of the integrator (scipy's RK45).
    gain : float
        Rate at which drift above the edge is relaxed back (1/time).
    max_norm, max_steps
        As in :func:`flowsim.gradient_flow`; the budget is :data:`MAX_STEPS` steps.
    dense_output : bool
        Keep the dense solution.

    Returns
    -------
    Trajectory
        ``method="central_flow"``; ``extras`` hold ``"sharpness"`` (S at each output),
        ``"on_edge"`` (whether an eigenvalue is at 2/eta), ``"sigma2"`` (the predicted
        variance of GD's oscillation, sum of 2 c_i) and ``"predicted_loss"`` (GD's
        time-averaged loss L + sum_i c_i lambda_i).

    Examples
    --------
    >>> cf = central_flow("(x*y - 1)**2/2", [0.2, 3.0], 0.4, 5.0, n_outputs=5)
    >>> bool(abs(cf.extras["sharpness"][-1] - 2 / 0.4) < 1e-3)
    True
    """
    loss, t_end = check_flow_arguments(loss, t_end, "RK45", rtol, atol, max_steps)
    x0 = start_points(x0, loss.n)
    eta = positive(eta, "eta")
    n_outputs = int_between(n_outputs, "n_outputs", 2, 10 ** 6)
    if x0.ndim == 2:
        from .batch import one_by_one
        check_start(loss, x0)
        return one_by_one(loss, x0, t_end, np.linspace(0.0, t_end, n_outputs), dense_output,
                          "central_flow", lambda x: central_flow(
                              loss, x, eta, t_end, n_outputs=n_outputs, rtol=rtol, atol=atol,
                              gain=gain, max_norm=max_norm, max_steps=max_steps))
    t_eval = output_times(np.linspace(0.0, t_end, n_outputs), t_end, x0)
    gain = positive(gain, "gain")
    max_norm = positive(max_norm, "max_norm")
    refuse_kinks(loss, "the central flow")
    entries = loss.n * (loss.n + 1) * (loss.n + 2) // 6
    if entries > MAX_THIRD:
        raise ValueError(f"loss: the central flow needs all {entries:,} third derivatives of "
                         f"a loss in {loss.n} variables, over the limit of {MAX_THIRD:,} "
                         f"(n <= {MAX_N}); use fewer variables.")
    check_start(loss, x0)
    third = third_derivatives(loss)
    edge = 2.0 / eta
    bound = bound_stop(max_norm, loss.n)
    before = loss.counts
    with np.errstate(all="ignore"):
        run = outside_run(x0, max_norm) or integrate(
                        lambda t, x: _central_rates(loss, third, x, edge, gain)[0], x0, t_end,
                        method="RK45", rtol=rtol, atol=atol,
                        solver_options={"max_step": t_end / 50},
                        stop=lambda t, x, solver: bound(x), max_steps=max_steps)

    def extras(xs):
        sharp, on_edge, sigma2, predicted = [], [], [], []
        with np.errstate(all="ignore"):
            for x, v in zip(xs, loss.observe_values(xs)):
                _, c, lam, top = _central_rates(loss, third, x, edge, gain)
                sharp.append(top)
                on_edge.append(bool(len(c)) and bool(np.any(c > 0)))
                sigma2.append(2 * c.sum())
                predicted.append(v + float(c @ lam))
        return {"sharpness": np.array(sharp), "on_edge": np.array(on_edge),
                "sigma2": np.array(sigma2), "predicted_loss": np.array(predicted)}
    return finish_flow(loss, run, t_eval, "central_flow", f"central flow (eta={eta:g})",
                       before, extras=extras, keep_dense=dense_output)
