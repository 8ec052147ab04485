"""Second-order flows: the damped heavy ball and Nesterov's ODE, as systems in (x, v)."""
from __future__ import annotations

import numpy as np
import scipy.sparse

from ._solver import AUTO, integrate, jacobian_for
from .._validate import nonnegative, positive, start_points
from ..ensemble.run import batch_run
from ..loss import SPARSE_FROM
from .batch import second_order_jacobian, second_order_rates, second_order_system
from ..backends import on_jax
from ._common import (bound_stop, check_flow_arguments, check_start, finish_flow,
                      output_times)
from ..ensemble.workers import parallel

__all__ = ["heavy_ball_flow", "nesterov_flow"]


def _second_order(loss, x0, v0, t_end, method, rtol, atol, t_eval, dense_output, max_norm,
                  max_steps, coefficients, name, label, t0=0.0, extras=None,
                  batch_extras=None, friction_rate=None, backend="numpy",
                  jax_coefficients=None):
    """Integrate m(t) x'' + c(t) x' + grad L(x) = 0 as a first-order system in (x, v).

    ``coefficients(t, batch=False)`` -> (c, m) gives the friction and the mass at time t
    (arrays for an array of times when ``batch``); ``friction_rate(t)`` their rates of
    change for a batch's stiff engine. A batch of starts runs on :mod:`flowsim.ensemble`,
    or with ``backend="jax"`` on diffrax, with ``jax_coefficients = (key, (jnp, t) -> (c, m))``.
    """
    n = loss.n
    x0 = start_points(x0, n)
    v0 = np.zeros(n) if v0 is None else start_points(v0, n, name="v0")
    check_start(loss, x0)
    jax = on_jax(backend)
    if x0.ndim == 2 or v0.ndim == 2 or jax:
        X0, V0 = np.broadcast_arrays(np.atleast_2d(x0), np.atleast_2d(v0))
        if X0.shape[0] != np.atleast_2d(x0).shape[0]:
            raise ValueError(f"v0 must have shape ({n},) or the shape of x0, got {v0.shape}.")
        if jax:
            from ..jax_backend.flows import second_order_jax
            key, coefficients_jax = jax_coefficients
            batch = second_order_jax(loss, np.concatenate([X0, V0], axis=1), t0, t_end,
                                     method, rtol, atol, t_eval, dense_output, max_norm,
                                     max_steps, coefficients_jax, key, name, label, batch_extras)
            return batch if x0.ndim == 2 or v0.ndim == 2 else batch.trajectory(0)
        system = second_order_system(loss, lambda t: coefficients(t, batch=True),
                                     friction_rate)
        # LSODA switches between a non-stiff and a stiff method as the problem asks: for a
        # batch that is the explicit engine with each start that turns stiff handed to the
        # Rosenbrock pair. Oscillating momentum flows are rarely stiff, and the Rosenbrock
        # pair alone (order 2) took 24x the time of single runs at 100x their error.
        engine = "auto" if method == "LSODA" else method
        return batch_run(loss, system, np.concatenate([X0, V0], axis=1), t_end, engine, rtol,
                         atol, t_eval, dense_output, None, max_norm, max_steps, name, label,
                         t0=t0, extras=batch_extras)

    def fun(t, y):
        c, m = coefficients(t)
        x, v = y[:n], y[n:]
        return np.concatenate(second_order_rates(x, v, loss.grad(x), c, m))

    def sparse_jac(t, y):
        c, m = coefficients(t)
        H = loss.hess(y[:n], sparse=True)
        eye = scipy.sparse.identity(n, format="csr")
        return scipy.sparse.bmat([[None, eye], [-H / m, -(c / m) * eye]], format="csr")

    def dense_jac(t, y):
        c, m = coefficients(t)
        return second_order_jacobian(loss.hess(y[:n])[None], np.array([c], dtype=float),
                                     np.array([m], dtype=float))[0]

    options = jacobian_for(method, sparse_jac, dense_jac, 2 * n, n, n >= SPARSE_FROM)
    implicit = jacobian_for(AUTO[1], sparse_jac, dense_jac, 2 * n, n, n >= SPARSE_FROM)
    bound = bound_stop(max_norm, n)
    before = loss.counts
    run = integrate(fun, np.concatenate([x0, v0]), t_end, t0=t0, method=method, rtol=rtol,
                    atol=atol, solver_options=options,
                    dense_output=dense_output or t_eval is not None,
                    stop=lambda t, y, s: bound(y), max_steps=max_steps,
                    jacobian=loss.watched(sparse_jac if n >= SPARSE_FROM else dense_jac),
                    switch_options=implicit)
    return finish_flow(loss, run, t_eval, name, label, before, split=n, extras=extras)


@parallel
def heavy_ball_flow(loss, x0, t_end, *, mass=1.0, friction=1.0, v0=None, method="LSODA",
                    rtol=1e-8, atol=1e-10, t_eval=None, dense_output=True, max_norm=1e8,
                    max_steps="default", backend="numpy"):
    r"""Integrate the damped heavy ball m x'' + gamma x' + grad L(x) = 0.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together on :mod:`flowsim.ensemble` (a BatchTrajectory).
    t_end : float
    mass : float
        m > 0. As m -> 0 with gamma = 1 the path approaches the gradient flow.
    friction : float
        gamma >= 0.
    v0 : array_like, shape (n,) or (m, n), optional
        Initial velocity (zero by default).
    backend : {"numpy", "jax", "auto"}
        ``"jax"``: the starts on diffrax, vmapped and compiled (:mod:`flowsim.jax_backend`),
        on ``t_eval`` or 101 even output times.
        ``"auto"``: whichever of the two finishes first for this batch, start-up included
        (:func:`flowsim.backends.choose`; numpy for one start or without JAX); the label
        ends with ``[auto: numpy]`` or ``[auto: jax]``.

    Returns
    -------
    Trajectory
        ``extras["velocities"]`` (n_points, n) and ``extras["energy"]`` (n_points,), the
        energy E = m|v|^2/2 + L(x), which satisfies dE/dt = -gamma |v|^2.

    Notes
    -----
    .. math:: m \ddot x + \gamma \dot x + \nabla L(x) = 0

    Examples
    --------
    >>> traj = heavy_ball_flow("x**2 + 4*y**2", [1.0, 1.0], t_end=20.0)
    >>> bool(np.all(np.diff(traj.extras["energy"]) <= 1e-9))
    True
    """
    loss, t_end = check_flow_arguments(loss, t_end, method, rtol, atol, max_steps)
    mass = positive(mass, "mass")
    gamma = nonnegative(friction, "friction")
    n = loss.n

    def extras(ys):
        v = ys[:, n:]
        return {"velocities": v, "energy": mass * np.sum(v ** 2, axis=1) / 2
                + loss.value(ys[:, :n])}

    def batch_extras(ys, values):
        v = ys[..., n:]
        return {"velocities": v, "energy": mass * np.sum(v ** 2, axis=-1) / 2 + values}

    def coefficients(t, batch=False):
        return (np.full(np.shape(t), gamma), np.full(np.shape(t), mass)) if batch else \
            (gamma, mass)

    t_eval = output_times(t_eval, t_end, start_points(x0, loss.n), 2 * loss.n)
    return _second_order(loss, x0, v0, t_end, method, rtol, atol, t_eval,
                         dense_output, positive(max_norm, "max_norm"), max_steps,
                         coefficients, "heavy_ball_flow",
                         f"heavy ball ODE (m={mass:g}, gamma={gamma:g}, {method})",
                         extras=extras, batch_extras=batch_extras, backend=backend,
                         jax_coefficients=(("heavy_ball", gamma, mass),
                                           lambda jnp, t: (gamma, mass)))


@parallel
def nesterov_flow(loss, x0, t_end, *, r=3.0, t0=0.0, method="LSODA", rtol=1e-8, atol=1e-10,
                  t_eval=None, dense_output=True, max_norm=1e8,
                  max_steps="default", backend="numpy"):
    r"""Integrate Nesterov's ODE (Su, Boyd and Candes) x'' + (r/t) x' + grad L(x) = 0.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        x(t0), with x'(t0) = 0; m starts run together on :mod:`flowsim.ensemble`.
    r : float
        Friction constant, 3 for Nesterov's method; >= 0.
    t0 : float
        Start time >= 0. At t = 0 the singular term takes its limit: with x'(0) = 0,
        (r/t) x'(t) -> r x''(0), so x''(0) = -grad L(x0) / (1 + r).
    backend : {"numpy", "jax", "auto"}
        ``"jax"``: the starts on diffrax, vmapped and compiled (:mod:`flowsim.jax_backend`),
        on ``t_eval`` or 101 even output times.
        ``"auto"``: whichever of the two finishes first for this batch, start-up included
        (:func:`flowsim.backends.choose`; numpy for one start or without JAX); the label
        ends with ``[auto: numpy]`` or ``[auto: jax]``.

    Returns
    -------
    Trajectory
        ``extras["velocities"]``. On convex L, L(x(t)) - L* = O(1/t^2) for r >= 3.

    Notes
    -----
    .. math:: \ddot x + \frac{r}{t} \dot x + \nabla L(x) = 0, \quad
              x(t_0) = x_0,\ \dot x(t_0) = 0 .

    Nesterov's accelerated gradient with step s follows it at the time scale
    t_k = k sqrt(s).

    Examples
    --------
    >>> traj = nesterov_flow("x**2/2", [1.0], t_end=10.0, method="RK45")
    >>> bool(traj.values[-1] < 0.5 * 9 / 10 ** 2)
    True
    """
    loss, t_end = check_flow_arguments(loss, t_end, method, rtol, atol, max_steps)
    r = nonnegative(r, "r")
    t0 = nonnegative(t0, "t0")
    if t0 >= t_end:
        raise ValueError(f"t0 = {t0:g} must be below t_end = {t_end:g}.")

    def coefficients(t, batch=False):
        if not batch:
            return (r / t, 1.0) if t > 0 else (0.0, 1.0 + r)
        positive_t = t > 0
        safe = np.where(positive_t, t, 1.0)
        return np.where(positive_t, r / safe, 0.0), np.where(positive_t, 1.0, 1.0 + r)

    def friction_rate(t):  # d(r/t)/dt = -r/t^2; the mass is constant for t > 0
        safe = np.where(t > 0, t, 1.0)
        return np.where(t > 0, -r / safe ** 2, 0.0), np.zeros(np.shape(t))

    t_eval = output_times(t_eval, t_end, start_points(x0, loss.n), 2 * loss.n)
    return _second_order(loss, x0, None, t_end, method, rtol, atol, t_eval,
                         dense_output, positive(max_norm, "max_norm"), max_steps, coefficients,
                         "nesterov_flow", f"Nesterov ODE (r={r:g}, {method})", t0=t0,
                         extras=lambda ys: {"velocities": ys[:, loss.n:]},
                         batch_extras=lambda ys, values: {"velocities": ys[..., loss.n:]},
                         friction_rate=friction_rate, backend=backend,
                         jax_coefficients=(("nesterov", r), lambda jnp, t: (
                             jnp.where(t > 0, r / jnp.where(t > 0, t, 1.0), 0.0),
                             jnp.where(t > 0, 1.0, 1.0 + r))))
