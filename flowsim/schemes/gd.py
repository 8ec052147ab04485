"""Gradient descent: the forward Euler discretization of the gradient flow."""
from __future__ import annotations

import math

import numpy as np

from .. import stops
from .._numeric import row_norms
from .._validate import positive
from ..results import Status
from ._driver import (Run, StepFailed, as_record, common_arguments, converged_message, escape,
                      finish, iterate, run_rule, schedule_steps)
from ..backends import on_jax
from ..ensemble.workers import parallel
from ..rules import UpdateRule

__all__ = ["gradient_descent", "GRADIENT_DESCENT"]


def _gd_step(k, eta, x, state, ops, options):
    g = ops.grad(x)
    return x + (options["sign"] * eta) * g, g, state, False


#: x_{k+1} = x_k - eta_k grad L(x_k) (sign = +1: gradient ascent), on every backend.
GRADIENT_DESCENT = UpdateRule(_gd_step, options={"sign": -1.0})


@parallel
def gradient_descent(loss, x0, eta, steps, *, line_search=None, c=1e-4, shrink=0.5,
                     maximize=False, gtol=None, max_norm=1e8, record="all", record_every=1,
                     backend="numpy"):
    r"""Gradient descent x_{k+1} = x_k - eta_k grad L(x_k): forward Euler on the flow.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        Start, or m starts run together (one batched gradient call per step).
    eta : float or callable
        A fixed step, or a schedule ``k -> eta_k`` (see :mod:`flowsim.schedules`). With a
        line search it is the first trial step of each backtracking.
    steps : int
        Number of steps.
    line_search : {None, "armijo"}
        Armijo backtracking: shrink the trial step by ``shrink`` until
        L(x - a g) <= L(x) - c a |g|^2.
    c, shrink : float
        Sufficient-decrease constant in (0, 1) and shrink factor in (0, 1).
    maximize : bool
        Gradient ascent x_{k+1} = x_k + eta_k grad L(x_k).
    gtol : float, optional
        Stop (converged) at the first iterate with |grad L| <= gtol.
    max_norm : float
        Stop (diverged) once |x_k| > max_norm.
    record : {"all", "final"} or tuple of str
        What a run keeps: every iterate with L and |grad L| (``"all"``), the start and the
        end only (``"final"``), or the series named (``("x",)`` keeps states only).
    record_every : int
        Keep every k-th iterate (and the last).
    backend : {"numpy", "jax", "auto"}
        ``"jax"`` runs the same steps compiled with ``jax.lax.scan`` (an optional extra,
        :mod:`flowsim.jax_backend`; float64, on a GPU where JAX finds one).
        ``"auto"``: whichever of the two finishes first for this batch, start-up included
        (:func:`flowsim.backends.choose`; numpy for one start or without JAX); the label
        ends with ``[auto: numpy]`` or ``[auto: jax]``.

    Returns
    -------
    Trajectory
        Iterate k at time t_k = eta_0 + ... + eta_{k-1}; ``extras["step_sizes"]`` holds
        eta_k, the step from iterate k (at the last iterate, the step the schedule or the
        line search would try next).
        For m starts a :class:`~flowsim.BatchTrajectory` equal to m single runs, ``xs`` of
        shape (m, k, n); a start that stops (converged, diverged) holds its last iterate
        while the others go on, with its own status and message.

    Notes
    -----
    .. math:: x_{k+1} = x_k - \eta_k \nabla L(x_k)

    On L = 1/2 (x - x*)^T A (x - x*) with a fixed step, x_k - x* = (I - eta A)^k (x_0 - x*):
    each eigendirection shrinks by |1 - eta lambda_i| per step against the flow's
    e^{-eta lambda_i}, so GD is stable exactly when eta < 2/lambda_max.

    Examples
    --------
    >>> traj = gradient_descent("(x - 1)**2 / 2", [3.0], eta=0.5, steps=3)
    >>> traj.xs[:, 0].tolist()
    [3.0, 2.0, 1.5, 1.25]
    """
    loss, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    spec = as_record(record, record_every)
    # one step more than run: the step size recorded at the last iterate is the one the
    # schedule would take from it, so extras["step_sizes"] has no trailing nan
    recorded = schedule_steps(eta, steps, extra=1)
    etas = recorded[:-1]
    if line_search not in (None, "armijo"):
        raise ValueError(f"line_search must be None or 'armijo', got {line_search!r}.")
    if line_search is not None and not single:
        raise ValueError("line_search works on one start; pass x0 of shape (n,).")
    c, shrink = positive(c, "c"), positive(shrink, "shrink")
    if not 0 < c < 1 or not 0 < shrink < 1:
        raise ValueError(f"c and shrink must lie in (0, 1), got c={c!r}, shrink={shrink!r}.")
    sign = 1.0 if maximize else -1.0
    label = ("gradient ascent" if maximize else "gradient descent") + \
        (" + Armijo" if line_search else "") + ("" if single else f", m={len(X0)}")
    def schedule(run):   # eta_k at every kept iterate, the next one at the last
        return {"step_sizes": np.broadcast_to(recorded[run.ks], run.xs.shape[:2]).copy()}

    jax = on_jax(backend, compiled=True, line_search=line_search)
    before = loss.counts
    if line_search is None and single and spec.every == 1 and not jax and backend != "numba":
        fast = _python_float_loop(loss, X0[0], etas, sign, gtol, max_norm)
        if fast is not None:
            xs, status, message = fast
            ks = np.arange(len(xs))
            ts = etas.cumulative(ks)
            run = Run(xs[None], ts, ks, [status], [message], {}, np.array([ks[-1]]))
            return finish(loss, run, "gradient_descent", label, before, single=True,
                          maximize=maximize, extras={"step_sizes": recorded[ks][None]})
    if line_search is None:
        return run_rule(loss, GRADIENT_DESCENT, {"sign": sign}, X0, steps, etas, etas,
                        gtol=gtol, max_norm=max_norm, spec=spec, single=single,
                        name="gradient_descent", label=label, backend=backend,
                        extras=schedule, maximize=maximize)
    grad = loss.evaluator("grad", batched=not single)
    value = loss.evaluator("value", batched=not single)

    def armijo(k, X, rows):
        x, g = X[0], grad(X[0])
        gg = g @ g
        f0 = value(x)
        a = etas[k]
        for _ in range(60):
            trial = x + sign * a * g
            f1 = value(trial)
            if (f1 >= f0 + c * a * gg) if maximize else (f1 <= f0 - c * a * gg):
                return trial[None], g[None], {"dt": a, "step_sizes": a}
            a *= shrink
        raise StepFailed(f"Armijo backtracking found no sufficient "
                         f"{'increase' if maximize else 'decrease'} down to step {a:.3g}")

    run = iterate(loss, X0, steps, armijo, etas, gtol=gtol, max_norm=max_norm,
                  records=("step_sizes",), record=spec)
    run.records["step_sizes"][:, -1] = recorded[run.ks[-1]]  # the next first trial step
    return finish(loss, run, "gradient_descent", label, before, single=single,
                  extras=run.records, maximize=maximize, record=spec)


def _python_float_loop(loss, x0, etas, sign, gtol, max_norm):
    """GD on plain Python floats with the loss's counted float gradient, for few variables.

    A numpy update on a 2-vector costs about a microsecond per operation; on floats the
    whole step costs less than the numpy gradient call alone. Returns None (the caller then
    runs the array loop) where the loss has no float gradient or it meets a domain error
    (the gradients spent before that stay counted: they were evaluated).
    Stops and messages are the driver's, as in :func:`~flowsim.schemes._driver.iterate`.
    """
    grad = loss.float_grad()
    if grad is None:
        return None
    held, why = stops.outside(x0, max_norm)
    if held.size:
        return x0[None], Status.DIVERGED, why[0]
    xl = x0.tolist()
    out = [xl]
    status, message = Status.REACHED_END, f"ran all {len(etas)} steps"
    try:
        for k, e in enumerate(etas):
            e = sign * e
            g = grad(*xl)
            if gtol is not None and sum(b * b for b in g) <= gtol * gtol:
                status = Status.CONVERGED
                message = converged_message(math.sqrt(sum(b * b for b in g)), gtol, k)
                break
            xl = [a + e * b for a, b in zip(xl, g)]
            out.append(xl)
            probe = sum(xl)
            if probe - probe != 0 or max(map(abs, xl)) > max_norm:
                break
    except (ValueError, OverflowError, ZeroDivisionError, TypeError):
        return None
    xs = np.array(out, dtype=float)
    with np.errstate(all="ignore"):
        norms = row_norms(xs)
    bad = np.flatnonzero(~(norms <= max_norm))
    if bad.size:
        k = bad[0]
        keep, message = escape(norms[k], max_norm, k)
        xs, status = xs[:k + 1 if keep else k], Status.DIVERGED
    return xs, status, message
