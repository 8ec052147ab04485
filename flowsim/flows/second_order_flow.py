r"""A flow made from a :class:`~flowsim.rules.SecondOrderField`: what :func:`flowsim.register`
gives a researcher's own momentum ODE.

.. math:: m(t)\,\ddot x + c(t)\,\dot x + \nabla L(x) = 0, \qquad x(t_0) = x_0,\
          \dot x(t_0) = v_0 ,

with the field's ``coefficients(t, options, xp) -> (c, m)`` written once and run three ways
by :func:`flowsim.flows.momentum.second_order`: one start on scipy's steppers (the analytic
Jacobian in (x, v) for the implicit ones), m starts on the per-start engines of
:mod:`flowsim.ensemble`, m starts on diffrax with ``backend="jax"``. The heavy ball and
Nesterov ODEs are built-in fields of this kind.
"""
from __future__ import annotations

from .._validate import nonnegative, positive, start_points
from ..ensemble.workers import PARALLEL_DOC, in_chunks
from ..rules import FLOW_ARGUMENTS, MadeFunction, check_options
from ._common import check_flow_arguments, output_times
from .momentum import second_order

__all__ = ["SecondOrderFlow"]

_COMMON = [("v0", None), ("t0", 0.0), ("method", "LSODA"), ("rtol", 1e-8), ("atol", 1e-10),
           ("t_eval", None), ("dense_output", True), ("max_norm", 1e8),
           ("max_steps", "default"), ("backend", "numpy"), ("workers", None),
           ("executor", None), ("chunk_size", None)]


class SecondOrderFlow(MadeFunction):
    r"""The flow ``name``: m(t) x'' + c(t) x' + grad L(x) = 0 with (c, m) from ``field``.

    Parameters
    ----------
    name, label : str
    field : SecondOrderField

    Notes
    -----
    Calling it: ``flow(loss, x0, t_end, **options)`` with x0 of shape (n,) (a
    :class:`~flowsim.Trajectory`) or (m, n) (a :class:`~flowsim.BatchTrajectory`), the
    field's options as keywords, ``v0`` (shape (n,) or (m, n), zero by default) and ``t0``
    (the start time, >= 0), the rest as in :func:`flowsim.heavy_ball_flow`;
    ``extras["velocities"]`` holds x' at every output.
    """

    KIND, SOURCE = "flow", "a second-order field"
    POSITIONAL, COMMON, OWNER = FLOW_ARGUMENTS, _COMMON, "flow"
    SUMMARY = "{label}: a second-order flow registered from its coefficients."
    REST = ("    v0 : array_like, shape (n,) or (m, n), optional\n"
            "        Initial velocity (zero by default).\n    t0 : float\n"
            "        Start time, >= 0 and below t_end.\n"
            "    method, rtol, atol, t_eval, dense_output, max_norm, max_steps, backend\n"
            "        As in :func:`flowsim.heavy_ball_flow`.\n" + PARALLEL_DOC)

    def __init__(self, name, label, field):
        self.field = field
        self._named(name, label, (field,), field.options)

    def __call__(self, loss, x0, t_end, *, v0=None, t0=0.0, method="LSODA", rtol=1e-8,
                 atol=1e-10, t_eval=None, dense_output=True, max_norm=1e8,
                 max_steps="default", backend="numpy", workers=None, executor=None,
                 chunk_size=None, **options):
        kwargs = dict(options, v0=v0, t0=t0, method=method, rtol=rtol, atol=atol,
                      t_eval=t_eval, dense_output=dense_output, max_norm=max_norm,
                      max_steps=max_steps, backend=backend)
        return in_chunks(self, self._run, loss, x0, (t_end,), kwargs, workers=workers,
                         executor=executor, chunk_size=chunk_size, takes_dense=True)

    def _run(self, loss, x0, t_end, *, v0, t0, method, rtol, atol, t_eval, dense_output,
             max_norm, max_steps, backend, **options):
        options = check_options(self.field.options, options, self.name)
        loss, t_end = check_flow_arguments(loss, t_end, method, rtol, atol, max_steps)
        t0 = nonnegative(t0, "t0")
        if t0 >= t_end:
            raise ValueError(f"t0 = {t0:g} must be below t_end = {t_end:g}.")
        n = loss.n
        t_eval = output_times(t_eval, t_end, start_points(x0, n), 2 * n)
        shown = "".join(f"{k}={v:g}, " for k, v in options.items() if v is not None)
        return second_order(loss, x0, v0, t_end, method, rtol, atol, t_eval, dense_output,
                            positive(max_norm, "max_norm"), max_steps, self.field, options,
                            self.name, f"{self.label} ({shown}{method})", t0=t0,
                            extras=lambda ys: {"velocities": ys[:, n:]},
                            batch_extras=lambda ys, values: {"velocities": ys[..., n:]},
                            backend=backend)
