"""Lyapunov checks: V = L - L* must fall along a flow at the rate -|grad L|^2."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import as_loss, finite, one_trajectory, positive
from ..trajectory import Picklable, row_norms

__all__ = ["LyapunovReport", "lyapunov"]


@dataclass(frozen=True)
class LyapunovReport(Picklable):
    """V = L - L* along a trajectory, with the checks the theory asks for.

    Attributes
    ----------
    l_star : float
    l_star_source : str
        ``"given"``, ``"known minimum"`` (the loss's facts) or ``"lowest value found"``.
    ts, V : ndarray, shape (n_points,)
    monotone : bool
        V never rose (beyond rounding).
    rises : ndarray of int
        Indices k with V[k+1] > V[k]; ``rise_sizes`` holds V[k+1] - V[k].
    rise_sizes : ndarray
    rate_ts, dVdt, predicted : ndarray or None
        For a flow: interior output times, dV/dt measured there on the dense solution
        (central differences of L(x(t))) and the predicted -|grad L(x(t))|^2.
    max_relative_mismatch : float or None
        max |dV/dt - predicted| / max |predicted|.
    descent_violations : ndarray of int or None
        For a discrete run with ``lipschitz`` given: steps breaking the descent lemma
        L(x_{k+1}) <= L(x_k) - eta (1 - eta lambda / 2) |grad L(x_k)|^2.
    energy_rate_mismatch : float or None
        For a heavy-ball flow with ``friction`` given: max |dE/dt + gamma |v|^2| relative to
        max gamma |v|^2, with E = |v|^2/2 + L along the dense solution.
    set_distance : ndarray or None
        Distance to the set of minimizers (``distance`` callable, or the nearest known
        global minimizer); ``set_distance_decreasing`` says whether it never grew.
    set_distance_decreasing : bool or None
    """

    l_star: float
    l_star_source: str
    ts: np.ndarray
    V: np.ndarray
    monotone: bool
    rises: np.ndarray
    rise_sizes: np.ndarray
    rate_ts: np.ndarray | None = None
    dVdt: np.ndarray | None = None
    predicted: np.ndarray | None = None
    max_relative_mismatch: float | None = None
    descent_violations: np.ndarray | None = None
    energy_rate_mismatch: float | None = None
    set_distance: np.ndarray | None = None
    set_distance_decreasing: bool | None = None

    def summary(self):
        """A few lines of text."""
        lines = [f"V = L - L* with L* = {self.l_star:.10g} ({self.l_star_source}); V from "
                 f"{self.V[0]:.6g} to {self.V[-1]:.6g}; "
                 + ("monotone" if self.monotone else
                    f"rose at {len(self.rises)} steps (largest {self.rise_sizes.max():.3g})")]
        if self.max_relative_mismatch is not None:
            lines.append(f"dV/dt against -|grad L|^2: largest relative mismatch "
                         f"{self.max_relative_mismatch:.3g}")
        if self.descent_violations is not None:
            lines.append(f"descent lemma violated at {len(self.descent_violations)} steps")
        if self.energy_rate_mismatch is not None:
            lines.append(f"dE/dt against -gamma |v|^2: relative mismatch "
                         f"{self.energy_rate_mismatch:.3g}")
        if self.set_distance is not None:
            lines.append(f"distance to the minimizers from {self.set_distance[0]:.4g} to "
                         f"{self.set_distance[-1]:.4g} ("
                         f"{'never grew' if self.set_distance_decreasing else 'grew at times'})")
        return "\n".join(lines)


def _rounding(values):
    return 64 * np.finfo(float).eps * (1 + np.abs(values))


def lyapunov(trajectory, loss, l_star=None, *, lipschitz=None, friction=None, distance=None):
    """Check V(x) = L(x) - L* as a Lyapunov function along ``trajectory``.

    Parameters
    ----------
    trajectory : Trajectory
        A flow (with its dense solution) or a discrete run.
    loss : Loss
    l_star : float, optional
        L*; by default the loss's known minimum value, else the lowest value on the path.
    lipschitz : float, optional
        A bound lambda on the Hessian's spectral norm, to check the descent lemma of a
        discrete run.
    friction : float, optional
        gamma of a heavy-ball flow, to check dE/dt = -gamma |v|^2.
    distance : callable, optional
        ``distance(xs)`` -> shape (n_points,): distance to a set of minimizers; by default
        the distance to the nearest known global minimizer when the loss lists several.

    Returns
    -------
    LyapunovReport

    Examples
    --------
    >>> from flowsim import losses, gradient_flow
    >>> L = losses.himmelblau()
    >>> r = lyapunov(gradient_flow(L, [0.0, 0.0], 2.0), L)
    >>> r.monotone and r.max_relative_mismatch < 1e-3
    True
    """
    loss = as_loss(loss)
    one_trajectory(trajectory, loss)
    values = trajectory.values
    facts = loss.facts
    if friction is not None:
        friction = positive(friction, "friction")
    if distance is not None and not callable(distance):
        raise TypeError("distance must be a callable xs -> distances, shape (n_points,), or "
                        "None.")
    if lipschitz is not None:
        lipschitz = positive(lipschitz, "lipschitz")
    if l_star is not None:
        l_star, source = finite(l_star, "l_star"), "given"
    elif facts is not None and facts.min_value is not None:
        l_star, source = float(facts.min_value), "known minimum"
    else:
        l_star, source = float(np.min(values)), "lowest value found"
    V = values - l_star
    dV = np.diff(V)
    rises = np.flatnonzero(dV > _rounding(V[:-1]))
    report = dict(l_star=l_star, l_star_source=source, ts=trajectory.ts, V=V,
                  monotone=not rises.size, rises=rises, rise_sizes=dV[rises])
    if trajectory.dense is not None and len(trajectory.ts) > 2:
        report.update(_flow_rates(trajectory, loss, friction))
    elif lipschitz is not None and len(trajectory.ts) > 1:
        lam = positive(lipschitz, "lipschitz")
        eta = np.diff(trajectory.ts)
        bound = values[:-1] - eta * (1 - eta * lam / 2) * trajectory.grad_norms[:-1] ** 2
        report["descent_violations"] = np.flatnonzero(values[1:] > bound + _rounding(bound))
    if distance is None and facts is not None and len(facts.global_minimizers) > 1:
        mins = facts.global_minimizers

        def distance(xs, _m=mins):
            return np.min(np.linalg.norm(xs[:, None, :] - _m[None], axis=2), axis=1)
    if distance is not None:
        d = np.asarray(distance(trajectory.xs), dtype=float)
        report.update(set_distance=d,
                      set_distance_decreasing=bool(np.all(np.diff(d) <= 1e-12 * (1 + d[:-1]))))
    return LyapunovReport(**report)


def _flow_rates(trajectory, loss, friction):
    """dV/dt by central differences on the dense solution, against -|grad L|^2; for a
    heavy-ball flow, dE/dt against -gamma |v|^2 on the output grid instead."""
    ts = trajectory.ts
    if "energy" in trajectory.extras:
        if friction is None:
            return {}
        gamma = float(friction)
        if not np.isfinite(gamma) or gamma < 0:
            raise ValueError(f"friction must be a finite number >= 0, got {friction!r}.")
        dEdt = np.gradient(trajectory.extras["energy"], ts)
        want = -gamma * row_norms(trajectory.extras["velocities"]) ** 2
        inner = slice(1, -1)  # one-sided differences at the ends are first order only
        mismatch = np.abs(dEdt[inner] - want[inner]).max() / max(np.abs(want).max(), 1e-300)
        return {"energy_rate_mismatch": float(mismatch)}
    h = 1e-5 * (ts[-1] - ts[0])
    t = ts[(ts > ts[0] + 2 * h) & (ts < ts[-1] - 2 * h)]
    if t.size == 0:
        return {}
    _, grads = loss._observe(trajectory.at(t), full=True)
    dVdt = (loss._values(trajectory.at(t + h)) - loss._values(trajectory.at(t - h))) / (2 * h)
    predicted = -row_norms(grads) ** 2
    scale = max(np.abs(predicted).max(), 1e-300)
    return {"rate_ts": t, "dVdt": dVdt, "predicted": predicted,
            "max_relative_mismatch": float(np.abs(dVdt - predicted).max() / scale)}
