"""Flows of many starts at once: each start with its own step size and its own faults.

Smooth flows run on the per-start engines of :mod:`flowsim.ensemble` (one batched gradient
call per stage for all active starts; each start accepts or rejects its own steps, stops on
its own rules and leaves the active set when done). Losses with kinks run one subgradient
flow per start (each has its own kink events).
"""
from __future__ import annotations

import numpy as np

from .._numeric import row_norms
from ..ensemble.rosenbrock import DENSE_UP_TO
from ..ensemble.run import DEFAULT_OUTPUTS, System, batch_run
from ..results import BatchTrajectory
from .nonsmooth import has_kinks

__all__ = ["batch_gradient_flow", "gradient_system", "second_order_system", "PerStartDense"]


class PerStartDense:
    """Dense solutions of separate runs, one per start: ``dense(t)`` -> (m, n), or
    (m, n, len(t)); a start that ended early holds its last state."""

    def __init__(self, runs):
        self.runs = runs

    def __call__(self, t):
        t_arr = np.asarray(t, dtype=float)
        parts = [np.asarray(r.dense(np.minimum(t_arr, r.ts[-1]))) for r in self.runs]
        return np.stack(parts)


def _hessians(loss, sign, scale=1.0):
    """``jac(Y)`` -> sign * scale * H(x) for each row: a stack (a, n, n) for small n, a list of
    sparse matrices past :data:`~flowsim.ensemble.rosenbrock.DENSE_UP_TO`."""
    if loss.n <= DENSE_UP_TO:
        return lambda X: (sign * scale) * loss.hess(X)
    return lambda X: [(sign * scale) * loss.hess(x, sparse=True) for x in X]


def gradient_system(loss, sign):
    """The gradient flow x' = sign * grad L(x) as a batched :class:`System`."""
    grad = loss.evaluator("grad")
    hessians = _hessians(loss, sign)

    def fun(t, X):
        out = grad(X)
        if sign < 0:
            np.negative(out, out=out)
        return out

    def spectral(t, X):
        H = loss.hess(X)
        return np.abs(np.linalg.eigvalsh(H)).max(axis=1)

    return System(fun, lambda t, X: hessians(X), loss.n, spectral=spectral,
                  speed=row_norms)


def second_order_rates(X, V, G, c, mass):
    """(x', v') of m x'' + c x' + grad L(x) = 0 at states X, V with gradients G (shape
    (..., n)), friction c and mass m broadcastable against them: the momentum flows' field,
    written once for the single run, the batch engines and diffrax (any array namespace)."""
    return V, (-c * V - G) / mass


def second_order_jacobian(H, c, mass):
    """d(x', v')/d(x, v) for Hessians H (a, n, n) and c, m of shape (a,): (a, 2n, 2n)."""
    a, n = H.shape[0], H.shape[-1]
    J = np.zeros((a, 2 * n, 2 * n))
    J[:, :n, n:] = np.eye(n)
    J[:, n:, :n] = -H / mass[:, None, None]
    J[:, n:, n:] = -(c / mass)[:, None, None] * np.eye(n)
    return J


def second_order_system(loss, coefficients, friction_rate=None):
    """m(t) x'' + c(t) x' + grad L(x) = 0 as a batched :class:`System` in y = (x, v).

    ``coefficients(t)`` -> (c, m) arrays of shape (a,); ``friction_rate(t)`` -> dc/dt and
    dm/dt (for df/dt of a non-autonomous system; None when constant).
    """
    n = loss.n
    grad = loss.evaluator("grad")

    def fun(t, Y):
        c, mass = coefficients(t)
        X, V = Y[:, :n], Y[:, n:]
        return np.concatenate(second_order_rates(X, V, grad(X), c[:, None], mass[:, None]),
                              axis=1)

    def jac(t, Y):
        c, mass = coefficients(t)
        return second_order_jacobian(loss.hess(Y[:, :n]), c, mass)

    def dfdt(t, Y):
        dc, dm = friction_rate(t)
        c, mass = coefficients(t)
        V = Y[:, n:]
        _, accel = second_order_rates(None, V, grad(Y[:, :n]), c[:, None], mass[:, None])
        out = np.zeros_like(Y)
        out[:, n:] = (-dc[:, None] * V - dm[:, None] * accel) / mass[:, None]
        return out

    def spectral(t, Y):
        return np.abs(np.linalg.eigvals(jac(t, Y))).max(axis=1)

    return System(fun, jac, n, spectral=spectral,
                  dfdt=dfdt if friction_rate is not None else None,
                  speed=lambda F: row_norms(F[:, n:]))


def one_by_one(loss, X, t_end, t_eval, dense_output, name, run):
    """m starts of a flow that runs start by start (each with its own switching events):
    ``run(x0)`` -> a Trajectory with ``dense``; the batch on ``t_eval`` (by default
    DEFAULT_OUTPUTS even times, as every batch, so chunks agree), a start that ended early
    held at its end; ``extras["steps_taken"]`` counts each start's steps up to each output."""
    before = loss.counts
    runs = [run(x0) for x0 in X]
    counts = loss.counts.spent_since(before)
    ts = np.linspace(0.0, t_end, DEFAULT_OUTPUTS) if t_eval is None else np.asarray(t_eval)
    xs = np.stack([r.at(np.minimum(ts, r.ts[-1])) for r in runs])
    values, grad_norms = loss.observe(xs)
    extras = {"steps_taken": np.stack([np.searchsorted(r.ts, ts, side="right") - 1
                                       for r in runs])}
    if all(len(r.ts) == len(ts) and np.array_equal(r.ts, ts) for r in runs):
        # every run already sits on the grid: its per-output extras stack as they are
        extras.update({k: np.stack([np.asarray(r.extras[k]) for r in runs])
                       for k in runs[0].extras if k != "steps_taken"})
    return BatchTrajectory(ts, xs, values, grad_norms, tuple(r.status for r in runs),
                           tuple(r.message for r in runs), name,
                           f"{runs[0].label}, m={len(runs)}",
                           extras=extras,
                           dense=PerStartDense(runs) if dense_output else None,
                           variables=loss.variable_names,
                           t_stop=np.array([r.ts[-1] for r in runs]), **counts)


def batch_gradient_flow(loss, X, t_end, method, rtol, atol, t_eval, dense_output, gtol,
                        max_norm, maximize, max_steps, backend="numpy"):
    """:func:`flowsim.gradient_flow` for starts ``X`` of shape (m, n) (checked there);
    ``backend="numba"`` runs the explicit pairs compiled (:mod:`flowsim.compiled.engine`)."""
    engine = None
    if backend == "numba":
        from ..backends import refuse
        from ..compiled.engine import batch_engine, check_method
        from ..compiled.fields import compiled_field
        check_method(method)
        if has_kinks(loss.expr):
            refuse("backend='numba' integrates smooth flows; this loss has kinks (abs, max, "
                   "min): use backend='numpy' for its subgradient flow.")
        engine = batch_engine(loss, compiled_field(loss, 1.0 if maximize else -1.0))
    if not maximize and has_kinks(loss.expr) and loss.n_samples is None:
        from .gradient import gradient_flow
        return one_by_one(loss, X, t_end, t_eval, dense_output, "gradient_flow",
                          lambda x0: gradient_flow(
            loss, x0, t_end, method=method, rtol=rtol, atol=atol, gtol=gtol,
            max_norm=max_norm, max_steps=max_steps))
    system = gradient_system(loss, 1.0 if maximize else -1.0)
    return batch_run(loss, system, X, t_end, method, rtol, atol, t_eval, dense_output, gtol,
                     max_norm, max_steps, "gradient_flow",
                     f"gradient {'ascent' if maximize else 'flow'} ({method})", engine=engine)

