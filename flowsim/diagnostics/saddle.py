"""Saddle escape: unstable directions, growth rates, and predicted against measured escape."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize

from .._validate import as_loss, positive, positive_int
from ..flows.gradient import gradient_flow
from ..schemes import gradient_descent
from .critical import classify
from ..results import Report

__all__ = ["SaddleEscape", "saddle_escape"]


@dataclass(frozen=True)
class SaddleEscape(Report):
    """How fast the flow and gradient descent leave a saddle.

    Attributes
    ----------
    saddle : ndarray, shape (n,)
    unstable_eigenvalues : ndarray, shape (k,)
        The negative Hessian eigenvalues.
    unstable_directions : ndarray, shape (n, k)
        Their eigenvectors (columns).
    growth_rate : float
        |lambda_min|: the linearized flow y' = -H y grows like e^{|lambda_min| t}.
    delta, radius : float
        Start distance along the most unstable direction, and the ball to leave.
    predicted_time : float
        ln(radius / delta) / |lambda_min|.
    measured_time : float
        When the integrated flow from saddle + delta v first reaches distance radius.
    eta : float or None
    gd_factor : float or None
        |1 - eta lambda_min| = 1 + eta |lambda_min| per step.
    predicted_steps, measured_steps : float, int or None
        ln(radius / delta) / ln(gd_factor), and the first GD step at distance >= radius.
    """

    saddle: np.ndarray
    unstable_eigenvalues: np.ndarray
    unstable_directions: np.ndarray
    growth_rate: float
    delta: float
    radius: float
    predicted_time: float
    measured_time: float
    eta: float | None = None
    gd_factor: float | None = None
    predicted_steps: float | None = None
    measured_steps: int | None = None

    def summary(self):
        """A few lines of text."""
        lines = [f"saddle at {np.round(self.saddle, 6).tolist()}: unstable eigenvalues "
                 f"{np.round(self.unstable_eigenvalues, 6).tolist()}, "
                 f"growth e^({self.growth_rate:.6g} t)",
                 f"flow from distance {self.delta:g} leaves radius {self.radius:g} at "
                 f"t = {self.measured_time:.6g} (predicted {self.predicted_time:.6g})"]
        if self.eta is not None:
            lines.append(f"GD with eta = {self.eta:g} (factor {self.gd_factor:.6g} per step) "
                         f"leaves after {self.measured_steps} steps (predicted "
                         f"{self.predicted_steps:.4g})")
        return "\n".join(lines)


def saddle_escape(loss, x_saddle, delta=1e-6, radius=0.1, eta=None, *, max_steps=1_000_000,
                  rtol=1e-10, atol=1e-13):
    """Predict and measure the escape from a saddle along its most unstable direction.

    Parameters
    ----------
    loss : Loss or str
    x_saddle : array_like, shape (n,)
        A critical point with at least one negative Hessian eigenvalue.
    delta : float
        Initial distance from the saddle, along the eigenvector of lambda_min.
    radius : float
        The ball to leave; the linear prediction holds where the quadratic model does.
    eta : float, optional
        Also predict and measure gradient descent with this step.

    Returns
    -------
    SaddleEscape

    Notes
    -----
    Near the saddle the flow is y' = -H y, so the component along the eigenvector of
    lambda_min < 0 grows like delta e^{|lambda_min| t} and reaches ``radius`` at
    t = ln(radius / delta) / |lambda_min|; GD multiplies it by 1 + eta |lambda_min| per step.

    Examples
    --------
    >>> r = saddle_escape("x**2 - y**2", [0.0, 0.0], delta=1e-6, radius=0.1)
    >>> abs(r.measured_time / r.predicted_time - 1) < 1e-6
    True
    """
    loss = as_loss(loss)
    info = classify(loss, x_saddle)
    max_steps = positive_int(max_steps, "max_steps")
    delta = positive(delta, "delta")
    radius = positive(radius, "radius")
    if delta >= radius:
        raise ValueError(f"delta = {delta:g} must be smaller than radius = {radius:g}.")
    negative = info.eigenvalues < 0
    if not negative.any():
        raise ValueError("x_saddle: the Hessian has no negative eigenvalue there, so there is "
                         "no unstable direction to escape along.")
    lam = info.eigenvalues[negative]
    vecs = info.eigenvectors[:, negative]
    rate = float(-lam[0])
    x0 = info.point + delta * vecs[:, 0]
    predicted = float(np.log(radius / delta) / rate)
    traj = gradient_flow(loss, x0, 4 * predicted, method="DOP853", rtol=rtol, atol=atol)

    def gap(t):
        return np.linalg.norm(traj.at(t) - info.point) - radius

    dist = np.linalg.norm(traj.xs - info.point, axis=1)
    out = np.flatnonzero(dist >= radius)
    if out.size == 0:
        measured = np.inf
    else:
        k = out[0]
        measured = float(scipy.optimize.brentq(gap, traj.ts[k - 1], traj.ts[k], xtol=1e-14))
    result = dict(saddle=info.point, unstable_eigenvalues=lam, unstable_directions=vecs,
                  growth_rate=rate, delta=delta, radius=radius, predicted_time=predicted,
                  measured_time=measured)
    if eta is not None:
        eta = positive(eta, "eta")
        factor = 1 + eta * rate
        predicted_steps = float(np.log(radius / delta) / np.log(factor))
        budget = positive_int(min(max_steps, int(4 * predicted_steps) + 10), "max_steps")
        run = gradient_descent(loss, x0, eta, budget)
        d = np.linalg.norm(run.xs - info.point, axis=1)
        hit = np.flatnonzero(d >= radius)
        result.update(eta=eta, gd_factor=float(factor), predicted_steps=predicted_steps,
                      measured_steps=int(hit[0]) if hit.size else None)
    return SaddleEscape(**result)
