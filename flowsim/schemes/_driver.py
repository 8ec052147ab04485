"""The loop every discrete scheme shares, for one start or m starts at once: iterate, watch
each start for trouble, record what was asked, build the Trajectory or BatchTrajectory.

A scheme supplies one step function on a stack of active starts; the loop keeps each start's
own status (converged at gtol, diverged past max_norm or into non-finite values, failed where
its step could not be taken) and holds a stopped start at its last good iterate while the
others go on. One start is a batch of one, so single runs and batches are the same
arithmetic.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import stops
from .._numeric import row_blocks, row_norms, safe_norm
from ..backends import on_jax
from .._contract import checked_once, checked_step
from ..rules import numpy_ops, put_rows, take_rows
from .._validate import as_loss, positive, start_points, step_count
from ..results import BatchTrajectory, Status, Trajectory
from ..schedules import StepSizes, as_schedule, step_sizes
from ._record import Record, Recorder, as_record

__all__ = ["StepFailed", "iterate", "finish", "common_arguments", "escape", "schedule_steps",
           "converged_message", "as_record", "Run", "times_of"]


class Run(NamedTuple):
    """What :func:`iterate` returns: the kept iterates of m starts and how each ended."""

    xs: np.ndarray       #: (m, K, n) kept iterates; a stopped start holds its last state
    ts: np.ndarray       #: (K,) their times
    ks: np.ndarray       #: (K,) their iterate numbers
    status: np.ndarray   #: (m,) Status per start
    message: np.ndarray  #: (m,) str per start
    records: dict        #: name -> (m, K) per-step records (nan at the last iterate)
    last: np.ndarray = None  #: (m,) the iterate at which each start stopped
    t_last: np.ndarray = None  #: (m,) its time


class StepFailed(Exception):
    """Raised by a step function that cannot produce the next iterate for any of its rows
    (message says why); rows that fail alone are reported in-band (``info["failed"]``)."""


def common_arguments(loss, x0, steps, gtol, max_norm, record="all", record_every=1):
    """Validate the arguments every scheme takes.

    Returns ``(loss, X0, steps, gtol, max_norm, single)``: ``X0`` of shape (m, n) and
    ``single`` True where ``x0`` was one start of shape (n,). The memory check counts the
    iterates that ``record`` and ``record_every`` keep.
    """
    loss = as_loss(loss)
    x0 = start_points(x0, loss.n, batch=True)
    single = x0.ndim == 1
    X0 = np.atleast_2d(x0)
    steps = step_count(steps, "steps", loss.n, X0.shape[0],
                       as_record(record, record_every).every)
    gtol = None if gtol is None else positive(gtol, "gtol")
    return loss, X0, steps, gtol, positive(max_norm, "max_norm"), single


def jax_run(loss, name, X0, etas, dts, **kwargs):
    """The JAX backend's run of scheme ``name`` (see :mod:`flowsim.jax_backend.schemes`)."""
    from ..jax_backend.schemes import run_scheme
    return run_scheme(loss, name, X0, np.asarray(etas, dtype=float),
                      np.asarray(dts, dtype=float), **kwargs)


def schedule_steps(eta, steps, name="eta", upper=None, extra=0):
    """The steps eta_0 .. eta_{steps + extra - 1} of a number or a schedule ``k -> eta_k``.

    Every scheme takes either; ``upper`` bounds each step (Newton's damping is at most 1).
    ``extra`` steps more than run are returned where a scheme records the step it would
    take next from its last iterate.
    """
    return step_sizes(as_schedule(eta)[0], steps + extra).check(upper, name)


def converged_message(gnorm, gtol, k):
    """The message of a run stopped at step ``k`` by |grad L| = ``gnorm`` <= ``gtol``."""
    return stops.converged(gnorm, gtol, k)


def escape(norm, max_norm, k):
    """How a run ends when iterate ``k`` has |x| = ``norm`` beyond ``max_norm`` (or non-finite).

    Returns ``(keep, message)``: whether iterate k itself is kept (only when finite).
    """
    if np.isfinite(norm):
        return True, stops.diverged(norm, max_norm, k)
    return False, stops.nonfinite(k)


def iterate(loss, X0, steps, step, dts, *, gtol=None, max_norm=1e8, records=(),
            record=None, step_of=None):
    r"""Run :math:`X_{k+1} = \mathrm{step}(k, X_k)` for up to ``steps`` steps on m starts.

    Parameters
    ----------
    X0 : ndarray, shape (m, n)
    step : callable
        ``step(k, X, rows)`` -> ``(X_next, G, info)`` for the active starts ``rows`` (a
        ``slice(None)`` while every start is active, then their indices into the m starts)
        with states ``X`` of shape (a, n): their next iterates, their gradients at ``X`` if
        the step computed them (for the ``gtol`` test) or None, and a dict of per-step
        records of shape (a,) (names from ``records``; ``"dt"`` overrides the step's
        duration, one start only; ``"failed"``, a mask, with ``"failed_messages"``, ends
        those rows without a second call) or None. Raises :class:`StepFailed` when no row
        can go on.
    dts : StepSizes or ndarray, shape (steps,)
        Duration of each step in the flow's time (a run's overrides go to a copy).
    record : Record, optional
        Which iterates to keep (every one by default, see :func:`as_record`).
    step_of : callable, optional
        Given instead of ``step`` for a step whose starts do not interact: ``step_of(block)``
        -> the step function of the starts ``X0[block]`` (a slice), with ``rows`` relative
        to them. The starts then run in blocks of rows one after another
        (:func:`flowsim._numeric.row_blocks`: each block's arrays stay in the caches), with
        the numbers of one block.

    Returns
    -------
    Run
    """
    m, n = X0.shape
    dts = dts[:len(dts)] if isinstance(dts, StepSizes) else np.array(dts, dtype=float)
    keeper = Recorder(steps, m, n, records, record)
    status = stops.every_start(m, Status.REACHED_END)
    message = stops.every_start(m, f"ran all {steps} steps")
    blocks = [slice(0, m)] if step_of is None else row_blocks(m, n)
    for block in blocks:
        _advance(X0[block], block.start, step if step_of is None else step_of(block), steps,
                 dts, keeper, status, message, gtol, max_norm)
    xs, ts, ks, records = keeper.result(dts)
    last = keeper.last.copy()
    return Run(xs, ts, ks, status, message, records, last, times_of(dts, last))


def _advance(X0, first, step, steps, dts, keeper, status, message, gtol, max_norm):
    """:func:`iterate`'s loop for the starts ``first``, ``first + 1``, ... (the rows of
    ``X0``), writing their statuses, messages and kept iterates into the batch's."""
    a, n = X0.shape
    rows = np.arange(first, first + a)   # the active starts, among the batch's
    sel = slice(first, first + a)        # the same while all are active (a view)
    local = slice(None)                  # what the step is given: its own starts' rows
    X = X0.copy()
    keeper.keep(0, sel, X)
    quick = max_norm / np.sqrt(n)  # max |x_i| <= quick means |x| <= max_norm for every start
    if not (X.max(initial=-np.inf) <= quick and -X.min(initial=np.inf) <= quick):
        out, why = stops.outside(X, max_norm)   # not run: held at x0, said so
        if out.size:
            status[rows[out]], message[rows[out]] = Status.DIVERGED, why
            keeper.stop(rows[out], 0, X[out])
            rows, X = np.delete(rows, out), np.delete(X, out, axis=0)
            sel, local = rows, rows - first
    k = 0
    with np.errstate(all="ignore"):
        while k < steps and rows.size:
            try:
                X_next, G, info = step(k, X, local)
            except StepFailed as err:  # every active row ends here
                status[rows] = Status.FAILED
                message[rows] = f"step {k} failed: {err}"
                keeper.stop(rows, k, X)
                return
            stop = None
            if info and "failed" in info:  # rows whose step could not be taken, in-band
                info = dict(info)
                bad, texts = info.pop("failed"), info.pop("failed_messages")
                if bad.any():
                    status[rows[bad]] = Status.FAILED
                    message[rows[bad]] = [f"step {k} failed: {text}" for text in texts]
                    keeper.stop(rows[bad], k, X[bad])
                    stop = bad
            if gtol is not None and G is not None:
                gnorm = row_norms(G)
                done = gnorm <= gtol
                if stop is not None:
                    done &= ~stop
                if done.any():
                    status[rows[done]] = Status.CONVERGED
                    message[rows[done]] = [converged_message(g, gtol, k) for g in gnorm[done]]
                    keeper.stop(rows[done], k, X[done])
                    stop = done if stop is None else stop | done
            if info:
                keeper.note(k, sel, info, dts)
            # some start may be out (or non-finite): max and min, no |X| temporary
            if not (X_next.max(initial=-np.inf) <= quick and
                    -X_next.min(initial=np.inf) <= quick):
                out = _escaped(X_next, max_norm, stop)
                for i in np.flatnonzero(out):
                    keep, message[rows[i]] = escape(safe_norm(X_next[i]), max_norm, k + 1)
                    status[rows[i]] = Status.DIVERGED
                    keeper.stop(rows[i:i + 1], k + 1 if keep else k,
                                (X_next if keep else X)[i:i + 1])
                stop = out if stop is None else stop | out
            if stop is not None and stop.any():
                go_on = ~stop   # (np.compress: a sixth of a boolean index's time on rows)
                rows, X_next = rows[go_on], np.compress(go_on, X_next, axis=0)
                sel, local = rows, rows - first
            X = X_next
            k += 1
            keeper.keep(k, sel, X)
    keeper.stop(rows, k, X)


def times_of(dts, ks):
    """The times of iterates ``ks``: sums of the first ks step durations."""
    ks = np.asarray(ks)
    if isinstance(dts, StepSizes):   # (cumulative takes sorted iterates)
        order = np.argsort(ks, kind="stable")
        out = np.empty(ks.shape)
        out[order] = dts.cumulative(ks[order])
        return out
    return np.concatenate([[0.0], np.cumsum(dts)])[ks]


def _escaped(X, max_norm, stopped):
    """Starts whose |x| exceeds ``max_norm`` or is not finite (not those already stopped)."""
    out = ~(row_norms(X) <= max_norm)
    return out if stopped is None else out & ~stopped


def finish(loss, run, method, label, before, *, single, extras=None, values=None,
           maximize=False, grad_norms=None, record=None):
    """The Trajectory (``single``) or BatchTrajectory of a scheme, with each start's growth
    test for divergence.

    A start that reached its step budget but ended with a worse loss *and* a larger gradient
    than it started with is moving away from where it began: it is reported ``diverged``
    (for example gradient descent with eta > 2/lambda_max on a quadratic). A start whose L
    turns non-finite is cut there (held at its last finite state) and reported diverged.
    ``values`` and ``grad_norms`` (shape (m, k)) replace L and |grad L| where given;
    a batch keeps them only if ``record`` asks for them.
    """
    spent = loss.counts.spent_since(before)
    xs, ts, status, message = run.xs, run.ts, run.status, run.message
    fields = (record or Record()).fields
    if values is None or grad_norms is None:
        observed_values, observed_norms = loss.observe(xs)
        values = observed_values if values is None else values
        grad_norms = observed_norms if grad_norms is None else grad_norms
    status, message = np.array(status, dtype=object), np.array(message, dtype=object)
    extras = dict(extras or {})
    broken = ~np.isfinite(values)
    broken[broken[:, 0]] = False  # L already not finite at the start (an overflowing start)
    outside = np.isnan(values[:, 0])
    for i in np.flatnonzero(outside):  # not a loss value at all
        if status[i] == Status.FAILED:
            continue
        status[i] = Status.FAILED
        message[i] = ("L(x0) is nan: the start lies outside the loss's domain, so no step "
                      "means anything there; start inside it")
    for i in np.flatnonzero(broken.any(axis=1)):  # cut where L turns non-finite, hold there
        j = int(np.argmax(broken[i]))
        for series in [xs[i], values[i], grad_norms[i]] + [e[i] for e in extras.values()]:
            series[j:] = series[j - 1]
        status[i] = Status.DIVERGED
        message[i] = (f"L(x) is not finite at t = {ts[j]:.6g} (the path left the loss's "
                      f"domain or overflowed); kept the path up to t = {ts[j - 1]:.6g}")
    if len(ts) > 1:  # the growth test, for every start that ran to its end
        worse = values[:, -1] < values[:, 0] if maximize else values[:, -1] > values[:, 0]
        away = worse & (grad_norms[:, -1] > grad_norms[:, 0]) & ~broken.any(axis=1) & \
            ~outside
        for i in np.flatnonzero(away):   # (the statuses compared only where it matters)
            if status[i] != Status.REACHED_END:
                continue
            status[i] = Status.DIVERGED
            message[i] = (f"ran all {len(ts) - 1} steps but L went from {values[i, 0]:.6g} "
                          f"to {values[i, -1]:.6g} and |grad L| grew: the iterates move away "
                          "(is the step above the stability limit?)")
    extras["steps_taken"] = np.minimum(run.ks[None, :], run.last[:, None])
    if single:
        return Trajectory(ts, xs[0], values[0], grad_norms[0], status[0], message[0], method,
                          label, extras={name: e[0] for name, e in extras.items()},
                          variables=loss.variable_names, **spent)
    return BatchTrajectory(ts, xs, values if "loss" in fields else None,
                           grad_norms if "grad_norm" in fields else None, tuple(status),
                           tuple(message), method, label, extras=extras,
                           variables=loss.variable_names, t_stop=run.t_last, **spent)


def run_rule(loss, rule, options, X0, steps, etas, dts, *, gtol, max_norm, spec, single, name,
             label, backend="numpy", extras=None, maximize=False, measures=None):
    """Run an :class:`~flowsim.rules.UpdateRule` from validated arguments, on numpy (this
    loop, on the active rows) or on JAX (the same rule vmapped and scanned).

    ``options`` are the rule's checked options; ``dts`` the steps' durations in the flow's
    time; ``backend`` the scheme's argument (checked here); ``extras(run)`` -> the result's
    extras from the kept iterates; ``maximize`` turns the growth test of :func:`finish`
    around; ``measures(run)`` -> (values, stationarity) of the kept iterates, where they are
    not L and |grad L| (proximal gradient: f + g and the gradient mapping). Returns the
    Trajectory or BatchTrajectory.
    """
    failure, owner = rule.failure, f"the update rule of {name!r}"
    if on_jax(backend, compiled=True):
        return jax_run(loss, name, X0, etas, dts, options=options, gtol=gtol,
                       max_norm=max_norm, spec=spec, single=single, label=label, rule=rule,
                       extras=extras, maximize=maximize, measures=measures)
    if backend == "numba":
        from ..compiled import run as compiled_run
        before = loss.counts
        run = compiled_run(loss, rule, options, X0, steps, etas, dts, gtol=gtol,
                           max_norm=max_norm, spec=spec, failure=failure, owner=owner)
        return finish(loss, run, name, label + " [numba]", before, single=single,
                      record=spec, extras=extras(run) if extras is not None else None,
                      maximize=maximize, **measured(run, measures))
    ops = numpy_ops(loss, single)
    # its contract checked at the first step (a researcher's own rule, above all)
    rule_step = checked_once(rule.step, lambda result, k, eta, X, S, *_:
                             checked_step(result, X, S, owner))

    def step_of(block):
        """The step of the starts ``X0[block]``, with their own state."""
        state = [rule.start(X0[block], options, np)]

        def step(k, X, sel):
            whole = isinstance(sel, slice)
            S = state[0] if whole else take_rows(state[0], sel)
            X_next, G, S_next, failed = rule_step(k, etas[k], X, S, ops, options)
            if whole:   # every start is active: the new state replaces the old one
                state[0] = S_next
            else:
                put_rows(state[0], sel, S_next)
            if failed is False or not np.any(failed):
                return X_next, G, None
            bad = np.broadcast_to(np.asarray(failed, dtype=bool), (len(X),))
            text = failure.replace("{k}", str(k))
            return X_next, G, {"failed": bad, "failed_messages": [text] * int(bad.sum())}
        return step

    before = loss.counts
    # a rule's starts do not interact (it is handed any subset of them): blocks of rows
    run = iterate(loss, X0, steps, None, dts, gtol=gtol, max_norm=max_norm, record=spec,
                  step_of=step_of)
    return finish(loss, run, name, label, before, single=single, record=spec,
                  extras=extras(run) if extras is not None else None, maximize=maximize,
                  **measured(run, measures))


def measured(run, measures):
    """:func:`finish`'s ``values`` and ``grad_norms`` from ``measures(run)`` (none: L and
    |grad L|)."""
    if measures is None:
        return {}
    values, grad_norms = measures(run)
    return {"values": values, "grad_norms": grad_norms}
