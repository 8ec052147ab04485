r"""Mirror and natural-gradient flows: gradient flows in another geometry.

Mirror flow of a potential psi: :math:`\frac{d}{dt}\nabla\psi(x) = -\nabla L(x)`, i.e.
:math:`\dot x = -(\nabla^2\psi(x))^{-1}\nabla L(x)`; natural-gradient flow of a metric G:
:math:`\dot x = -G(x)^{-1}\nabla L(x)` (the mirror flow is the case G = Hess psi). With
:math:`\psi = |x|^2/2` (or G = I) both are the gradient flow; with the negative entropy
:math:`\psi = \sum_i x_i\log x_i` on a linear loss c.x the flow is :math:`x(t) = x_0 e^{-ct}`.
"""
from __future__ import annotations

import numpy as np
import scipy.integrate

from .._validate import as_loss, positive, start_points
from ..geometry import Metric, Potential
from ..results import Status, Trajectory

__all__ = ["mirror_flow", "geometry_of"]


def geometry_of(loss, potential, metric):
    """``(name, G)``: G(X) -> the metric matrices (m, n, n) of a potential or a metric (the
    identity, the Euclidean geometry, when neither is given)."""
    if potential is not None and metric is not None:
        raise ValueError("give one of potential= (a mirror potential psi) or metric= (a matrix "
                         "of formulas G(x)), not both.")
    if potential is None and metric is None:
        return "gradient", lambda X: np.broadcast_to(np.eye(loss.n), X.shape[:-1] + (loss.n,
                                                                                   loss.n))
    if potential is not None:
        psi = potential if isinstance(potential, Potential) else Potential(loss, potential)
        return "mirror", psi.hess
    G = metric if isinstance(metric, Metric) else Metric(loss, metric)
    return "natural gradient", G


def mirror_flow(loss, x0, t_end, *, potential=None, metric=None, n_outputs=101, rtol=1e-10,
                atol=1e-12, method="DOP853"):
    """The mirror flow of ``potential`` or the natural-gradient flow of ``metric``.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,)
    t_end : float
    potential : str or sympy.Expr, optional
        psi in the loss's variables, e.g. ``"x*log(x) + y*log(y)"``.
    metric : n x n nested sequence of formulas, optional
        G(x), e.g. ``[["1 + x**2", "0"], ["0", "1"]]``. With neither, the gradient flow.
    n_outputs : int
        Output times, evenly spaced (the dense solution covers all of [0, t_end]).
    rtol, atol, method
        For :func:`scipy.integrate.solve_ivp`.

    Returns
    -------
    Trajectory
        ``method="mirror_flow"``, with ``dense``. A singular metric or a state outside the
        potential's domain ends the run with status ``failed``.

    Examples
    --------
    >>> tr = mirror_flow("2*x + 3*y", [1.0, 2.0], 1.0, potential="x*log(x) + y*log(y)")
    >>> bool(np.allclose(tr.xs[-1], [np.exp(-2), 2 * np.exp(-3)], rtol=1e-9))
    True
    """
    loss = as_loss(loss)
    x0 = start_points(x0, loss.n, batch=False)
    t_end = positive(t_end, "t_end")
    method = "DOP853" if method == "auto" else method   # compare's default: explicit
    kind, G = geometry_of(loss, potential, metric)

    def rate(t, x):
        with np.errstate(all="ignore"):
            out = -np.linalg.solve(G(x[None])[0], loss.grad(x))
        return out if np.all(np.isfinite(out)) else np.full_like(x, np.nan)

    try:
        sol = scipy.integrate.solve_ivp(rate, (0.0, t_end), x0, method=method, rtol=rtol,
                                        atol=atol, dense_output=True,
                                        t_eval=np.linspace(0.0, t_end, n_outputs))
        ok, message = sol.status == 0 and np.all(np.isfinite(sol.y)), sol.message
    except np.linalg.LinAlgError:
        raise ValueError("the metric is singular at x0; choose a start where it is positive "
                         "definite.") from None
    xs = sol.y.T
    with np.errstate(all="ignore"):
        values = loss.value(xs)
        grads = np.linalg.norm(loss.grad(xs), axis=-1)
    return Trajectory(sol.t, xs, values, grads, Status.REACHED_END if ok else Status.FAILED,
                      "reached t_end" if ok else f"the solver stopped: {message}",
                      "mirror_flow", f"{kind} flow", nfev=int(sol.nfev),
                      dense=sol.sol if ok else None)
