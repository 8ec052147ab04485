"""Step-size stability: the spectrum at a point, safe and best steps, sharpness along a path."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import (as_loss, check_bounds, hessian_at, int_between, one_trajectory,
                         positive, seed_value)
from ..results import Report

__all__ = ["StabilityReport", "stability", "LipschitzEstimate", "lipschitz_estimate",
           "Sharpness", "sharpness"]


@dataclass(frozen=True)
class StabilityReport(Report):
    """Step-size theory at a point (exact for a quadratic, local otherwise).

    Attributes
    ----------
    point : ndarray, shape (n,)
    eigenvalues : ndarray, shape (n,)
        Hessian eigenvalues, ascending.
    condition_number : float
        kappa = lambda_max / lambda_min (nan unless the Hessian is positive definite).
    max_stable_step : float
        2 / lambda_max: at a minimum GD with a fixed step converges locally iff eta is below
        it; at a saddle it bounds the steps that keep the stable directions stable (no step
        makes the point attract); nan where no direction is stable (a maximum).
    best_step : float
        2 / (lambda_min + lambda_max), the fixed step with the fastest worst-case rate (nan
        unless the Hessian is positive definite).
    best_rate : float
        (kappa - 1) / (kappa + 1), GD's contraction per step at ``best_step`` (nan likewise).
    flow_rate : float
        lambda_min: the flow contracts like e^{-lambda_min t} (grows, for lambda_min < 0).
    eta : float or None
    flow_factors, gd_factors, prox_factors : ndarray, shape (n,), or None
        For the given eta, each eigendirection's factor per step: e^{-eta lambda_i} (the
        exact flow over time eta), |1 - eta lambda_i| (gradient descent) and
        1 / (1 + eta lambda_i) (proximal point).
    gd_stable : bool or None
        Whether every |1 - eta lambda_i| < 1.
    kind : str
        What the spectrum makes the point: ``"minimum"``, ``"maximum"``, ``"saddle"`` or
        ``"degenerate"`` (:func:`flowsim.kind_of_spectrum`), whether or not it is critical.
    unstable : int
        Directions with lambda_i < 0: the flow and every scheme leave along them, at any step.
    spectrum : str
        What the eigenvalues are: the Hessian's, or for a geometry (``geometry=``) the
        local rates of its preconditioned flow (e.g. eigenvalues of Hess(psi)^-1 H).
    """

    point: np.ndarray
    eigenvalues: np.ndarray
    condition_number: float
    max_stable_step: float
    best_step: float
    best_rate: float
    flow_rate: float
    eta: float | None = None
    flow_factors: np.ndarray | None = None
    gd_factors: np.ndarray | None = None
    prox_factors: np.ndarray | None = None
    gd_stable: bool | None = None
    kind: str = "minimum"
    unstable: int = 0
    spectrum: str = "Hessian eigenvalues"

    _series = ("eigenvalues", "flow_factors", "gd_factors", "prox_factors")

    def summary(self, rows=12):
        """A few lines of text; a factor table longer than ``rows`` is summarized (its
        smallest and largest directions, every unstable one, and a line for the rest)."""
        lam = _listed(self.eigenvalues)
        if self.kind == "minimum":
            lines = [f"{self.spectrum} {lam}, condition number "
                     f"{self.condition_number:.4g}",
                     f"GD stable for eta < 2/lambda_max = {self.max_stable_step:.6g}; best fixed "
                     f"step 2/(lambda_min+lambda_max) = {self.best_step:.6g} with rate "
                     f"{self.best_rate:.6g}; the flow contracts like "
                     f"{_exponential(self.flow_rate)}"]
        elif self.unstable:
            stable = (f"steps below 2/lambda_max = {self.max_stable_step:.6g} keep the other "
                      "directions stable" if np.isfinite(self.max_stable_step) else
                      "no direction is stable")
            lines = [f"{self.spectrum} {lam}: a {self.kind}, not a minimum",
                     f"no step size makes it attract: the flow and every scheme leave along "
                     f"{self.unstable} direction(s), the flow like "
                     f"{_exponential(self.flow_rate)}; {stable}"]
        else:
            limit = (f"GD keeps the other directions stable for eta < 2/lambda_max = "
                     f"{self.max_stable_step:.6g}" if np.isfinite(self.max_stable_step)
                     else "no direction has a positive rate")
            lines = [f"{self.spectrum} {lam}: degenerate (lambda_min = "
                     f"{self.flow_rate:.3g}); the local rates say nothing along its null "
                     "directions", limit]
        if self.eta is not None:
            lines.append(f"per-step factors at x = {_listed(self.point)}, eta = "
                         f"{self.eta:g} (GD {'stable' if self.gd_stable else 'UNSTABLE'}):")
            lines.append(f"  {'lambda':>12s} {'flow e^-eta.l':>14s} {'GD |1-eta.l|':>13s} "
                         f"{'prox 1/(1+eta.l)':>17s}")
            shown = sorted(_rows_shown(self.eigenvalues, self.gd_factors, rows))
            last = -1
            for i in shown + [len(self.eigenvalues)]:
                if i > last + 1:   # the directions left out between two shown ones
                    skipped = slice(last + 1, i)
                    lines.append(f"  ... {i - last - 1} more directions with lambda in "
                                 f"[{self.eigenvalues[last + 1]:.5g}, "
                                 f"{self.eigenvalues[i - 1]:.5g}], GD factors in "
                                 f"[{self.gd_factors[skipped].min():.5g}, "
                                 f"{self.gd_factors[skipped].max():.5g}]")
                if i < len(self.eigenvalues):
                    lines.append(self._factor_row(i))
                last = i
        return "\n".join(lines)

    def _factor_row(self, i):
        lam, g = self.eigenvalues[i], self.gd_factors[i]
        note = "  <- GD unstable" if g > 1 else \
            ("  <- GD oscillates" if 1 - self.eta * lam < 0 else "")
        flow = self.flow_factors[i]
        flow = f"{flow:14.5g}" if np.isfinite(flow) else f"{'> 1e308':>14s}"
        if 1 + self.eta * lam > 0:
            prox = f"{self.prox_factors[i]:17.5g}"
        else:   # 1 + eta lambda <= 0: the proximal objective is unbounded along it
            prox = f"{'no prox step':>17s}"
            note += "; prox objective unbounded"
        return f"  {lam:12.5g} {flow} {g:13.5g} {prox}{note}"


def _listed(values, most=8):
    """A short list of numbers for text: all of them, or the first and last few."""
    values = np.round(np.asarray(values, dtype=float), 6).tolist()
    if len(values) <= most:
        return str(values)
    half = most // 2
    return (f"[{', '.join(map(str, values[:half]))}, ... ({len(values) - most} more) ..., "
            f"{', '.join(map(str, values[-half:]))}]")


def _exponential(rate):
    """e^{-rate t} as text without a double sign: exp(-2 t), exp(0.5 t), exp(0 t)."""
    if not np.isfinite(rate):
        return "an unbounded rate (the Hessian is not finite here)"
    return f"exp(-{rate:.6g} t)" if rate >= 0 else f"exp({-rate:.6g} t)"


def _rows_shown(lam, gd, rows):
    """Indices of a factor table worth printing: all of a short one; of a long one the
    smallest and largest directions and every GD-unstable one."""
    k = len(lam)
    if k <= rows:
        return set(range(k))
    half = max(1, rows // 3)
    return set(range(half)) | set(range(k - half, k)) | set(np.flatnonzero(gd > 1).tolist())


def stability(loss, x, eta=None, *, geometry=None):
    """Step-size stability of gradient descent and proximal point at ``x``.

    Parameters
    ----------
    loss : Loss or str
    x : array_like, shape (n,)
        Usually a minimizer.
    eta : float, optional
        A step to evaluate the per-direction factors for.
    geometry : optional
        A mirror or natural-gradient geometry (the ``potential=`` or ``metric=`` of a mirror
        method, as :func:`flowsim.flows.mirror.geometry_of` makes it): the eigenvalues are
        then the local rates of its preconditioned flow (Hess(psi)^-1 H, G^-1 H, or
        (diag x - x x^T) H on the simplex), which is what mirror descent's, the mirror flow's
        and Bregman proximal point's factors follow.

    Returns
    -------
    StabilityReport

    Notes
    -----
    Near x, GD multiplies the error along eigenvector i by 1 - eta lambda_i per step,
    proximal point by 1/(1 + eta lambda_i), the flow over time eta by e^{-eta lambda_i}.

    Examples
    --------
    >>> r = stability("(w1**2 + 4*w2**2)/2", [0.0, 0.0])
    >>> round(float(r.best_step), 12), round(float(r.best_rate), 12)
    (0.4, 0.6)
    """
    from ..facts import kind_of_spectrum
    loss, x, H = hessian_at(loss, x)
    if geometry is None:
        lam, spectrum = np.linalg.eigvalsh(H), "Hessian eigenvalues"
    else:
        lam, spectrum = np.sort(geometry.local_rates(x, H)), geometry.spectrum
    lo, hi = lam[0], lam[-1]
    kappa = hi / lo if lo > 0 else np.nan
    report = dict(point=x, eigenvalues=lam, condition_number=kappa,
                  max_stable_step=2 / hi if hi > 0 else np.nan,
                  best_step=2 / (lo + hi) if lo > 0 else np.nan,
                  best_rate=(kappa - 1) / (kappa + 1) if lo > 0 else np.nan, flow_rate=lo,
                  kind=kind_of_spectrum(lam).value, unstable=int(np.sum(lam < 0)),
                  spectrum=spectrum)
    if eta is not None:
        eta = positive(eta, "eta")
        gd = np.abs(1 - eta * lam)
        with np.errstate(over="ignore"):  # a growing direction far out: its factor is inf
            flow = np.exp(-eta * lam)
        report.update(eta=eta, flow_factors=flow, gd_factors=gd,
                      prox_factors=1 / (1 + eta * lam), gd_stable=bool(np.all(gd < 1)))
    return StabilityReport(**report)


@dataclass(frozen=True)
class LipschitzEstimate(Report):
    """The gradient's Lipschitz constant on a box: a sampled lower estimate and a proven
    upper bound.

    Attributes
    ----------
    value : float
        max over samples (and the bound's box centres) of the Hessian's spectral norm: a
        lower estimate of the constant.
    step : float
        The majorization-minimization step 1 / upper where the bound is proven (a step that
        is safe on the whole box), else 1 / value.
    at : ndarray, shape (n,)
        The point where the largest sampled norm was seen.
    n_samples : int
    upper : float
        A proven bound: every symmetric H in the interval enclosure of the Hessian over each
        sub-box has |lambda| <= max_i sum_j max |H_ij| (Gershgorin); inf where the enclosure
        fails (a singularity in the box, a jump).
    """

    value: float
    step: float
    at: np.ndarray
    n_samples: int
    upper: float = np.inf

    def summary(self):
        """One line: the two bounds, the step and where the largest norm was seen."""
        proven = f"<= {self.upper:.6g} (proven, interval Hessian)" if np.isfinite(self.upper) \
            else "(no proven upper bound: the Hessian's enclosure fails in the box)"
        return (f"Lipschitz(grad L) >= {self.value:.6g} (largest |H(x)|_2 over "
                f"{self.n_samples} samples, at {np.round(self.at, 6).tolist()}) and {proven}; "
                f"step 1/L = {self.step:.6g}")


#: Sub-boxes the proven bound may split the box into, and the gap it stops at.
BOUND_BOXES = 4096
BOUND_GAP = 0.02


def hessian_norm_bound(loss, B, lower=0.0, max_boxes=BOUND_BOXES, gap=BOUND_GAP):
    """A proven upper bound of max |H(x)|_2 over the box ``B`` (n, 2), and the largest norm
    seen at the sub-boxes' centres: branch and bound, each round halving (along the widest
    side) every box whose Gershgorin bound max_i sum_j max |H_ij| lies more than ``gap``
    above the largest norm seen, until none does or ``max_boxes`` boxes are used.
    ``(upper, seen, at)``; upper is inf where the enclosure fails."""
    from ..interval import LossEnclosure
    from ._box_search import _bisect
    enclosure = LossEnclosure(loss)
    boxes = np.asarray(B, dtype=float)[None]
    seen, at, settled, used = lower, boxes[0].mean(axis=1), 0.0, 1
    while True:
        M, _, bad = enclosure.hessian_magnitudes(boxes)
        bounds = np.where(bad, np.inf, M.sum(axis=2).max(axis=1))
        centres = boxes.mean(axis=2)
        with np.errstate(all="ignore"):
            norms = np.abs(np.linalg.eigvalsh(loss.hess(centres))).max(axis=1)
        norms = np.where(np.isfinite(norms), norms, -np.inf)
        if norms.max() > seen:
            seen, at = float(norms.max()), centres[int(np.argmax(norms))]
        over = bounds > seen * (1 + gap)
        settled = max(settled, float(bounds[~over].max(initial=0.0)))
        if not over.any() or used + int(over.sum()) > max_boxes:
            return max(settled, float(bounds[over].max(initial=0.0))), seen, at
        boxes = _bisect(boxes[over], np.ones(loss.n))
        used += int(over.sum())


def lipschitz_estimate(loss, bounds, n_samples=4096, seed=0):
    """Estimate Lipschitz(grad L) over a box as the largest sampled |H(x)|_2.

    Parameters
    ----------
    loss : Loss or str
    bounds : (low, high) or n pairs
        The box to sample uniformly.
    n_samples : int
        Points sampled (one batched Hessian call).
    seed : int
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    LipschitzEstimate
        ``value``: a lower estimate of the true constant (a maximum over samples);
        ``upper``: a proven bound from the interval Hessian (branch and bound to within 2%
        of the lower one, or 4096 sub-boxes); ``step`` = 1 / upper, the
        majorization-minimization step of gradient descent, safe on the whole box.

    Examples
    --------
    >>> round(lipschitz_estimate("x**2 + 3*y**2", (-1, 1)).value, 12)
    6.0
    """
    loss = as_loss(loss)
    B = check_bounds(bounds, loss.n)
    n_samples = int_between(n_samples, "n_samples", 1, 10_000_000 // max(1, loss.n ** 2))
    seed = seed_value(seed)
    X = B[:, 0] + (B[:, 1] - B[:, 0]) * np.random.default_rng(seed).random((n_samples, loss.n))
    with np.errstate(all="ignore"):
        norms = np.abs(np.linalg.eigvalsh(loss.hess(X))).max(axis=1)
    norms = np.where(np.isfinite(norms), norms, -np.inf)
    i = int(np.argmax(norms))
    value, at = float(norms[i]), X[i]
    try:
        upper, seen, where = hessian_norm_bound(loss, B, lower=max(value, 0.0))
    except (ValueError, TypeError, OverflowError):   # a function the enclosure cannot take
        upper, seen, where = np.inf, value, at
    if seen > value:
        value, at = seen, where
    step = 1 / upper if np.isfinite(upper) and upper > 0 else 1 / value
    return LipschitzEstimate(value, step, at, n_samples, upper)


@dataclass(frozen=True)
class Sharpness(Report):
    """lambda_max(H(x_k)) along a path, next to 2/eta_k.

    Attributes
    ----------
    ts : ndarray, shape (n_points,)
    lambda_max : ndarray, shape (n_points,)
    two_over_eta : ndarray, shape (n_points,)
        2 / eta_k for the step taken from x_k (the last point repeats the last step; nan
        throughout for a flow, which has no step).
    above : ndarray of bool, shape (n_points,)
        Where lambda_max > 2 / eta_k: GD is past the edge of stability there.
    """

    ts: np.ndarray
    lambda_max: np.ndarray
    two_over_eta: np.ndarray
    above: np.ndarray

    _series = ("ts", "lambda_max", "two_over_eta", "above")

    def summary(self):
        """One line: the range of the sharpness and where it crossed 2/eta."""
        crossed = np.flatnonzero(self.above)
        where = (f"above 2/eta at {crossed.size} of {len(self.ts)} points, first at "
                 f"t = {self.ts[crossed[0]]:.6g}" if crossed.size else "never above 2/eta")
        return (f"sharpness lambda_max from {np.nanmin(self.lambda_max):.6g} to "
                f"{np.nanmax(self.lambda_max):.6g}; {where}")


def sharpness(loss, trajectory):
    """The sharpness lambda_max(H(x_k)) at every iterate, against 2/eta (edge of stability).

    Parameters
    ----------
    loss : Loss
    trajectory : Trajectory
        A discrete run: the step eta_k from iterate k is ``extras["step_sizes"]`` where the
        scheme records it, else the registry's inverse of its time per step (``ts[k+1] -
        ts[k]`` for gradient descent, its square for heavy ball and Nesterov). A flow has no
        step: ``two_over_eta`` is nan.

    Returns
    -------
    Sharpness

    Examples
    --------
    >>> from flowsim import gradient_descent
    >>> s = sharpness("x**2 + y**4", gradient_descent("x**2 + y**4", [0.5, 1.0], 0.9, 3))
    >>> float(s.lambda_max[0]), float(s.two_over_eta[0]), bool(s.above[0])
    (12.0, 2.2222222222222223, True)
    """
    loss = as_loss(loss)
    one_trajectory(trajectory, loss)
    with np.errstate(all="ignore"):
        lam = np.linalg.eigvalsh(loss.hess(trajectory.xs))[:, -1]
    two = np.full(len(lam), np.nan)
    if trajectory.dense is None and len(lam) > 1:
        etas = trajectory.extras.get("step_sizes")
        if etas is None:
            from ..methods import REGISTRY
            record = REGISTRY.get(trajectory.method)
            steps = np.diff(trajectory.ts)
            etas = record.eta_of(steps) if record is not None else steps
            etas = np.append(etas, etas[-1])  # the last iterate's step: the last one taken
        two = 2 / np.asarray(etas, dtype=float)
    return Sharpness(trajectory.ts, lam, two, np.nan_to_num(lam - two, nan=-1.0) > 0)
