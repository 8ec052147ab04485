r"""The Adam ODE (Barakat and Bianchi, 2021): Adam's continuous-time limit with
beta_1 = 1 - a eta and beta_2 = 1 - b eta.

In the bias-corrected moments :math:`\hat m, \hat v` (state (x, m, v) of size 3n):

.. math::

    \dot x = -\frac{\hat m}{\sqrt{\hat v} + \epsilon}, \qquad
    \dot{\hat m} = \frac{a\,(\nabla L(x) - \hat m)}{1 - e^{-a t}}, \qquad
    \dot{\hat v} = \frac{b\,(\nabla L(x)^2 - \hat v)}{1 - e^{-b t}},

from :math:`\hat m(0) = \nabla L(x_0)`, :math:`\hat v(0) = \nabla L(x_0)^2` (the limits of the
bias corrections; the factors :math:`a/(1 - e^{-at}) \sim 1/t` meet numerators that vanish
at t = 0).
"""
from __future__ import annotations

import numpy as np
import scipy.integrate

from .._validate import as_loss, positive, start_points
from ..results import Status, Trajectory

__all__ = ["adam_flow"]


def adam_flow(loss, x0, t_end, *, a=1.0, b=2.0, eps=1e-8, method="DOP853", rtol=1e-10,
              atol=1e-12, n_outputs=101):
    """Integrate the Adam ODE.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,)
    t_end : float
    a, b : float
        (1 - beta_1)/eta and (1 - beta_2)/eta.
    eps : float
    method, rtol, atol
        For :func:`scipy.integrate.solve_ivp`.
    n_outputs : int

    Returns
    -------
    Trajectory
        ``method="adam_flow"``, with ``dense`` (the x part) and ``extras`` ``"m"``, ``"v"``.
    """
    loss = as_loss(loss)
    x0 = start_points(x0, loss.n, batch=False)
    t_end = positive(t_end, "t_end")
    method = "DOP853" if method == "auto" else method   # compare's default: explicit
    a, b = positive(a, "a"), positive(b, "b")
    n = loss.n
    g0 = loss.grad(x0)

    def rate(t, z):
        x, m, v = z[:n], z[n:2 * n], z[2 * n:]
        g = loss.grad(x)
        s = max(t, 1e-300)
        fa, fb = a / -np.expm1(-a * s), b / -np.expm1(-b * s)
        with np.errstate(all="ignore"):
            dx = -m / (np.sqrt(np.maximum(v, 0.0)) + eps)
        return np.concatenate([dx, fa * (g - m), fb * (g * g - v)])

    sol = scipy.integrate.solve_ivp(rate, (0.0, t_end), np.concatenate([x0, g0, g0 * g0]),
                                    method=method, rtol=rtol, atol=atol, dense_output=True,
                                    t_eval=np.linspace(0.0, t_end, n_outputs))
    ok = sol.status == 0 and np.all(np.isfinite(sol.y))
    z = sol.y.T
    xs = z[:, :n]
    with np.errstate(all="ignore"):
        values = loss.value(xs)
        grads = np.linalg.norm(loss.grad(xs), axis=-1)
    dense = _XPart(sol.sol, n) if ok else None
    return Trajectory(sol.t, xs, values, grads, Status.REACHED_END if ok else Status.FAILED,
                      "reached t_end" if ok else f"the solver stopped: {sol.message}",
                      "adam_flow", f"Adam ODE (a={a:g}, b={b:g})", nfev=int(sol.nfev),
                      extras={"m": z[:, n:2 * n], "v": z[:, 2 * n:]}, dense=dense)


class _XPart:
    """The x part of the dense solution (picklable)."""

    def __init__(self, sol, n):
        self.sol, self.n = sol, n

    def __call__(self, t):
        return np.asarray(self.sol(t))[:self.n]
