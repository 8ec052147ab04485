"""One driver for every continuous flow: scipy's ODE solvers stepped in a loop we control.

``solve_ivp`` runs the same Python loop over ``OdeSolver.step``; driving it ourselves lets a
flow stop on its own conditions (converged, diverged, a Hessian that is not positive
definite) and keep every accepted step when the right-hand side becomes non-finite or a
solver gives up, instead of losing the partial path to an exception.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.integrate
import scipy.sparse

from .. import stops
from .._numeric import safe_norm
from ..results import Status

__all__ = ["METHODS", "IMPLICIT", "AUTO", "integrate", "Integration", "jacobian_for",
           "default_max_steps", "spectral_radius"]

METHODS = {"RK23": scipy.integrate.RK23, "RK45": scipy.integrate.RK45,
           "DOP853": scipy.integrate.DOP853, "Radau": scipy.integrate.Radau,
           "BDF": scipy.integrate.BDF, "LSODA": scipy.integrate.LSODA}
IMPLICIT = ("Radau", "BDF", "LSODA")
#: ``method="auto"``: start with this explicit method, switch to the implicit one when the
#: problem turns out to be stiff.
AUTO = ("DOP853", "Radau")
MAX_STALLS = 50
FLOAT_MAX = np.finfo(float).max
#: States up to this length are measured as Python floats (math.hypot) at every step.
SHORT_STATE = 16
#: A fitted growth exponent k in d|y|/dt = c |y|^k above this is a finite-time blow-up;
#: at or below it (exponential growth fits k = 1 up to the secants' error) it is not.
FINITE_TIME_EXPONENT = 1.1

#: How far along the negative real axis |h lambda| each explicit method stays stable.
STABILITY_LIMIT = {"RK23": 2.5, "RK45": 3.3, "DOP853": 6.0}
#: The stiffness test runs every this many accepted steps, from STIFF_MIN_STEPS on.
STIFF_CHECK_EVERY = 20
STIFF_MIN_STEPS = 60
#: A stiff explicit run stops only if it would need more steps than this to finish (RK45
#: finishes the 2-D Rosenbrock flow to t = 50 in 17,000 stiff steps: let it); "auto" switches
#: to its implicit method from AUTO_SWITCH_STEPS on.
STIFF_STOP_STEPS = 50_000
AUTO_SWITCH_STEPS = 2_000


def default_max_steps(dim):
    """The step budget of a run in ``dim`` unknowns when none is given.

    100,000 steps for small systems; fewer for large ones, so that the dense output (about
    8 numbers per unknown and step) stays under 2e8 numbers (1.6 GB).
    """
    return stops.default_budget(dim)


def spectral_radius(J):
    """max |lambda| of a Jacobian (dense: all eigenvalues up to 400 unknowns; else 30 steps
    of power iteration, a lower estimate)."""
    if not scipy.sparse.issparse(J) and J.shape[0] <= 400:
        return float(np.max(np.abs(np.linalg.eigvals(J))))
    v = np.random.default_rng(0).standard_normal(J.shape[0])
    rho = 0.0
    for _ in range(30):
        w = J @ v
        norm = np.linalg.norm(w)
        if not norm > 0 or not np.isfinite(norm):
            break
        rho, v = norm / np.linalg.norm(v), w / norm
    return float(rho)


class _Stiffness:
    """Decides whether an explicit solver's steps are held down by stability, not accuracy.

    Stiff means: |h lambda_max| stays near the method's stability limit (at least half of it)
    at three checks in a row, while the fastest mode has many time constants left to run
    (lambda_max (t_end - t) > 10,000): the solution is smooth on the fast scale, yet every
    step must resolve it. This is the test of LSODA's method switching, on the Jacobian. It
    reports only when finishing would take more than ``steps_left`` further steps.
    """

    def __init__(self, method, jacobian, t_end, steps_left=STIFF_STOP_STEPS):
        self.limit = STABILITY_LIMIT.get(method)
        self.steps_left = steps_left
        self.jacobian = jacobian if self.limit is not None else None
        self.t_end = t_end
        self.strikes = 0
        self.every, self.next = STIFF_CHECK_EVERY, STIFF_MIN_STEPS

    def check(self, solver, steps):
        if self.jacobian is None or steps < self.next:
            return None
        h = getattr(solver, "h_abs", None) or getattr(solver, "step_size", None) or 0.0
        left = (self.t_end - solver.t) / max(h, 1e-300)
        if left < self.steps_left:  # it would finish soon anyway: no Jacobian needed
            self.next = steps + self.every
            return None
        rho = spectral_radius(self.jacobian(solver.t, solver.y))
        ratio = h * rho / self.limit
        if ratio >= 0.5 and rho * (self.t_end - solver.t) > 1e4 and np.isfinite(rho):
            self.strikes += 1
        else:
            self.strikes = 0
        # far from the limit the test backs off (the Jacobian of a large batch is costly);
        # near it, it checks every STIFF_CHECK_EVERY steps again
        self.every = STIFF_CHECK_EVERY if ratio >= 0.25 else min(2 * self.every, 320)
        self.next = steps + self.every
        if self.strikes < 3:
            return None
        return (f"the flow is stiff: lambda_max = {rho:.3g} holds the steps to h = {h:.3g} "
                f"(|h lambda| = {h * rho:.3g}, the stability limit), so reaching t_end would "
                f"take about {left:.3g} more steps")


def _growth_law(ts, ys, r, t):
    """Fit d|y|/dt = c |y|^k to the end of a growing path: ``(k, rate, |y|, t)`` at its last
    state.

    The secant rates are taken between states whose norms differ by a factor of about 4 (the
    last state, and the last ones below a quarter and a sixteenth of its norm), so that an
    implicit solver creeping in tiny steps near the blow-up does not drown the fit in
    round-off; paths that grew less than that are fitted on their last four steps.
    """
    norms = np.linalg.norm(np.asarray(ys), axis=1)
    times = np.asarray(ts)
    picks = [len(norms) - 1]
    for _ in range(2):
        below = np.flatnonzero(norms[:picks[-1]] <= norms[picks[-1]] / 4)
        if below.size == 0:
            break
        picks.append(int(below[-1]))
    if len(picks) == 3 and len(set(times[picks])) == 3:
        c, b, a = picks
        r, t = norms[[a, b, c]], times[[a, b, c]]
        mids = np.sqrt(r[1:] * r[:-1])
    else:
        mids = (r[1:] + r[:-1]) / 2
    rates = np.diff(r) / np.diff(t)
    with np.errstate(all="ignore"):
        k = np.log(rates[-1] / rates[-2]) / np.log(mids[-1] / mids[-2])
        rate = rates[-1] * (r[-1] / mids[-1]) ** k if k > 1 else rates[-1]
    return k, rate, r[-1], t[-1]


def _blow_up(ts, ys):
    """A (Status.DIVERGED, message) when the last states grow like a finite-time blow-up.

    With |y| growing like c |y|^k (k > 1), the blow-up comes at about
    t* = t + |y| / ((k - 1) d|y|/dt); k and d|y|/dt are fitted to the last three steps.
    """
    if len(ts) < 4:
        return None
    r = np.array([np.linalg.norm(y) for y in ys[-4:]])
    t = np.asarray(ts[-4:])
    if not (np.all(np.diff(r) > 0) and r[-1] > 10 * max(1.0, r[0]) and np.all(np.diff(t) > 0)):
        first = np.linalg.norm(ys[0])
        if not (r[-1] > 10 * max(1.0, first) and np.all(np.diff(r) > 0)):
            return None
    k, rate, r_end, t_end = _growth_law(ts, ys, r, t)
    if not k > FINITE_TIME_EXPONENT:   # exponential growth (k = 1) or slower: no t*
        return Status.DIVERGED, (f"the path grows without bound: |state| = {r[-1]:.3g} at "
                                 f"t = {t[-1]:.6g}, growing like |state|^{k:.2g} (no "
                                 "blow-up in finite time)")
    with np.errstate(all="ignore"):
        t_star = t_end + r_end / ((k - 1) * rate)
    when = f"; estimated blow-up time t* = {t_star:.6g}" if np.isfinite(t_star) else ""
    return Status.DIVERGED, (f"the path blows up in finite time: |state| = {r[-1]:.3g} at "
                             f"t = {t[-1]:.6g}, growing like |state|^{k:.2g}{when}")


@dataclass(frozen=True)
class Integration:
    """Raw result of :func:`integrate`: states at accepted steps and how it ended."""

    ts: np.ndarray          # (n_steps + 1,)
    ys: np.ndarray          # (n_steps + 1, dim)
    dense: object           # scipy OdeSolution or None
    status: Status
    message: str
    #: why it ended: "end", "stop" (the caller's condition), "budget", "stiff", or a break
    #: down of the solver: "solver" (it gave up), "stall" (no progress), "nonfinite"
    cause: str = "end"


def _banded(S, lower, upper):
    """Pack a sparse matrix into LSODA's banded layout ``packed[upper + i - j, j] = a_ij``."""
    coo = S.tocoo()
    packed = np.zeros((lower + upper + 1, S.shape[1]))
    packed[upper + coo.row - coo.col, coo.col] = coo.data
    return packed


def jacobian_for(method, sparse_jacobian, dense_jacobian, dim, bandwidth, prefer_sparse):
    """The Jacobian in the form ``method`` takes, as solver keyword arguments.

    Parameters
    ----------
    method : str
        Only the implicit methods (Radau, BDF, LSODA) get a Jacobian; others get ``{}``.
    sparse_jacobian, dense_jacobian : callable
        ``(t, y)`` -> ``scipy.sparse`` matrix, and -> ndarray of shape (dim, dim).
    bandwidth : int
        Largest |i - j| of a nonzero entry.
    prefer_sparse : bool
        Whether the Jacobian is large and sparse enough to keep sparse: Radau and BDF then
        take it as a sparse matrix, LSODA in its banded layout if the band is narrow.
    """
    if method not in IMPLICIT:
        return {}
    if prefer_sparse and method in ("Radau", "BDF"):
        return {"jac": sparse_jacobian}
    if prefer_sparse and method == "LSODA" and bandwidth < dim // 4:
        return {"jac": lambda t, y: _banded(sparse_jacobian(t, y), bandwidth, bandwidth),
                "lband": bandwidth, "uband": bandwidth}
    return {"jac": dense_jacobian}


def integrate(fun, y0, t_end, *, method, rtol, atol, t0=0.0, solver_options=None,
              dense_output=True, stop=None, max_steps="default", jacobian=None,
              switch_options=None, max_norm=None):
    """Step a scipy ``OdeSolver`` from ``t0`` to ``t_end``, stopping early when asked.

    Parameters
    ----------
    fun : callable
        ``fun(t, y)`` -> dy/dt, shape (dim,). It is handed to the solver as it is (no
        wrapper on the hot path); a non-finite value makes the solver reject the step or
        fail, and a non-finite accepted state ends the run.
    y0 : ndarray, shape (dim,)
    solver_options : dict, optional
        Extra keyword arguments for the solver class, e.g. from :func:`jacobian_for`.
    stop : callable or None
        ``stop(t, y, solver)`` -> ``None`` to go on, or ``(Status, message)`` to end here.
    max_steps : int, "default" or None
        Step budget; running out ends with ``Status.FAILED`` and a message naming it.
        ``"default"`` is :func:`default_max_steps` of the system's size; ``None`` means no
        budget (only when asked for).
    jacobian : callable, optional
        ``jacobian(t, y)`` -> the Jacobian (dense or sparse). Explicit methods then test for
        stiffness (:class:`_Stiffness`) and end ``failed`` with a message naming implicit
        methods, so a stiff problem does not take millions of steps.
    switch_options : dict, optional
        With ``method="auto"``: the implicit method's options (its Jacobian). The run starts
        with DOP853 and continues from the same state with Radau once it is found stiff.
    max_norm : float, optional
        Stop ``diverged`` once |y| exceeds it, tested with the same dot product that tests
        finiteness (one per step; a flow whose state is its position passes it here instead
        of a ``stop`` bound).

    Returns
    -------
    Integration
    """
    options = dict(solver_options or {})
    ts, ys, interps = [t0], [np.array(y0, dtype=float)], []
    # |y| past `bound` (|y|^2 past `limit` for long states): non-finite, out of max_norm, or
    # a dot that overflowed (a float ** 2 raises past 1.3e154; the largest float keeps an
    # overflowed norm, inf, past it)
    bound = FLOAT_MAX if max_norm is None else min(float(max_norm), FLOAT_MAX)
    limit = FLOAT_MAX if bound >= 1e154 else bound ** 2   # (a square past 1.34e154 raises)
    short = np.size(y0) <= SHORT_STATE
    if max_steps == "default":
        max_steps = default_max_steps(ys[0].size)
    stalls = 0
    status, message, cause = Status.REACHED_END, None, "end"   # (the end's: its steps)
    auto, switched = method == "auto", ""
    if auto:
        method, options = AUTO[0], {}
    stiffness = _Stiffness(method, jacobian, t_end,
                           AUTO_SWITCH_STEPS if auto else STIFF_STOP_STEPS)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cls = METHODS[method]
        solver = cls(fun, t0, ys[0], t_end, rtol=rtol, atol=atol, **options)
        while solver.status == "running":
            if max_steps is not None and len(ts) > max_steps:
                status, cause = Status.FAILED, "budget"
                message = stops.budget_spent(max_steps, ts[-1])
                break
            try:
                failure = solver.step()
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:
                failure = str(err)
            if failure is not None or solver.status == "failed":
                status, cause = Status.FAILED, "solver"
                message = stops.gave_up(method, ts[-1], failure)
                status, message = _blow_up(ts, ys) or (status, message)
                break
            y = solver.y
            # one norm and one comparison: the common step is finite and inside max_norm
            # (hypot of a short state's floats 0.12 us, y.dot(y) 0.3 us, y @ y 0.5 us: the
            # test is a fifth of what an LSODA step costs beyond scipy's own loop)
            rare = not math.hypot(*y.tolist()) <= bound if short else not y.dot(y) <= limit
            if rare and not np.isfinite(y).all():
                status, cause = Status.DIVERGED, "nonfinite"
                message = (f"the state became non-finite after t = {ts[-1]:.6g} (the loss or "
                           "its gradient is undefined or overflows there); kept the path "
                           "up to there")
                break
            if solver.t == ts[-1]:  # LSODA can return a step that makes no progress
                stalls += 1
                if stalls >= MAX_STALLS:
                    status, cause = Status.FAILED, "stall"
                    message = stops.step_underflow(ts[-1])   # (steps of length 0)
                    status, message = _blow_up(ts, ys) or (status, message)
                    break
                continue
            stalls = 0
            ts.append(solver.t)
            ys.append(y)   # a fresh array every step (solve_ivp keeps it the same way)
            if dense_output:
                interps.append(solver.dense_output())
            reason = None
            if rare and max_norm is not None:   # finite: past max_norm, or a dot overflowed
                norm = safe_norm(y)
                if not norm <= max_norm:
                    reason = Status.DIVERGED, stops.diverged(norm, max_norm)
            if reason is None and stop is not None:
                reason = stop(solver.t, y, solver)
            if reason is not None:
                (status, message), cause = reason, "stop"
                blow_up = _blow_up(ts, ys) if status is Status.DIVERGED else None
                if blow_up is not None and "blow-up time" in blow_up[1]:
                    message += "; " + blow_up[1]
                break
            if stiffness.jacobian is None:   # an implicit method: nothing to watch
                continue
            stiff = stiffness.check(solver, len(ts) - 1)
            if stiff is not None and auto:
                method = AUTO[1]
                solver = METHODS[method](fun, solver.t, solver.y, t_end, rtol=rtol,
                                         atol=atol, **dict(switch_options or {}))
                stiffness = _Stiffness(method, None, t_end)
                switched = f" (switched from {AUTO[0]} to {method} at t = {ts[-1]:.6g}: {stiff})"
                continue
            if stiff is not None:
                status, cause = Status.FAILED, "stiff"
                message = (f"{method} stopped at t = {ts[-1]:.6g}: {stiff}; use an implicit "
                           "method: method='LSODA', 'Radau' or 'BDF' (or 'auto')")
                break
    dense = scipy.integrate.OdeSolution(ts, interps) if dense_output and interps else None
    if cause == "end":   # the sentence every path says, with the steps it took
        message = stops.reached_end(t_end, len(ts) - 1)
    message += switched
    return Integration(np.array(ts), np.array(ys), dense, status, message, cause)
