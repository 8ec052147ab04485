"""What every flow shares: argument checks, stop rules and the Trajectory it returns."""
from __future__ import annotations

import numpy as np

from .. import stops
from .._numeric import safe_norm
from .._validate import (as_loss, check_recorded, choice, positive, positive_int, real_array,
                         start_points)
from ..ensemble.run import DEFAULT_OUTPUTS
from ..results import PositionPart, Status, Trajectory, cut_at_nonfinite
from ._solver import METHODS, Integration

__all__ = ["flow_arguments", "check_flow_arguments", "output_times", "check_start",
           "refuse_kinks",
           "finish_flow", "converged", "bound_stop", "outside_run"]


def flow_arguments(loss, x0, t_end, method, rtol, atol, max_steps, gtol, max_norm, t_eval):
    """Every first-order flow's checks: ``(loss, x0, t_end, gtol, max_norm, t_eval)``, the
    start(s) of shape (n,) or (m, n) checked to be inside the loss's domain."""
    loss, t_end = check_flow_arguments(loss, t_end, method, rtol, atol, max_steps)
    x0 = start_points(x0, loss.n)
    gtol = positive(gtol, "gtol") if gtol is not None else None
    max_norm = positive(max_norm, "max_norm")
    t_eval = output_times(t_eval, t_end, x0)
    check_start(loss, x0)
    return loss, x0, t_end, gtol, max_norm, t_eval


def check_flow_arguments(loss, t_end, method, rtol, atol, max_steps):
    loss = as_loss(loss)
    t_end = positive(t_end, "t_end")
    choice(method, tuple(METHODS) + ("auto",), "method")
    positive(rtol, "rtol")
    positive(atol, "atol")
    if max_steps is not None and max_steps != "default":
        positive_int(max_steps, "max_steps")
    return loss, t_end


def output_times(t_eval, t_end, x0=None, dims=None):
    """``t_eval`` checked (increasing, inside [0, t_end]) and its record predicted: m starts
    (from ``x0``) x outputs (``t_eval``, or the batch's 101) x (``dims`` + 2) numbers."""
    if x0 is not None:
        X = np.atleast_2d(x0)
        outputs = np.size(t_eval) if t_eval is not None else \
            (DEFAULT_OUTPUTS if np.ndim(x0) == 2 else 0)
        check_recorded(len(X) * outputs * ((dims or X.shape[1]) + 2),
                       f"{len(X)} start(s) x {outputs} output times",
                       "ask for fewer starts or output times")
    if t_eval is None:
        return None
    t_eval = real_array(t_eval, "t_eval")
    if t_eval.ndim != 1 or t_eval.size == 0 or not np.all(np.isfinite(t_eval)) or \
            np.any(np.diff(t_eval) <= 0) or t_eval[0] < 0 or \
            t_eval[-1] > t_end * (1 + 1e-12):
        raise ValueError(f"t_eval must be an increasing 1-D array inside [0, t_end = {t_end:g}].")
    # a scheme's accumulated times (k * eta summed) may end a few ulps past t_end
    return np.minimum(t_eval, t_end) if t_eval[-1] > t_end and (
        t_eval.size == 1 or t_eval[-2] < t_end) else t_eval


def refuse_kinks(loss, what):
    """Refuse a loss with kinks (abs, max, min, sign) for a flow that needs derivatives."""
    from .nonsmooth import has_kinks
    if has_kinks(loss.expr):
        raise ValueError(f"loss: {what} needs a smooth loss, and this one has kinks (abs, max, "
                         "min, sign); smooth them (sqrt(x**2 + eps) for abs(x)), or use "
                         "gradient_flow, whose subgradient flow handles kinks.")


def check_start(loss, X, what="x0"):
    with np.errstate(all="ignore"):
        finite = np.all(np.isfinite(loss.grad(X))) and np.all(np.isfinite(loss.value(X)))
    if not finite:
        raise ValueError(f"{what}: the loss or its gradient is not finite at the start "
                         f"{np.round(X, 6).tolist() if X.size <= 10 else '(some start)'}; "
                         "start inside the loss's domain.")


def outside_run(x0, max_norm, t0=0.0, state=None):
    """The run of a start x0 (n,) beyond ``max_norm``, or whose ``state`` (the flow's whole
    state at t0 where it is more than x0: a velocity, moments) is not finite: it ends at t0
    where it is, ``diverged`` with :func:`flowsim.stops.outside_start`'s (or
    :func:`~flowsim.stops.not_finite_start`'s) sentence, as every path ends such a start;
    None for a start that runs."""
    y0 = np.asarray(x0 if state is None else state, dtype=float)
    held, why = stops.outside(x0, max_norm)
    if held.size:
        message = why[0]
    elif not np.isfinite(y0).all():
        message = stops.not_finite_start()
    else:
        return None
    return Integration(np.array([float(t0)]), y0[None, :], None, Status.DIVERGED, message)


def _samples(run, t_eval):
    """Output times and states: the accepted steps, or ``t_eval`` within the reached span,
    and the state where a run stopped early (converged, diverged, failed) as its last
    output, so the path ends where its message says it did."""
    if t_eval is None or run.dense is None:   # (no dense solution: a start held where it is)
        return run.ts, run.ys
    end = run.ts[-1]
    keep = t_eval[t_eval <= end * (1 + 1e-12)]
    if keep.size == 0:
        return run.ts[:1], run.ys[:1]
    states = np.asarray(run.dense(keep)).T
    if keep[-1] < end * (1 - 1e-12) and end < t_eval[-1]:   # stopped between two outputs
        keep, states = np.append(keep, end), np.vstack([states, run.ys[-1]])
    return keep, states


def finish_flow(loss, run, t_eval, method, label, before, split=None, extras=None,
                keep_dense=True):
    """Build the Trajectory: states, L and |grad L| at the output times, counts, and the
    dense solution unless ``keep_dense`` is false (a run may need it only for ``t_eval``)."""
    counts = loss.counts.spent_since(before)
    ts, ys = _samples(run, t_eval)
    xs = ys if split is None else ys[:, :split]
    values, grad_norms = loss.observe(xs)
    k, status, message = cut_at_nonfinite(values, run.status, run.message, ts)
    ts, ys, xs, values, grad_norms = ts[:k], ys[:k], xs[:k], values[:k], grad_norms[:k]
    dense = None if not keep_dense or run.dense is None else \
        run.dense if split is None else PositionPart(run.dense, split)
    more = extras(ys) if extras is not None else {}
    return Trajectory(ts, xs, values, grad_norms, status, message, method, label,
                      extras=more, dense=dense, variables=loss.variable_names, **counts)


def converged(gnorm, gtol):
    """The converged stop reason when |grad L| = ``gnorm`` is at most ``gtol``, else None."""
    if gtol is not None and gnorm <= gtol:
        return Status.CONVERGED, stops.converged(gnorm, gtol)
    return None


def bound_stop(max_norm, n):
    limit = max_norm ** 2 if max_norm < 1e150 else np.inf  # a float ** 2 raises past 1.3e154

    def check(y):
        x = y if y.shape[0] == n else y[:n]
        if not x @ x <= limit:
            norm = safe_norm(x)
            if not norm <= max_norm:
                return Status.DIVERGED, stops.diverged(norm, max_norm)
        return None
    return check
