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

from .._validate import int_between, positive, start_points
from ..ensemble.workers import parallel
from ._common import (bound_stop, check_flow_arguments, check_start, converged, finish_flow,
                      outside_run, output_times, refuse_kinks)
from ._solver import integrate
from .mirror import MAX_STEPS

__all__ = ["adam_flow"]


@parallel
def adam_flow(loss, x0, t_end, *, a=1.0, b=2.0, eps=1e-8, method="DOP853", rtol=1e-10,
              atol=1e-12, n_outputs=101, t_eval=None, gtol=None, max_norm=1e8,
              max_steps=MAX_STEPS, dense_output=True):
    """Integrate the Adam ODE.

    Parameters
    ----------
    loss : Loss or str
        A smooth loss.
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together on the per-start batch engines (a
        :class:`~flowsim.BatchTrajectory`; finite-difference Jacobian and time derivative
        for the implicit ones).
    t_end : float
    a, b : float
        (1 - beta_1)/eta and (1 - beta_2)/eta.
    eps : float
    method, rtol, atol
        The scipy solver (explicit methods; ``"auto"`` is DOP853).
    n_outputs : int
        Evenly spaced output times where ``t_eval`` is not given.
    t_eval, gtol, max_norm, max_steps
        As in :func:`flowsim.gradient_flow` (``gtol`` tests |grad L(x)|); the budget is
        :data:`flowsim.flows.mirror.MAX_STEPS` steps.
    dense_output : bool
        Keep the dense solution of x (a batch's is cubic Hermite between outputs).

    Returns
    -------
    Trajectory
        ``method="adam_flow"``, with ``dense`` (the x part) and ``extras`` ``"m"``, ``"v"``;
        a path that leaves ``max_norm`` ends ``diverged``, a spent budget ``failed``.
    """
    loss, t_end = check_flow_arguments(loss, t_end, method, rtol, atol, max_steps)
    x0 = start_points(x0, loss.n)
    method = "DOP853" if method == "auto" else method   # compare's default: explicit
    a, b, eps = positive(a, "a"), positive(b, "b"), positive(eps, "eps")
    n_outputs = int_between(n_outputs, "n_outputs", 2, 10 ** 6)
    t_eval = output_times(t_eval if t_eval is not None else np.linspace(0.0, t_end, n_outputs),
                          t_end, x0, 3 * loss.n)
    max_norm = positive(max_norm, "max_norm")
    gtol = positive(gtol, "gtol") if gtol is not None else None
    refuse_kinks(loss, "the Adam ODE")
    check_start(loss, x0)
    n = loss.n
    g0 = loss.grad(x0)
    if x0.ndim == 2:
        return _adam_batch(loss, x0, g0, t_end, a, b, eps, method, rtol, atol, t_eval,
                           gtol, max_norm, max_steps, dense_output)

    def rate(t, z):
        return _adam_rates(z, t, loss.grad(z[:n]), a, b, eps, n)

    bound = bound_stop(max_norm, n)

    def stop(t, z, solver):
        return bound(z) or converged(np.linalg.norm(loss.grad(z[:n])), gtol)

    before = loss.counts
    with np.errstate(over="ignore"):   # an overflowing g0^2 ends the run where it starts
        z0 = np.concatenate([x0, g0, g0 * g0])
    run = outside_run(x0, max_norm, state=z0) or integrate(
        rate, z0, t_end, method=method, rtol=rtol,
                    atol=atol, stop=stop, max_steps=max_steps)
    return finish_flow(loss, run, t_eval, "adam_flow", f"Adam ODE (a={a:g}, b={b:g})", before,
                       split=n, extras=lambda z: {"m": z[:, n:2 * n], "v": z[:, 2 * n:]},
                       keep_dense=dense_output)


def _adam_rates(Z, t, g, a, b, eps, n):
    """The Adam ODE's right-hand side for states Z (..., 3n) = (x, m, v) at times t (...),
    gradients g (..., n): one definition for the single run and the batch engines."""
    m, v = Z[..., n:2 * n], Z[..., 2 * n:]
    s = np.maximum(np.asarray(t, dtype=float), 1e-300)[..., None]
    fa, fb = a / -np.expm1(-a * s), b / -np.expm1(-b * s)
    with np.errstate(all="ignore"):
        dx = -m / (np.sqrt(np.maximum(v, 0.0)) + eps)
    return np.concatenate([dx, fa * (g - m), fb * (g * g - v)], axis=-1)


def _adam_batch(loss, X, G0, t_end, a, b, eps, method, rtol, atol, t_eval, gtol, max_norm,
                max_steps, dense_output):
    """m starts of the Adam ODE on the per-start engines."""
    from .._numeric import row_norms
    from ..ensemble.run import System, batch_run
    from .field import finite_difference_jacobian
    n = loss.n

    def fun(t, Z):
        return _adam_rates(Z, t, loss.grad(Z[:, :n]), a, b, eps, n)

    def dfdt(t, Z):   # the explicit time dependence, forward difference
        h = 1e-7 * np.maximum(1.0, np.abs(t))
        return (fun(t + h, Z) - fun(t, Z)) / h[:, None]

    system = System(fun, lambda t, Z: finite_difference_jacobian(lambda W: fun(t, W), Z), n,
                    dfdt=dfdt, stationarity=lambda Z: row_norms(loss.grad(Z[:, :n])))
    with np.errstate(over="ignore"):   # an overflowing g0^2 ends that start where it is
        Z0 = np.concatenate([X, G0, G0 * G0], axis=1)
    return batch_run(loss, system, Z0, t_end, method,
                     rtol, atol, t_eval, dense_output, gtol, max_norm, max_steps, "adam_flow",
                     f"Adam ODE (a={a:g}, b={b:g})",
                     extras=lambda ys, values: {"m": ys[..., n:2 * n], "v": ys[..., 2 * n:]})
