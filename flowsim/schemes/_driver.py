"""The loop every discrete scheme shares: iterate, watch for trouble, build the Trajectory."""
from __future__ import annotations

import numpy as np

from .._validate import as_loss, positive, start_points, step_count
from ..schedules import as_schedule, step_sizes
from .._numeric import safe_norm
from ..results import Status, Trajectory, cut_at_nonfinite

__all__ = ["StepFailed", "iterate", "finish", "common_arguments", "escape", "schedule_steps",
           "converged_message"]


class StepFailed(Exception):
    """Raised by a step function that cannot produce the next iterate (message says why)."""


def common_arguments(loss, x0, steps, gtol, max_norm, batch=False):
    """Validate the arguments every scheme takes; returns (loss, x0, steps, gtol, max_norm)."""
    loss = as_loss(loss)
    x0 = start_points(x0, loss.n, batch=batch)
    steps = step_count(steps, "steps", loss.n, x0.shape[0] if x0.ndim == 2 else 1)
    gtol = None if gtol is None else positive(gtol, "gtol")
    return loss, x0, steps, gtol, positive(max_norm, "max_norm")


def schedule_steps(eta, steps, name="eta", upper=None, extra=0):
    """The steps eta_0 .. eta_{steps + extra - 1} of a number or a schedule ``k -> eta_k``.

    Every scheme takes either; ``upper`` bounds each step (Newton's damping is at most 1).
    ``extra`` steps more than run are returned where a scheme records the step it would
    take next from its last iterate.
    """
    etas = step_sizes(as_schedule(eta)[0], steps + extra)
    if upper is not None and np.any(etas > upper):
        k = int(np.flatnonzero(etas > upper)[0])
        raise ValueError(f"{name} must be at most {upper:g} at every step; step {k} is "
                         f"{etas[k]:g}.")
    return etas


def converged_message(gnorm, gtol, k):
    """The message of a run stopped at step ``k`` by |grad L| = ``gnorm`` <= ``gtol``."""
    return f"|grad L| = {gnorm:.3g} <= gtol = {gtol:g} after {k} steps"


def escape(norm, max_norm, k):
    """How a run ends when iterate ``k`` has |x| = ``norm`` beyond ``max_norm`` (or non-finite).

    Returns ``(keep, message)``: whether iterate k itself is kept (only when finite).
    """
    if np.isfinite(norm):
        return True, f"|x| = {norm:.3g} exceeded max_norm = {max_norm:g} at step {k}"
    return False, (f"the iterate became non-finite at step {k} (overflow, or the loss is "
                   "undefined there); kept the iterates before it")


def iterate(loss, x0, steps, step, dts, *, gtol=None, max_norm=1e8, records=()):
    """Run ``x_{k+1} = step(k, x_k)`` for up to ``steps`` steps.

    Parameters
    ----------
    step : callable
        ``step(k, x)`` -> ``(x_next, g, info)``: the next iterate, the gradient at ``x`` if
        the step computed it (for the ``gtol`` test) or None, and a dict of per-step records
        (names from ``records``; ``"dt"`` overrides the step's duration) or None. Raises
        :class:`StepFailed` when it cannot continue.
    dts : ndarray, shape (steps,)
        Duration of each step in the flow's time.

    Returns
    -------
    xs : ndarray, shape (k + 1, n)
    ts : ndarray, shape (k + 1,)
    status : Status
    message : str
    recorded : dict of str to ndarray, each shape (k + 1,)
        Record of step k in row k; the last row is nan.
    """
    n = x0.size
    xs = np.empty((steps + 1, n))
    xs[0] = x0
    dts = np.array(dts, dtype=float)
    rec = {name: np.full(steps + 1, np.nan) for name in records}
    limit = max_norm ** 2 if max_norm < 1e150 else np.inf  # a float ** 2 raises past 1.3e154
    status, message, last = Status.REACHED_END, f"ran all {steps} steps", steps
    with np.errstate(all="ignore"):
        for k in range(steps):
            try:
                x_next, g, info = step(k, xs[k])
            except StepFailed as err:
                status, message, last = Status.FAILED, f"step {k} failed: {err}", k
                break
            if gtol is not None and g is not None and np.sqrt(g @ g) <= gtol:
                status, last = Status.CONVERGED, k
                message = converged_message(np.sqrt(g @ g), gtol, k)
                break
            if info:
                for name, value in info.items():
                    if name == "dt":
                        dts[k] = value
                    else:
                        rec[name][k] = value
            size = x_next @ x_next
            if not size <= limit and not safe_norm(x_next) <= max_norm:
                keep, message = escape(safe_norm(x_next), max_norm, k + 1)
                if keep:
                    xs[k + 1] = x_next
                last, status = (k + 1 if keep else k), Status.DIVERGED
                break
            xs[k + 1] = x_next
    ts = np.concatenate([[0.0], np.cumsum(dts[:last])])
    return xs[:last + 1], ts, status, message, {k: v[:last + 1] for k, v in rec.items()}


def finish(loss, xs, ts, status, message, method, label, before, *, extras=None,
           values=None, maximize=False, grad_norms=None):
    """The Trajectory of a scheme, with the growth test for divergence.

    A run that reached its step budget but ended with a worse loss *and* a larger gradient
    than it started with is moving away from where it began: it is reported ``diverged``
    (for example gradient descent with eta > 2/lambda_max on a quadratic).
    """
    spent = loss.counts.spent_since(before)
    if grad_norms is None:
        observed_values, grad_norms = loss._observe(xs)
        values = observed_values if values is None else values
    elif values is None:
        values = loss._values(xs)
    k, status, message = cut_at_nonfinite(values, status, message, ts)
    xs, ts, values, grad_norms = xs[:k], ts[:k], values[:k], grad_norms[:k]
    extras = {name: series[:k] for name, series in (extras or {}).items()}
    if status is Status.REACHED_END and len(xs) > 1:
        worse = values[-1] < values[0] if maximize else values[-1] > values[0]
        if worse and grad_norms[-1] > grad_norms[0]:
            status = Status.DIVERGED
            message = (f"ran all {len(xs) - 1} steps but L went from {values[0]:.6g} to "
                       f"{values[-1]:.6g} and |grad L| grew: the iterates move away "
                       "(is the step above the stability limit?)")
    return Trajectory(ts, xs, values, grad_norms, status, message, method, label,
                      extras=extras, **spent)
