"""Empirical order of convergence of a scheme to the flow it discretizes.

Halving the step h of a scheme of order p divides its global error, the largest distance
max_k |x_k - x(t_k)| over a fixed time span, by 2^p. Which ODE a scheme follows and its ODE
step h (eta, or sqrt(eta) for heavy ball and Nesterov) come from :mod:`flowsim.methods`;
the heavy ball is held at a fixed friction gamma, so its momentum beta = 1 - gamma h
follows h. Levels whose error sits at the rounding floor say nothing about
the order and are left out of the fit, and the report says which.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import methods
from ._validate import (as_loss, choice, int_between, mapping, positive, real_array,
                        start_points, step_count)
from .compare import reference_flow
from .flows._solver import METHODS as SOLVERS
from .results import Report, Status

__all__ = ["ConvergenceOrder", "convergence_order", "MAX_LADDER_STEPS"]

#: Most steps :func:`convergence_order` runs over its whole ladder of step sizes.
MAX_LADDER_STEPS = 10_000_000


@dataclass(frozen=True)
class ConvergenceOrder(Report):
    """Empirical order of convergence of a scheme to its ODE over [0, T].

    Attributes
    ----------
    scheme : str
        The scheme's registry name.
    order : float
        Slope of log(global error) against log(h), least squares over the levels kept.
    etas : ndarray, shape (k,)
        The step sizes of the ladder (all levels).
    steps : ndarray, shape (k,)
        The ODE time per step h: eta, or sqrt(eta) for heavy ball and Nesterov.
    errors : ndarray, shape (k,)
        Global errors max_j |x^(h)(t_j) - x(t_j)| on the coarsest level's grid t_j.
    used : ndarray of bool, shape (k,)
        Levels in the fit: the others sit at the rounding floor (or diverged).
    floor : float
        The rounding floor below which errors are not used.
    t_end : float
    warning : str or None
        Why the fit should not be trusted (fewer than three levels left, or local slopes
        that disagree by more than 0.2), else None.
    """

    scheme: str
    order: float
    etas: np.ndarray
    steps: np.ndarray
    errors: np.ndarray
    used: np.ndarray
    floor: float
    t_end: float
    warning: str | None = None

    _series = ("etas", "steps", "errors", "used")

    def summary(self):
        """One line: the order, the levels used and any warning."""
        dropped = int((~self.used).sum())
        text = (f"{self.scheme}: order {self.order:.3f} in h from {int(self.used.sum())} "
                f"levels" + (f" ({dropped} at the rounding floor {self.floor:.2g} dropped)"
                             if dropped else ""))
        return text + (f"; warning: {self.warning}" if self.warning else "")


def _ladder_fits(steps):
    """Refuse a ladder whose levels (steps, as floats: t_end / h may be far past any int)
    need more than MAX_LADDER_STEPS steps in all, before any count is made an int."""
    total = float(np.sum(np.ceil(steps)))
    if not total <= MAX_LADDER_STEPS:
        raise ValueError(f"the ladder of step sizes needs {total:.3g} steps in all (more than "
                         f"{MAX_LADDER_STEPS:,}); give fewer levels, larger etas or a shorter "
                         "t_end.")


def convergence_order(loss, x0, scheme="gd", t_end=1.0, etas=None, *, levels=6,
                      friction=1.0, flow_method="DOP853", rtol=1e-13, atol=1e-15,
                      options=None):
    r"""Empirical order of a scheme against the ODE it discretizes, from the global error.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,)
    scheme : str
        A registered scheme with a flow (:mod:`flowsim.methods`, registry or short name):
        GD, proximal point, Heun and Newton against their first-order flows; heavy ball
        against x'' + gamma x' + grad L = 0 and Nesterov (r = 3) against
        x'' + (3/t) x' + grad L = 0, both with ODE step h = sqrt(eta).
    t_end : float
        The time span T = N h.
    etas : array_like, optional
        Step sizes (at least three), each giving a whole number of steps over T. By default
        ``levels`` halvings of h from h_0 <= min(T/8, 0.2/lambda_max(H(x0))) (for the
        momentum schemes, of sqrt(eta)).
    levels : int
        Number of levels of the default ladder, 3 to 16.
    friction : float
        gamma of the heavy-ball ODE (momentum beta = 1 - gamma sqrt(eta) per level).
    flow_method, rtol, atol
        Solver and tolerances of the reference ODE.
    options : dict, optional
        The scheme's own keyword arguments, as for :func:`flowsim.compare` (``potential=``
        of mirror descent, ``metric=`` of natural gradient, ...); its reference ODE is built
        with them. Options the ladder sets itself (the heavy ball's momentum) are refused.

    Returns
    -------
    ConvergenceOrder
        Near the record's ``order``: about 1 for gd, pp, newton, hb and nag, 2 for heun.
        A level at which the scheme did not run to the end (failed, diverged) is left out,
        and ``warning`` says which and why.

    Notes
    -----
    .. math:: e(h) = \max_j |x^{(h)}(t_j) - x(t_j)| \approx C h^p, \qquad
              p = \frac{d \log e}{d \log h}

    Examples
    --------
    >>> round(convergence_order("x**2/2 + y**4/4", [1.0, 1.0], "gd").order, 1)
    1.0
    """
    loss = as_loss(loss)
    x0 = start_points(x0, loss.n, batch=False)
    t_end = positive(t_end, "t_end")
    record = methods.get(scheme, "scheme")
    record.reference_flow({}, 1.0)  # refuses a scheme with no flow
    if record.order is None:
        raise ValueError(f"scheme: {record.name} has no deterministic order (it is "
                         "stochastic); choose a deterministic scheme.")
    friction = positive(friction, "friction")
    options = mapping(options, "options")
    fixed = set(record.fixed_ode(1.0, friction)) if record.fixed_ode is not None else set()
    if fixed & set(options):
        raise ValueError(f"options: {sorted(fixed & set(options))[0]!r} of {record.name} is "
                         "set at each level by the ladder (from friction=); remove it.")
    choice(flow_method, tuple(SOLVERS) + ("auto",), "flow_method")
    positive(rtol, "rtol")
    positive(atol, "atol")
    root = record.step_time == "sqrt(eta)"
    if etas is None:
        levels = int_between(levels, "levels", 3, 16)  # a slope needs three points to mean
        with np.errstate(all="ignore"):
            H = loss.hess(x0)
        if not np.all(np.isfinite(H)):
            raise ValueError("x0: the Hessian is not finite at the start; start inside the "
                             "loss's domain.")
        lam = max(np.abs(np.linalg.eigvalsh(H)).max(), 1e-12)
        h0 = min(t_end / 8, (0.2 / math.sqrt(lam)) if root else 0.2 / lam)
        if record.fixed_ode is not None:
            h0 = min(h0, 0.5 / friction)  # momentum 1 - gamma h must stay positive
        if record.max_eta is not None:
            h0 = min(h0, record.max_eta)
        _ladder_fits(t_end / h0 * 2.0 ** np.arange(levels))
        counts = math.ceil(t_end / h0) * 2 ** np.arange(levels)
    else:
        etas = real_array(etas, "etas")
        if etas.ndim != 1 or etas.size < 3 or not np.all(np.isfinite(etas)) or \
                np.any(etas <= 0):
            raise ValueError("etas must hold at least three finite positive step sizes.")
        hs = np.sqrt(etas) if root else etas
        _ladder_fits(t_end / hs)
        counts = np.rint(t_end / hs).astype(int)
        if np.any(np.abs(counts * hs - t_end) > 1e-9 * t_end) or np.any(counts < 1):
            raise ValueError("each step must divide t_end into a whole number of steps.")
    counts = np.sort(counts)
    step_count(int(counts.max()), "the finest level's steps", loss.n)
    grid = np.linspace(0.0, t_end, counts[0] + 1)
    # the scheme's own ODE, built where compare builds it; a scheme that holds its ODE
    # fixed (the heavy ball: momentum 1 - gamma h gives back the friction gamma at every h)
    def options_at(h):
        return {**options, **(record.fixed_ode(h, friction) if record.fixed_ode is not None
                              else {})}

    h0 = t_end / counts[0]
    _, _, reference = reference_flow(record, loss, x0, t_end, h0, options_at(h0), flow_method,
                                     rtol, atol)
    if reference.ts[-1] < t_end * (1 - 1e-12):
        raise ValueError(f"t_end: the reference ODE ended at t = {reference.ts[-1]:.6g} "
                         f"({reference.status.value}: {reference.message}); measure the order "
                         "over a shorter t_end.")
    x_ref = reference.at(grid)
    hs = t_end / counts
    errors, broken = [], []
    for n_steps, h in zip(counts, hs):
        traj = record.function(loss, x0, record.eta_of(h), int(n_steps), **options_at(h))
        if traj.status not in (Status.REACHED_END, Status.CONVERGED):
            broken.append(f"{traj.status.value} at eta = {record.eta_of(h):.3g}: "
                          f"{traj.message}")
            errors.append(np.nan)
            continue
        stride = int(n_steps // counts[0])
        xs = traj.xs[::stride]
        errors.append(np.max(np.linalg.norm(xs - x_ref[:len(xs)], axis=1))
                      if len(xs) == len(grid) else np.inf)
    errors = np.array(errors)
    scale = 1.0 + float(np.max(np.abs(x_ref)))
    floor = scale * (100 * np.finfo(float).eps * math.sqrt(counts[-1]) + 10 * rtol)
    used = np.isfinite(errors) & (errors > 10 * floor)
    order, warning = np.nan, None
    if used.sum() >= 2:
        order = float(np.polyfit(np.log(hs[used]), np.log(errors[used]), 1)[0])
        local = np.diff(np.log(errors[used])) / np.diff(np.log(hs[used]))
        if used.sum() < 3:
            warning = "only two levels lie above the rounding floor"
        elif np.ptp(local) > 0.2:
            warning = (f"the local slopes range from {local.min():.3g} to {local.max():.3g}: "
                       "the steps may not yet be in the asymptotic regime")
    elif not broken:
        warning = ("fewer than two levels lie above the rounding floor; use larger steps or "
                   "a longer t_end")
    if broken:
        warning = (f"the scheme did not run to the end at {len(broken)} level(s), left out "
                   f"({broken[0]})" + (f"; {warning}" if warning else ""))
    return ConvergenceOrder(record.name, order, record.eta_of(hs), hs, errors, used,
                            float(floor), t_end, warning)

