r"""A scheme function made from an :class:`~flowsim.rules.UpdateRule`: what
:func:`flowsim.register` gives a researcher's own scheme.

The function has every scheme's signature ``(loss, x0, eta, steps, *, <options>, gtol,
max_norm, record, record_every, backend, workers, executor, chunk_size)``, runs the rule on
the numpy driver or on JAX, and travels to worker processes by value (its rule's functions
by name), so a scheme defined in the researcher's own module runs in chunks as the built-in
ones do.
"""
from __future__ import annotations


import numpy as np

from ..ensemble.workers import PARALLEL_DOC, in_chunks
from ..backends import on_jax
from ..rules import MadeFunction, check_options
from ._driver import as_record, common_arguments, run_rule, schedule_steps

__all__ = ["RuleScheme"]

_COMMON = [("gtol", None), ("max_norm", 1e8), ("record", "all"), ("record_every", 1),
           ("backend", "numpy"), ("workers", None), ("executor", None), ("chunk_size", None)]


class RuleScheme(MadeFunction):
    r"""The scheme ``name`` that runs ``rule``.

    Parameters
    ----------
    name, label : str
        Machine name (results carry it in ``method``) and human name.
    rule : UpdateRule
    step_time : {"eta", "sqrt(eta)"}
        The flow time one step covers (iterate k sits at h_0 + ... + h_{k-1}).

    Notes
    -----
    Calling it: ``scheme(loss, x0, eta, steps, **options)`` with x0 of shape (n,) (a
    :class:`~flowsim.Trajectory`) or (m, n) (a :class:`~flowsim.BatchTrajectory`), ``eta``
    a number or a schedule ``k -> eta_k``; the rule's options are keywords.
    """

    KIND, SOURCE = "scheme", "an update rule"
    POSITIONAL = (("loss", "Loss or str"), ("x0", "array_like, shape (n,) or (m, n)"),
                  ("eta", "float or callable"), ("steps", "int"))
    COMMON, OWNER = _COMMON, "rule"
    SUMMARY = "{label}: a scheme registered from an update rule."
    REST = ("    gtol, max_norm, record, record_every, backend\n"
            "        As in :func:`flowsim.gradient_descent`.\n" + PARALLEL_DOC)

    def __init__(self, name, label, rule, step_time="eta"):
        self.rule, self.step_time = rule, step_time
        self._named(name, label, (rule, step_time), rule.options)

    def __call__(self, loss, x0, eta, steps, *, gtol=None, max_norm=1e8, record="all",
                 record_every=1, backend="numpy", workers=None, executor=None,
                 chunk_size=None, **options):
        kwargs = dict(options, gtol=gtol, max_norm=max_norm, record=record,
                      record_every=record_every, backend=backend)
        return in_chunks(self, self._run, loss, x0, (eta, steps), kwargs, workers=workers,
                         executor=executor, chunk_size=chunk_size, takes_dense=False)

    def _run(self, loss, x0, eta, steps, *, gtol, max_norm, record, record_every, backend,
             **options):
        options = check_options(self.rule.options, options, self.name)
        on_jax(backend, compiled=True)   # checked before the loss is built
        loss, X0, steps, gtol, max_norm, single = common_arguments(
            loss, x0, steps, gtol, max_norm, record, record_every)
        etas = schedule_steps(eta, steps)
        dts = etas if self.step_time == "eta" else etas.map(np.sqrt)
        shown = ", ".join(f"{k}={v:g}" for k, v in options.items() if v is not None)
        return run_rule(loss, self.rule, options, X0, steps, etas, dts, gtol=gtol,
                        max_norm=max_norm, spec=as_record(record, record_every),
                        single=single, name=self.name,
                        label=f"{self.label} ({shown})" if shown else self.label,
                        backend=backend)
