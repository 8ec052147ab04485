"""Second-order flows m(t) x'' + c(t) x' + grad L(x) = 0, as systems in (x, v): each is one
:class:`~flowsim.rules.SecondOrderField` (its friction and mass, written once over an array
namespace) that :func:`second_order` runs on every path; the damped heavy ball and Nesterov's
ODE are two of them."""
from __future__ import annotations

import math

import numbers

import numpy as np
import scipy.sparse

from ._solver import AUTO, integrate, jacobian_for
from .._validate import nonnegative, positive, start_points
from ..ensemble.run import batch_run
from ..loss import SPARSE_FROM
from .batch import second_order_jacobian, second_order_rates, second_order_system
from ..backends import on_jax
from ._common import (bound_stop, check_flow_arguments, check_start, finish_flow, outside_run,
                      output_times)
from ..ensemble.workers import parallel
from ..results import Status
from ..rules import SecondOrderField

__all__ = ["heavy_ball_flow", "nesterov_flow", "second_order", "HEAVY_BALL_FIELD",
           "NESTEROV_FIELD"]


class _Floats:
    """The array namespace of one start's coefficients at a float t: ``where``,
    ``maximum``, ``minimum``, ``abs`` and the ``math`` functions on Python floats; every other
    name is numpy's. (Where a float raises, 1/0 or sqrt(-1), the caller asks numpy.)"""

    @staticmethod
    def where(condition, a, b):
        return a if condition else b

    maximum, minimum, abs = staticmethod(max), staticmethod(min), staticmethod(abs)

    def __getattr__(self, name):
        return getattr(math, name, None) or getattr(np, name)


_FLOATS = _Floats()


def _coefficient_functions(rule, options):
    """``(one, batch, jax, rate)`` of a :class:`~flowsim.rules.SecondOrderField`, all from its
    one ``coefficients``: floats at a float t, arrays (a,) at times (a,), JAX arrays on the
    device, and (dc/dt, dm/dt) at times (a,) (the rule's own ``rate``, or central
    differences in t)."""
    def one(t):
        try:   # Python floats first: numpy's calls on a scalar cost a microsecond each
            out = rule.coefficients(float(t), options, _FLOATS)
        except (ArithmeticError, ValueError, TypeError):   # 1/0, sqrt(-1): numpy's answer
            out = None
        if out is None:
            with np.errstate(all="ignore"):
                out = rule.coefficients(t, options, np)
        try:
            c, m = out
            if type(c) is float and type(m) is float:   # the common case, on the hot path
                return c, m
            if not all(isinstance(v, numbers.Real) or (isinstance(v, np.ndarray) and
                                                        v.ndim == 0 and v.dtype.kind in "fiub")
                       for v in (c, m)):   # a number, not text that float() would read
                raise TypeError
            return float(c), float(m)
        except (TypeError, ValueError):
            raise ValueError(f"coefficients must return two numbers (c, m) at a float t, "
                             f"friction and mass, got {out!r} at t = {t:g}.") from None

    def batch(t):   # a mass <= 0 is outside the flow's domain: NaN, so no step lands there
        c, m = rule.coefficients(t, options, np)
        shape = np.shape(t)
        m = np.asarray(m, dtype=float)
        return (np.broadcast_to(np.asarray(c, dtype=float), shape),
                np.broadcast_to(np.where(m > 0, m, np.nan), shape))

    def on_jax(jnp, t):
        c, m = rule.coefficients(t, options, jnp)
        return c, jnp.where(m > 0, m, jnp.nan)

    def rate(t):
        shape = np.shape(t)
        if rule.rate is None:   # central differences, one-sided at t = 0
            h = 1e-6 * np.maximum(1.0, np.abs(t))
            lo = np.maximum(t - h, 0.0)
            (c1, m1), (c0, m0) = batch(t + h), batch(lo)
            dc, dm = (c1 - c0) / (t + h - lo), (m1 - m0) / (t + h - lo)
            return np.broadcast_to(dc, shape), np.broadcast_to(dm, shape)
        out = rule.rate(t, options, np)
        try:   # numbers or arrays of the times' shape (not text that float() would read)
            pair = [np.asarray(v) for v in out]
            if len(pair) != 2 or any(v.dtype.kind not in "fiub" for v in pair):
                raise TypeError
            return tuple(np.broadcast_to(v.astype(float), shape) for v in pair)
        except (TypeError, ValueError):
            raise ValueError(f"rate must return (dc/dt, dm/dt): two numbers or arrays of the "
                             f"times' shape {shape}, got {out!r:.80}.") from None

    return one, batch, on_jax, rate


def second_order(loss, x0, v0, t_end, method, rtol, atol, t_eval, dense_output, max_norm,
                 max_steps, rule, options, name, label, t0=0.0, extras=None,
                 batch_extras=None, backend="numpy"):
    """Integrate m(t) x'' + c(t) x' + grad L(x) = 0, the flow of ``rule`` (a
    :class:`~flowsim.rules.SecondOrderField`) with checked ``options``, as a first-order
    system in (x, v): one start on scipy's steppers (with the analytic Jacobian, sparse for
    large n), a batch on :mod:`flowsim.ensemble`, or with ``backend="jax"`` on diffrax."""
    n = loss.n
    x0 = start_points(x0, n)
    v0 = np.zeros(n) if v0 is None else start_points(v0, n, name="v0")
    check_start(loss, x0)
    jax = on_jax(backend, compiled=True)
    coefficients, batch_coefficients, jax_coefficients, rate = \
        _coefficient_functions(rule, options)
    c0, m0 = coefficients(t0)
    if not (np.isfinite(c0) and np.isfinite(m0) and m0 > 0):
        raise ValueError(f"coefficients: the flow needs a finite friction and a mass > 0 at "
                         f"its start t0 = {t0:g}, got c = {c0:g}, m = {m0:g}; check the "
                         "coefficients (or start later with t0=).")
    if rule.constant:   # the same (c, m) at every t: taken once, checked once
        def coefficients(t):
            return c0, m0
    if x0.ndim == 2 or v0.ndim == 2 or jax or backend == "numba":   # (numba: a batch)
        if v0.ndim == 2 and v0.shape != np.atleast_2d(x0).shape:
            raise ValueError(f"v0 must have shape ({n},) or the shape of x0, got {v0.shape}.")
        X0, V0 = np.broadcast_arrays(np.atleast_2d(x0), np.atleast_2d(v0))
        if jax:
            from ..jax_backend.flows import second_order_jax
            key = (name, rule, tuple(sorted(options.items())))
            batch = second_order_jax(loss, np.concatenate([X0, V0], axis=1), t0, t_end,
                                     method, rtol, atol, t_eval, dense_output, max_norm,
                                     max_steps, jax_coefficients, key, name, label, batch_extras)
            return batch if x0.ndim == 2 or v0.ndim == 2 else batch.trajectory(0)
        system = second_order_system(loss, batch_coefficients,
                                     None if rule.constant else rate)
        # LSODA switches between a non-stiff and a stiff method as the problem asks: for a
        # batch that is the explicit engine with each start that turns stiff handed to the
        # Rosenbrock pair. Oscillating momentum flows are rarely stiff, and the Rosenbrock
        # pair alone (order 2) took 24x the time of single runs at 100x their error.
        engine = "auto" if method == "LSODA" else method
        compiled = None if backend != "numba" else _compiled_engine(loss, rule, options,
                                                                     engine, name)
        batch = batch_run(loss, system, np.concatenate([X0, V0], axis=1), t_end, engine,
                          rtol, atol, t_eval, dense_output, None, max_norm, max_steps, name,
                          label, t0=t0, extras=batch_extras, engine=compiled)
        return batch if x0.ndim == 2 or v0.ndim == 2 else batch.trajectory(0)

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

    jac_options = jacobian_for(method, sparse_jac, dense_jac, 2 * n, n, n >= SPARSE_FROM)
    implicit = jacobian_for(AUTO[1], sparse_jac, dense_jac, 2 * n, n, n >= SPARSE_FROM)
    bound = bound_stop(max_norm, n)

    def stop(t, y, solver):   # |x| past max_norm, or the mass no longer positive
        c, m = coefficients(t)
        if not (m > 0 and math.isfinite(c) and math.isfinite(m)):
            return Status.FAILED, (f"the coefficients left the flow's domain at t = {t:.6g} "
                                   f"(c = {c:g}, m = {m:g}): the mass must stay > 0")
        return bound(y)

    before = loss.counts
    run = outside_run(x0, max_norm, t0, np.concatenate([x0, v0])) or integrate(
        fun, np.concatenate([x0, v0]), t_end, t0=t0, method=method, rtol=rtol,
                    atol=atol, solver_options=jac_options,
                    dense_output=dense_output or t_eval is not None,
                    stop=stop, max_steps=max_steps,
                    jacobian=loss.watched(sparse_jac if n >= SPARSE_FROM else dense_jac),
                    switch_options=implicit)
    return finish_flow(loss, run, t_eval, name, label, before, split=n, extras=extras)


def _compiled_engine(loss, rule, options, method, name):
    """The momentum flow traced and compiled (:mod:`flowsim.compiled.fields`), as the engine
    ``batch_run`` takes."""
    from ..compiled.engine import batch_engine, check_method
    from ..compiled.fields import compiled_second_order
    check_method(method, also=("LSODA",))   # (LSODA runs as "auto" here)
    return batch_engine(loss, compiled_second_order(loss, rule, options,
                                                    f"the coefficients of {name!r}"))


def _heavy_ball_coefficients(t, options, xp):
    return options["friction"] + 0 * t, options["mass"] + 0 * t


def _nesterov_coefficients(t, options, xp):
    # at t = 0 the singular r/t x' takes its limit r x''(0) (x'(0) = 0): mass 1 + r there
    moving = t > 0
    return (xp.where(moving, options["r"] / xp.where(moving, t, 1.0), 0.0),
            xp.where(moving, 1.0, 1.0 + options["r"]))


def _nesterov_rate(t, options, xp):   # d(r/t)/dt = -r/t^2; the mass is constant for t > 0
    safe = xp.where(t > 0, t, 1.0)
    return xp.where(t > 0, -options["r"] / safe ** 2, 0.0), 0.0 * t


#: m x'' + gamma x' + grad L(x) = 0, written once for every path.
HEAVY_BALL_FIELD = SecondOrderField(_heavy_ball_coefficients,
                                    options={"mass": 1.0, "friction": 1.0}, constant=True)
#: x'' + (r/t) x' + grad L(x) = 0 (Su, Boyd and Candes), written once for every path.
NESTEROV_FIELD = SecondOrderField(_nesterov_coefficients, _nesterov_rate, options={"r": 3.0})


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
        return batch_extras(ys, loss.observe_values(ys[:, :n]))

    def batch_extras(ys, values):   # (a huge velocity's energy is inf, not a warning)
        v = ys[..., n:]
        with np.errstate(over="ignore"):
            return {"velocities": v, "energy": mass * np.sum(v ** 2, axis=-1) / 2 + values}

    t_eval = output_times(t_eval, t_end, start_points(x0, loss.n), 2 * loss.n)
    return second_order(loss, x0, v0, t_end, method, rtol, atol, t_eval,
                        dense_output, positive(max_norm, "max_norm"), max_steps,
                        HEAVY_BALL_FIELD, {"mass": mass, "friction": gamma}, "heavy_ball_flow",
                        f"heavy ball ODE (m={mass:g}, gamma={gamma:g}, {method})",
                        extras=extras, batch_extras=batch_extras, backend=backend)


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

    t_eval = output_times(t_eval, t_end, start_points(x0, loss.n), 2 * loss.n)
    return second_order(loss, x0, None, t_end, method, rtol, atol, t_eval,
                        dense_output, positive(max_norm, "max_norm"), max_steps,
                        NESTEROV_FIELD, {"r": r}, "nesterov_flow",
                        f"Nesterov ODE (r={r:g}, {method})", t0=t0,
                        extras=lambda ys: {"velocities": ys[:, loss.n:]},
                        batch_extras=lambda ys, values: {"velocities": ys[..., loss.n:]},
                        backend=backend)
