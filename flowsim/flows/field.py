r"""A flow made from a :class:`~flowsim.rules.VectorField`: what :func:`flowsim.register`
gives a researcher's own ODE.

One field ``f(x, ops, options)``, written over ``ops.xp``, is run three ways:

* one start: scipy's steppers on the guarded loop (:func:`flowsim.flows._solver.integrate`:
  step budget, ``gtol``, ``max_norm``, ``t_eval``, dense output, statuses);
* m starts on numpy: the per-start engines of :mod:`flowsim.ensemble` (explicit pairs, or
  the Rosenbrock pair with the field's Jacobian, by finite differences where it has none);
* m starts on JAX: diffrax, vmapped (:mod:`flowsim.jax_backend.flows`).

``gtol`` stops a start where |grad L(x)| <= gtol on every path.
"""
from __future__ import annotations


import numpy as np

from .._contract import checked_field, checked_jacobian, checked_once
from .._numeric import row_norms
from ..ensemble.run import System, batch_run
from ..ensemble.workers import PARALLEL_DOC, in_chunks
from ..backends import on_jax
from ..rules import FLOW_ARGUMENTS, MadeFunction, check_options, numpy_ops
from ._common import bound_stop, converged, finish_flow, flow_arguments, outside_run
from ._solver import Integration, integrate
from ..results import Status

__all__ = ["FieldFlow", "finite_difference_jacobian", "guard_mask", "autonomous_system"]

_COMMON = [("method", "RK45"), ("rtol", 1e-8), ("atol", 1e-10), ("t_eval", None),
           ("dense_output", True), ("gtol", None), ("max_norm", 1e8),
           ("max_steps", "default"), ("backend", "numpy"), ("workers", None),
           ("executor", None), ("chunk_size", None)]


def finite_difference_jacobian(fun, X, F=None):
    """Forward-difference Jacobians of a batched field: ``fun(X)`` (a, n) -> (a, n, n)."""
    F = fun(X) if F is None else F
    a, n = X.shape
    J = np.empty((a, n, n))
    for j in range(n):
        h = np.sqrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(X[:, j]))
        Xh = X.copy()
        Xh[:, j] += h
        J[:, :, j] = (fun(Xh) - F) / h[:, None]
    return J


def autonomous_system(loss, field, jacobian=None, guard=None):
    """The batched :class:`~flowsim.ensemble.run.System` of an autonomous flow
    x' = ``field(X)`` on starts X (a, n): its ``jacobian(X)`` (a, n, n), or forward
    differences of the field, |grad L| as the stationarity ``gtol`` tests, and the flow's
    ``guard`` (see :meth:`FieldFlow._batch_guard`)."""
    grad = loss.evaluator("grad")
    if jacobian is None:
        def jacobian(X):
            return finite_difference_jacobian(field, X)
    return System(lambda t, X: field(X), lambda t, X: jacobian(X), loss.n,
                  stationarity=lambda X: row_norms(grad(X)), guard=guard)


def guard_mask(out, a):
    """A guard's answer for ``a`` states as a bool mask (a,), or a ValueError that says what
    a guard returns."""
    mask = np.asarray(out)
    if mask.dtype != bool or mask.shape not in ((a,), ()):
        raise ValueError(f"guard must return one bool per state (shape ({a},) for x of shape "
                         f"({a}, n)), got {mask.dtype} of shape {mask.shape}.")
    return np.broadcast_to(mask, (a,))


class FieldFlow(MadeFunction):
    r"""The flow ``name``: dx/dt = ``field.field(x, ops, options)``.

    Parameters
    ----------
    name, label : str
    field : VectorField

    Notes
    -----
    Calling it: ``flow(loss, x0, t_end, **options)`` with x0 of shape (n,) (a
    :class:`~flowsim.Trajectory`) or (m, n) (a :class:`~flowsim.BatchTrajectory`); the
    field's options are keywords, the rest are :func:`flowsim.gradient_flow`'s.
    """

    KIND, SOURCE = "flow", "a vector field"
    POSITIONAL, COMMON, OWNER = FLOW_ARGUMENTS, _COMMON, "field"
    SUMMARY = "{label}: a flow registered from a vector field."
    REST = ("    method, rtol, atol, t_eval, dense_output, gtol, max_norm, max_steps, backend\n"
            "        As in :func:`flowsim.gradient_flow`.\n" + PARALLEL_DOC)

    def __init__(self, name, label, field):
        self.field = field
        self._named(name, label, (field,), field.options)

    def __call__(self, loss, x0, t_end, *, method="RK45", rtol=1e-8, atol=1e-10, t_eval=None,
                 dense_output=True, gtol=None, max_norm=1e8, max_steps="default",
                 backend="numpy", workers=None, executor=None, chunk_size=None, **options):
        kwargs = dict(options, method=method, rtol=rtol, atol=atol, t_eval=t_eval,
                      dense_output=dense_output, gtol=gtol, max_norm=max_norm,
                      max_steps=max_steps, backend=backend)
        return in_chunks(self, self._run, loss, x0, (t_end,), kwargs, workers=workers,
                         executor=executor, chunk_size=chunk_size, takes_dense=True)

    def _run(self, loss, x0, t_end, *, method, rtol, atol, t_eval, dense_output, gtol,
             max_norm, max_steps, backend, **options):
        options = check_options(self.field.options, options, self.name)
        jax = on_jax(backend, compiled=True)
        loss, X, t_end, gtol, max_norm, t_eval = flow_arguments(
            loss, x0, t_end, method, rtol, atol, max_steps, gtol, max_norm, t_eval)
        label = self.label + "".join(f", {k}={v:g}" for k, v in options.items()
                                     if v is not None)
        if jax:
            from ..jax_backend.flows import field_flow_jax
            batch = field_flow_jax(loss, self.name, self.field, options, np.atleast_2d(X),
                                   t_end, method, rtol, atol, t_eval, dense_output, gtol,
                                   max_norm, max_steps, label)
            return batch if X.ndim == 2 else batch.trajectory(0)
        owner = f"the vector field of {self.name!r}"
        f = checked_once(self.field.field, lambda v, X, *_: checked_field(v, X, owner))
        jac = None if self.field.jacobian is None else \
            checked_once(self.field.jacobian, lambda v, X, *_: checked_jacobian(v, X, owner))
        if X.ndim == 2 or backend == "numba":   # (one start on numba: a batch of one)
            ops = numpy_ops(loss, single=False)
            system = autonomous_system(
                loss, lambda Y: f(Y, ops, options),
                None if jac is None else lambda Y: jac(Y, ops, options),
                guard=self._batch_guard(loss, options))
            engine = None if backend != "numba" else \
                self._compiled_engine(loss, options, method, owner)
            batch = batch_run(loss, system, np.atleast_2d(X), t_end, method, rtol, atol,
                              t_eval, dense_output, gtol, max_norm, max_steps, self.name,
                              f"{label} ({method})", engine=engine)
            return batch if X.ndim == 2 else batch.trajectory(0)
        ops = numpy_ops(loss, single=True)
        bound = bound_stop(max_norm, loss.n)

        def one(t, y):
            return f(y[None], ops, options)[0]

        solver_options = {}
        if jac is not None and method in ("Radau", "BDF", "LSODA"):
            solver_options["jac"] = lambda t, y: jac(y[None], ops, options)[0]

        guard = self.field.guard

        def own_rule(y):   # the flow's guard: (failed, why) where it stops the flow
            if guard is not None and guard_mask(guard(y[None], ops, options), 1)[0]:
                return Status.FAILED, self.field.stop_message(y, ops, options)
            return None

        def stop(t, y, solver):
            reason = bound(y) or own_rule(y)
            if reason is None and gtol is not None:
                reason = converged(np.linalg.norm(ops.grad(y[None])[0]), gtol)
            return reason

        before = loss.counts
        at_start = own_rule(X)
        run = outside_run(X, max_norm)
        if run is None and at_start is not None:   # the flow is not defined at x0: it ends there
            run = Integration(np.array([0.0]), X[None, :], None, *at_start)
        elif run is None:
            run = integrate(one, X, t_end, method=method, rtol=rtol, atol=atol,
                            solver_options=solver_options,
                            dense_output=dense_output or t_eval is not None, stop=stop,
                            max_steps=max_steps)
        return finish_flow(loss, run, t_eval if run.dense is not None else None, self.name,
                           f"{label} ({method})", before)

    def _compiled_engine(self, loss, options, method, owner):
        """The field traced and compiled (:mod:`flowsim.compiled.engine`), as the engine
        ``batch_run`` takes."""
        from ..compiled.engine import batch_engine, check_method
        from ..compiled.fields import compiled_vector_field
        check_method(method)
        compiled = compiled_vector_field(loss, self.field, options, owner)
        ops = numpy_ops(loss, single=False)
        return batch_engine(loss, compiled,
                            why=lambda x: self.field.stop_message(x, ops, options))

    def _batch_guard(self, loss, options):
        """The field's guard as a batched system's: ``guard(Y)`` -> (status, message)
        arrays, None where the flow goes on."""
        guard = self.field.guard
        if guard is None:
            return None
        ops = numpy_ops(loss, single=False)

        def check(Y):
            bad = guard_mask(guard(Y, ops, options), len(Y))
            status = np.where(bad, Status.FAILED, None)
            message = np.full(len(Y), None, dtype=object)
            for i in np.flatnonzero(bad):
                message[i] = self.field.stop_message(Y[i], ops, options)
            return status, message
        return check

