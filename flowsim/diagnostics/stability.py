"""Step-size stability: the spectrum at a point, safe and best steps, sharpness along a path."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import as_loss, int_between, one_trajectory, positive, seed_value
from ..trajectory import Picklable
from .critical import check_bounds, hessian_at

__all__ = ["StabilityReport", "stability", "LipschitzEstimate", "lipschitz_estimate",
           "Sharpness", "sharpness"]


@dataclass(frozen=True)
class StabilityReport(Picklable):
    """Step-size theory at a point (exact for a quadratic, local otherwise).

    Attributes
    ----------
    point : ndarray, shape (n,)
    eigenvalues : ndarray, shape (n,)
        Hessian eigenvalues, ascending.
    condition_number : float
        kappa = lambda_max / lambda_min (inf unless the Hessian is positive definite).
    max_stable_step : float
        2 / lambda_max: GD with a fixed step converges locally iff eta is below it.
    best_step : float
        2 / (lambda_min + lambda_max), the fixed step with the fastest worst-case rate.
    best_rate : float
        (kappa - 1) / (kappa + 1), GD's contraction per step at ``best_step``.
    flow_rate : float
        lambda_min: the flow contracts like e^{-lambda_min t}.
    eta : float or None
    gd_factors, prox_factors : ndarray, shape (n,), or None
        |1 - eta lambda_i| and 1 / (1 + eta lambda_i) for the given eta.
    gd_stable : bool or None
        Whether every |1 - eta lambda_i| < 1.
    """

    point: np.ndarray
    eigenvalues: np.ndarray
    condition_number: float
    max_stable_step: float
    best_step: float
    best_rate: float
    flow_rate: float
    eta: float | None = None
    gd_factors: np.ndarray | None = None
    prox_factors: np.ndarray | None = None
    gd_stable: bool | None = None

    def summary(self):
        """A few lines of text."""
        lines = [f"Hessian eigenvalues {np.round(self.eigenvalues, 6).tolist()}, condition "
                 f"number {self.condition_number:.4g}",
                 f"GD stable for eta < 2/lambda_max = {self.max_stable_step:.6g}; best fixed "
                 f"step 2/(lambda_min+lambda_max) = {self.best_step:.6g} with rate "
                 f"{self.best_rate:.6g}; the flow contracts like exp(-{self.flow_rate:.6g} t)"]
        if self.eta is not None:
            lines.append(f"at eta = {self.eta:g}: GD factors "
                         f"{np.round(self.gd_factors, 6).tolist()} ("
                         f"{'stable' if self.gd_stable else 'UNSTABLE'}), proximal point "
                         f"factors {np.round(self.prox_factors, 6).tolist()}")
        return "\n".join(lines)


def stability(loss, x, eta=None):
    """Step-size stability of gradient descent and proximal point at ``x``.

    Parameters
    ----------
    loss : Loss or str
    x : array_like, shape (n,)
        Usually a minimizer.
    eta : float, optional
        A step to evaluate the per-direction factors for.

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
    loss, x, H = hessian_at(loss, x)
    lam = np.linalg.eigvalsh(H)
    lo, hi = lam[0], lam[-1]
    kappa = hi / lo if lo > 0 else np.inf
    report = dict(point=x, eigenvalues=lam, condition_number=kappa,
                  max_stable_step=2 / hi if hi > 0 else np.inf,
                  best_step=2 / (lo + hi) if lo > 0 else np.nan,
                  best_rate=(kappa - 1) / (kappa + 1) if lo > 0 else np.nan, flow_rate=lo)
    if eta is not None:
        eta = positive(eta, "eta")
        gd = np.abs(1 - eta * lam)
        report.update(eta=eta, gd_factors=gd, prox_factors=1 / (1 + eta * lam),
                      gd_stable=bool(np.all(gd < 1)))
    return StabilityReport(**report)


@dataclass(frozen=True)
class LipschitzEstimate(Picklable):
    """An estimate (from samples, not a bound) of the gradient's Lipschitz constant in a box.

    Attributes
    ----------
    value : float
        max over samples of the Hessian's spectral norm.
    step : float
        The majorization-minimization step 1 / value.
    at : ndarray, shape (n,)
        The sample where the maximum was seen.
    n_samples : int
    """

    value: float
    step: float
    at: np.ndarray
    n_samples: int


def lipschitz_estimate(loss, bounds, n_samples=4096, seed=0):
    """Estimate Lipschitz(grad L) over a box as the largest sampled |H(x)|_2.

    It is a lower estimate of the true constant (a maximum over samples); its inverse is the
    step of the majorization-minimization view of gradient descent.
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
    return LipschitzEstimate(float(norms[i]), 1 / float(norms[i]), X[i], n_samples)


@dataclass(frozen=True)
class Sharpness(Picklable):
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


def sharpness(loss, trajectory):
    """The sharpness lambda_max(H(x_k)) at every iterate, against 2/eta (edge of stability).

    Parameters
    ----------
    loss : Loss
    trajectory : Trajectory
        Iterate k sits at ``ts[k]``; the step from it is ``ts[k+1] - ts[k]``.
    """
    loss = as_loss(loss)
    one_trajectory(trajectory, loss)
    with np.errstate(all="ignore"):
        lam = np.linalg.eigvalsh(loss.hess(trajectory.xs))[:, -1]
    steps = np.diff(trajectory.ts)
    two = np.full(len(lam), np.nan)
    if trajectory.dense is None and steps.size:
        two[:-1] = 2 / steps
        two[-1] = two[-2]  # the last iterate's step: the last one taken
    return Sharpness(trajectory.ts, lam, two, np.nan_to_num(lam - two, nan=-1.0) > 0)
