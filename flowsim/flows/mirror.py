r"""Mirror and natural-gradient flows: gradient flows in another geometry.

Mirror flow of a potential psi: :math:`\frac{d}{dt}\nabla\psi(x) = -\nabla L(x)`, i.e.
:math:`\dot x = -(\nabla^2\psi(x))^{-1}\nabla L(x)`; natural-gradient flow of a metric G:
:math:`\dot x = -G(x)^{-1}\nabla L(x)` (the mirror flow is the case G = Hess psi). With
:math:`\psi = |x|^2/2` (or G = I) both are the gradient flow; with the negative entropy
:math:`\psi = \sum_i x_i\log x_i` on a linear loss c.x the flow is :math:`x(t) = x_0 e^{-ct}`.
"""
from __future__ import annotations

import numpy as np

from .._validate import int_between, positive, start_points
from ..geometry import Euclidean, Metric, potential_of
from ._common import (bound_stop, check_flow_arguments, check_start, converged, finish_flow,
                      outside_run, output_times, refuse_kinks)
from ._solver import integrate
from ..ensemble.workers import parallel

__all__ = ["mirror_flow", "geometry_of"]


def geometry_of(loss, potential, metric):
    """The geometry of a flow: a named or formula potential, a metric, or (neither given)
    :class:`~flowsim.geometry.Euclidean`; each has ``name``, ``direction(X, G)`` and
    ``check_at(X)``."""
    if potential is not None and metric is not None:
        raise ValueError("give one of potential= (a mirror potential psi) or metric= (a matrix "
                         "of formulas G(x)), not both.")
    if potential is None and metric is None:
        return Euclidean(loss.n)
    if potential is not None:
        return potential_of(loss, potential)
    return metric if isinstance(metric, Metric) else Metric(loss, metric)


#: Step budget of the flows whose right-hand side solves a linear system at every stage.
MAX_STEPS = 20_000


@parallel
def mirror_flow(loss, x0, t_end, *, potential=None, metric=None, n_outputs=101, rtol=1e-10,
                atol=1e-12, method="DOP853", t_eval=None, gtol=None, max_norm=1e8,
                max_steps=MAX_STEPS, dense_output=True):
    """The mirror flow of ``potential`` or the natural-gradient flow of ``metric``.

    Parameters
    ----------
    loss : Loss or str
        A smooth loss (a kink has no mirror flow here; see :func:`flowsim.gradient_flow`
        for the subgradient flow).
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together on the per-start batch engines (each with its
        own steps, stop rules and status; RODAS4 with a finite-difference Jacobian for the
        implicit methods).
    t_end : float
    potential : str or sympy.Expr, optional
        psi in the loss's variables, e.g. ``"x*log(x) + y*log(y)"``, or ``"simplex"``: the
        entropy on the probability simplex (:class:`~flowsim.geometry.SimplexEntropy`),
        whose flow is the replicator equation x' = -(diag x - x x^T) grad L.
    metric : n x n nested sequence of formulas, optional
        G(x), e.g. ``[["1 + x**2", "0"], ["0", "1"]]``. With neither, the gradient flow.
    n_outputs : int
        Output times, evenly spaced, where ``t_eval`` is not given (the dense solution covers
        all of [0, t_end]).
    rtol, atol, method
        The scipy solver (explicit methods; ``"auto"`` is DOP853).
    t_eval, gtol, max_norm, max_steps
        As in :func:`flowsim.gradient_flow`; the budget is :data:`MAX_STEPS` steps.
    dense_output : bool
        Keep the dense solution (``traj.at(t)`` between outputs; a batch's is cubic Hermite).

    Returns
    -------
    Trajectory
        ``method="mirror_flow"``, with ``dense``. A metric that turns singular or a state
        outside the potential's domain ends the run ``failed`` (non-finite: ``diverged``),
        with the path up to there.

    Examples
    --------
    >>> tr = mirror_flow("2*x + 3*y", [1.0, 2.0], 1.0, potential="x*log(x) + y*log(y)")
    >>> bool(np.allclose(tr.xs[-1], [np.exp(-2), 2 * np.exp(-3)], rtol=1e-9))
    True
    """
    loss, t_end = check_flow_arguments(loss, t_end, method, rtol, atol, max_steps)
    x0 = start_points(x0, loss.n)
    method = "DOP853" if method == "auto" else method   # compare's default: explicit
    n_outputs = int_between(n_outputs, "n_outputs", 2, 10 ** 6)
    t_eval = output_times(t_eval if t_eval is not None else np.linspace(0.0, t_end, n_outputs),
                          t_end, x0)
    gtol = positive(gtol, "gtol") if gtol is not None else None
    max_norm = positive(max_norm, "max_norm")
    refuse_kinks(loss, "the mirror flow")
    geometry = geometry_of(loss, potential, metric)
    check_start(loss, x0)
    geometry.check_at(np.atleast_2d(x0))
    if x0.ndim == 2:
        return _mirror_batch(loss, geometry, x0, t_end, method, rtol, atol, t_eval, gtol,
                             max_norm, max_steps, dense_output)

    def rate(t, x):
        with np.errstate(all="ignore"):
            return -geometry.direction(x[None], loss.grad(x)[None])[0]

    bound = bound_stop(max_norm, loss.n)

    def stop(t, x, solver):
        return bound(x) or converged(np.linalg.norm(loss.grad(x)), gtol)

    before = loss.counts
    run = outside_run(x0, max_norm) or integrate(
        rate, x0, t_end, method=method, rtol=rtol, atol=atol, stop=stop, max_steps=max_steps)
    return finish_flow(loss, run, t_eval, "mirror_flow", f"{geometry.name} flow", before,
                       keep_dense=dense_output)


def _mirror_batch(loss, geometry, X, t_end, method, rtol, atol, t_eval, gtol, max_norm,
                  max_steps, dense_output):
    """m starts of the mirror or natural-gradient flow on the per-start engines."""
    from ..ensemble.run import batch_run
    from .field import autonomous_system

    def field(Y):
        with np.errstate(all="ignore"):
            return -geometry.direction(Y, loss.grad(Y))

    system = autonomous_system(loss, field)
    return batch_run(loss, system, X, t_end, method, rtol, atol, t_eval, dense_output, gtol,
                     max_norm, max_steps, "mirror_flow", f"{geometry.name} flow ({method})")
