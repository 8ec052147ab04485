"""Empirical order of convergence of a scheme to the flow it discretizes.

Halving the step h of a scheme of order p divides its global error, the largest distance
max_k |x_k - x(t_k)| over a fixed time span, by 2^p. GD, proximal point and SGD-free schemes
step the gradient flow with h = eta; heavy ball and Nesterov step their own second-order
ODEs with h = sqrt(eta) (heavy ball at a fixed friction gamma, so its momentum
beta = 1 - gamma h follows h). Levels whose error sits at the rounding floor say nothing about
the order and are left out of the fit, and the report says which.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._ode import METHODS
from ._validate import (as_loss, choice, int_between, positive, real_array, start_points,
                        step_count)
from .compare import _reference_flow
from .schemes import SCHEMES
from .trajectory import Picklable

__all__ = ["ConvergenceOrder", "convergence_order", "MAX_LADDER_STEPS"]

#: Most steps :func:`convergence_order` runs over its whole ladder of step sizes.
MAX_LADDER_STEPS = 10_000_000
#: Schemes with a reference ODE, and how the ODE's step h relates to eta.
_STEP_OF_ETA = {"gd": "eta", "prox": "eta", "heun": "eta", "heavy_ball": "sqrt",
                "nesterov": "sqrt"}


@dataclass(frozen=True)
class ConvergenceOrder(Picklable):
    """Empirical order of convergence of a scheme to its ODE over [0, T].

    Attributes
    ----------
    scheme : str
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

    def summary(self):
        """One line: the order, the levels used and any warning."""
        dropped = int((~self.used).sum())
        text = (f"{self.scheme}: order {self.order:.3f} in h from {int(self.used.sum())} "
                f"levels" + (f" ({dropped} at the rounding floor {self.floor:.2g} dropped)"
                             if dropped else ""))
        return text + (f"; warning: {self.warning}" if self.warning else "")


def convergence_order(loss, x0, scheme="gd", t_end=1.0, etas=None, *, levels=6,
                      friction=1.0, flow_method="DOP853", rtol=1e-13, atol=1e-15):
    """Empirical order of a scheme against the ODE it discretizes, from the global error.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,)
    scheme : {"gd", "prox", "heun", "heavy_ball", "nesterov"}
        GD, proximal point and Heun against the gradient flow; heavy ball against
        x'' + gamma x' + grad L = 0 and Nesterov (r = 3) against x'' + (3/t) x' + grad L = 0,
        both with ODE step h = sqrt(eta).
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

    Returns
    -------
    ConvergenceOrder
        About 1 for gd, prox, heavy_ball and nesterov, about 2 for heun.

    Notes
    -----
    .. math:: e(h) = \\max_j |x^{(h)}(t_j) - x(t_j)| \\approx C h^p, \\qquad
              p = \\frac{d \\log e}{d \\log h}

    Examples
    --------
    >>> round(convergence_order("x**2/2 + y**4/4", [1.0, 1.0], "gd").order, 1)
    1.0
    """
    loss = as_loss(loss)
    x0 = start_points(x0, loss.n, batch=False)
    t_end = positive(t_end, "t_end")
    if scheme not in _STEP_OF_ETA:
        raise ValueError(f"scheme must be one of {', '.join(map(repr, _STEP_OF_ETA))} (a "
                         f"scheme with a reference ODE), got {scheme!r}.")
    friction = positive(friction, "friction")
    choice(flow_method, tuple(METHODS) + ("auto",), "flow_method")
    positive(rtol, "rtol")
    positive(atol, "atol")
    root = _STEP_OF_ETA[scheme] == "sqrt"
    if etas is None:
        levels = int_between(levels, "levels", 3, 16)  # a slope needs three points to mean
        with np.errstate(all="ignore"):
            H = loss.hess(x0)
        if not np.all(np.isfinite(H)):
            raise ValueError("x0: the Hessian is not finite at the start; start inside the "
                             "loss's domain.")
        lam = max(np.abs(np.linalg.eigvalsh(H)).max(), 1e-12)
        h0 = min(t_end / 8, (0.2 / math.sqrt(lam)) if root else 0.2 / lam)
        if scheme == "heavy_ball":
            h0 = min(h0, 0.5 / friction)  # momentum 1 - gamma h must stay positive
        counts = math.ceil(t_end / h0) * 2 ** np.arange(levels)
    else:
        etas = real_array(etas, "etas")
        if etas.ndim != 1 or etas.size < 3 or not np.all(np.isfinite(etas)) or \
                np.any(etas <= 0):
            raise ValueError("etas must hold at least three finite positive step sizes.")
        hs = np.sqrt(etas) if root else etas
        counts = np.rint(t_end / hs).astype(int)
        if np.any(np.abs(counts * hs - t_end) > 1e-9 * t_end) or np.any(counts < 1):
            raise ValueError("each step must divide t_end into a whole number of steps.")
    counts = np.sort(counts)
    step_count(int(counts.max()), "the finest level's steps", loss.n)
    if counts.sum() > MAX_LADDER_STEPS:
        raise ValueError(f"the ladder of step sizes needs {int(counts.sum()):,} steps in "
                         f"all (more than {MAX_LADDER_STEPS:,}); give fewer levels, larger "
                         "etas or a shorter t_end.")
    grid = np.linspace(0.0, t_end, counts[0] + 1)
    # the scheme's own ODE, built where compare builds it; at the coarsest step h_0 the
    # momentum 1 - gamma h_0 gives back the friction gamma = (1 - beta) / h_0
    _, reference = _reference_flow(scheme, loss, x0, t_end, int(counts[0]), flow_method,
                                   rtol, atol, {"momentum": 1 - friction * t_end / counts[0]})
    if reference.ts[-1] < t_end * (1 - 1e-12):
        raise ValueError(f"t_end: the reference ODE ended at t = {reference.ts[-1]:.6g} "
                         f"({reference.status.value}: {reference.message}); measure the order "
                         "over a shorter t_end.")
    x_ref = reference.at(grid)
    hs = t_end / counts
    errors = []
    for n_steps, h in zip(counts, hs):
        eta = h * h if root else h
        options = {"momentum": 1 - friction * h} if scheme == "heavy_ball" else {}
        traj = SCHEMES[scheme](loss, x0, eta, int(n_steps), **options)
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
    else:
        warning = ("fewer than two levels lie above the rounding floor (or the scheme "
                   "diverged); use larger steps or a longer t_end")
    return ConvergenceOrder(scheme, order, hs ** 2 if root else hs, hs, errors, used,
                            float(floor), t_end, warning)

