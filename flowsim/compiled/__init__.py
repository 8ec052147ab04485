r"""The compiled backend, ``backend="numba"``: a scheme's :class:`~flowsim.rules.UpdateRule`
as one machine-code loop over starts and steps, and the per-start engine of batched flows
(the gradient flow, a researcher's :class:`~flowsim.rules.VectorField`) compiled.

An optional extra (``pip install "flowsim[numba]"``). The rule (or field) is run once on
symbols (:mod:`~flowsim.compiled.trace`): its step becomes formulas of x_k, the state, k and
eta_k, with the loss's derivatives written in. Those are printed and compiled
(:mod:`~flowsim.compiled.kernel`) into a loop that runs each start through chunks of 32 steps
without a stop decision (the loop vectorizes over the starts) and runs a start again through
a chunk, with every stop rule, where it may have stopped in it. The numbers, statuses,
messages, kept iterates and evaluation counts are those of the numpy driver; the arithmetic
differs from numpy's kernels only in rounding (sympy's printed formulas against symengine's).

It compiles once per loss, rule and options (a few seconds) and keeps the machine code on
disk for the next process (:mod:`~flowsim.compiled.store`); what cannot be written as formulas
is refused in one sentence (:class:`~flowsim.backends.Refused`), and ``backend="auto"`` then
runs the call on numpy.

Rooms: ``symbols`` (the stand-ins), ``trace`` (a rule or field on symbols), ``kernel`` and
``loops`` (schemes), ``codegen``, ``lanes``, ``fields`` and ``engine`` (flows), ``store``.
"""
from __future__ import annotations

import numpy as np

from .. import stops
from ..results import Status
from ..schedules import StepSizes
from .kernel import CONVERGED, DIVERGED, FAILED, HELD, compiled_step, require, run_rows
from .trace import state_arrays, trace_step

__all__ = ["run", "compiled", "require"]

#: Numbers (starts x (variables + state entries)) per block of the loop: the block and its
#: copy at the start of a chunk, 1 MB, stay in the caches while it runs.
BLOCK_NUMBERS = 65536


def compiled(loss, rule, options, owner="the update rule"):
    """The :class:`~flowsim.compiled.kernel.CompiledStep` of ``rule`` with ``options`` on
    ``loss``, made once and kept with the loss (``loss.memo``)."""
    kept = loss.memo("compiled_steps", dict)
    key = (rule, tuple(sorted(options.items())))
    if key not in kept:
        kept[key] = compiled_step(loss, trace_step(loss, rule, options, owner))
    return kept[key]


def run(loss, rule, options, X0, steps, etas, dts, *, gtol, max_norm, spec, failure,
        owner="the update rule"):
    """The starts ``X0`` (m, n) through ``steps`` steps of ``rule``, compiled.

    Arguments as :func:`flowsim.schemes._driver.run_rule` takes them (checked); ``failure``
    is the rule's message for a failed step (``{k}`` the step). Returns the
    :class:`~flowsim.schemes._driver.Run` that :func:`~flowsim.schemes._driver.iterate`
    would, and charges ``loss`` the evaluations the steps made.
    """
    from ..schemes._driver import Run, converged_message, escape, times_of
    from ..schemes._record import Recorder
    step = compiled(loss, rule, options, owner)
    m, n = X0.shape
    keeper = Recorder(steps, m, n, (), spec)
    X = np.array(X0, dtype=float)
    # the state's arrays (starts first) side by side: (m, p)
    parts = [np.asarray(a, dtype=float).reshape(m, -1)
             for a in state_arrays(rule.start(X0, options, np))]
    S = np.concatenate(parts, axis=1) if parts else np.zeros((m, 0))
    code, last = np.zeros(m, dtype=np.int8), np.zeros(m, dtype=np.int64)
    status = stops.every_start(m, Status.REACHED_END)
    message = stops.every_start(m, f"ran all {steps} steps")
    held, why = stops.outside(X0, max_norm)   # not run: held at x0, said so
    code[held], status[held], message[held] = HELD, Status.DIVERGED, why
    keeper.keep(0, slice(None), X)
    steps_of = etas[np.arange(steps)] if isinstance(etas, StepSizes) else \
        np.asarray(etas, dtype=float)[:steps]
    block = max(256, BLOCK_NUMBERS // (n + S.shape[1]))
    with np.errstate(all="ignore"):
        calls, norms = run_rows(step, X, S, np.ascontiguousarray(steps_of, dtype=float),
                                steps, keeper.every, gtol, max_norm, keeper.slots, last, code,
                                block)
    keeper.final[:], keeper.last[:] = X, last
    for i in np.flatnonzero(code == CONVERGED):
        status[i], message[i] = Status.CONVERGED, converged_message(norms[i], gtol, last[i])
    for i in np.flatnonzero(code == DIVERGED):
        kept = np.isfinite(norms[i])
        status[i] = Status.DIVERGED
        message[i] = escape(norms[i], max_norm, last[i] if kept else last[i] + 1)[1]
    for i in np.flatnonzero(code == FAILED):
        status[i] = Status.FAILED
        message[i] = f"step {last[i]} failed: {failure.replace('{k}', str(last[i]))}"
    total = int(calls.sum())
    loss.charge(**{name: total * count for name, count in step.calls.items()})
    xs, ts, ks, records = keeper.result(dts)
    return Run(xs, ts, ks, status, message, records, last.copy(), times_of(dts, last))
