"""Lyapunov checks: V = L - L* must fall along a flow at the rate -|grad L|^2.

Flows are checked in integral form: on each output interval [t_k, t_{k+1}],
V(t_{k+1}) - V(t_k) = -integral |grad L(x(t))|^2 dt, the integral taken by Gauss-Legendre
quadrature on the dense solution, so the mismatch measures the solver's error and not the
check's own (a central difference of L(x(t)) is limited to about 1e-3 at any tolerance).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .._validate import as_loss, finite, one_trajectory, positive
from ..results import Report

__all__ = ["LyapunovReport", "lyapunov"]


@dataclass(frozen=True)
class LyapunovReport(Report):
    """V = L - L* along a trajectory, with the checks the theory asks for.

    Attributes
    ----------
    min_value : float
    min_value_source : str
        ``"given"``, ``"known minimum"`` (the loss's facts) or ``"lowest value found"``.
    ts, V : ndarray, shape (n_points,)
    monotone : bool
        V never rose (beyond rounding).
    rises : ndarray of int
        Indices k with V[k+1] > V[k]; ``rise_sizes`` holds V[k+1] - V[k].
    rise_sizes : ndarray
    rate_ts, dVdt, predicted : ndarray or None
        For a flow: the midpoints of the output intervals, the mean rate of V over each
        interval, (V(t_{k+1}) - V(t_k)) / (t_{k+1} - t_k), and the predicted mean rate,
        -integral |grad L|^2 dt / (t_{k+1} - t_k) by 8-point Gauss-Legendre quadrature on
        the dense solution.
    max_relative_mismatch : float or None
        max |dVdt - predicted| / max |predicted| over the intervals.
    descent_violations : ndarray of int or None
        For a discrete run with ``lipschitz`` given: steps breaking the descent lemma
        L(x_{k+1}) <= L(x_k) - eta (1 - eta lambda / 2) |grad L(x_k)|^2.
    energy_rate_mismatch : float or None
        For a heavy-ball flow with ``friction`` given, where V is the energy
        E - L* = m |v|^2/2 + L - L*: the same interval check of E(t_{k+1}) - E(t_k) against
        -gamma integral |v|^2 dt, relative to the largest interval dissipation.
    nesterov_energy : ndarray or None
        For Nesterov's ODE x'' + (r/t) x' + grad L = 0 with a known minimizer x*: the energy
        2 t^2 (L - L*) / (r - 1) + (r - 1) |x + t x' / (r - 1) - x*|^2 (Su, Boyd and Candes),
        non-increasing on convex losses for r >= 3; ``nesterov_energy_decreasing`` says
        whether it never rose.
    nesterov_energy_decreasing : bool or None
    set_distance : ndarray or None
        Distance to the set of minimizers (``distance`` callable, or the nearest known
        global minimizer); ``set_distance_decreasing`` says whether it never grew.
    set_distance_decreasing : bool or None
    """

    min_value: float
    min_value_source: str
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
    nesterov_energy: np.ndarray | None = None
    nesterov_energy_decreasing: bool | None = None

    _series = ("ts", "V", "set_distance", "nesterov_energy")

    def summary(self):
        """A few lines of text."""
        lines = [f"V = L - L* with L* = {self.min_value:.10g} ({self.min_value_source}); V from "
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
        if self.nesterov_energy is not None:
            lines.append("Nesterov energy " + ("never rose" if self.nesterov_energy_decreasing
                                               else "rose at times"))
        if self.set_distance is not None:
            lines.append(f"distance to the minimizers from {self.set_distance[0]:.4g} to "
                         f"{self.set_distance[-1]:.4g} ("
                         f"{'never grew' if self.set_distance_decreasing else 'grew at times'})")
        return "\n".join(lines)


def _rounding(values):
    return 64 * np.finfo(float).eps * (1 + np.abs(values))


def lyapunov(loss, trajectory, min_value=None, *, lipschitz=None, friction=None, distance=None):
    """Check V(x) = L(x) - L* as a Lyapunov function along ``trajectory``.

    Parameters
    ----------
    loss : Loss
    trajectory : Trajectory
        A flow (with its dense solution) or a discrete run.
    min_value : float, optional
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
    >>> r = lyapunov(L, gradient_flow(L, [0.0, 0.0], 2.0))
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
    if min_value is not None:
        min_value, source = finite(min_value, "min_value"), "given"
    elif facts is not None and facts.min_value is not None:
        min_value, source = float(facts.min_value), "known minimum"
    else:
        min_value, source = float(np.min(values)), "lowest value found"
    energy = trajectory.extras.get("energy")
    V = (values if energy is None else np.asarray(energy)) - min_value
    dV = np.diff(V)
    rises = np.flatnonzero(dV > _rounding(V[:-1]))
    report = dict(min_value=min_value, min_value_source=source, ts=trajectory.ts, V=V,
                  monotone=not rises.size, rises=rises, rise_sizes=dV[rises])
    if trajectory.dense is not None and len(trajectory.ts) > 1:
        report.update(_flow_rates(trajectory, loss, friction, V))
        report.update(_nesterov_energy(trajectory, loss, min_value))
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


#: Gauss-Legendre nodes and weights on [-1, 1] for the interval integrals.
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)


def _interval_integrals(ts, integrand):
    """integral over each [t_k, t_{k+1}] of ``integrand(t)`` (vectorized over t), shape (k,)."""
    half = np.diff(ts) / 2
    mid = (ts[1:] + ts[:-1]) / 2
    t = mid[:, None] + half[:, None] * _NODES[None, :]
    values = integrand(t.ravel()).reshape(t.shape)
    return (values * _WEIGHTS[None, :]).sum(axis=1) * half


def _flow_rates(trajectory, loss, friction, V):
    """Interval checks of V (or of the heavy ball's energy) against its dissipation."""
    ts = trajectory.ts
    dt = np.diff(ts)
    if np.any(dt <= 0):
        return {}
    if "energy" in trajectory.extras:
        if friction is None or not hasattr(trajectory.dense, "dense"):
            return {}
        n = loss.n

        def velocity_squared(t):
            v = np.asarray(trajectory.dense.dense(t))[n:]
            return np.sum(v * v, axis=0)
        lost = friction * _interval_integrals(ts, velocity_squared)
        scale = max(np.abs(lost).max(), 1e-300)
        return {"energy_rate_mismatch": float(np.abs(np.diff(V) + lost).max() / scale)}

    def grad_squared(t):
        _, g = loss._observe(np.asarray(trajectory.dense(t)).T, full=True)
        return np.sum(g * g, axis=-1)
    dissipation = _interval_integrals(ts, grad_squared)
    predicted = -dissipation / dt
    measured = np.diff(V) / dt
    scale = max(np.abs(predicted).max(), 1e-300)
    return {"rate_ts": (ts[1:] + ts[:-1]) / 2, "dVdt": measured, "predicted": predicted,
            "max_relative_mismatch": float(np.abs(measured - predicted).max() / scale)}


def _nesterov_energy(trajectory, loss, min_value):
    """Su-Boyd-Candes energy along a Nesterov ODE path, where a unique minimizer is known."""
    match = re.match(r"Nesterov ODE \(r=([-+0-9.eE]+)", trajectory.label)
    facts = loss.facts
    if trajectory.method != "nesterov_flow" or match is None or facts is None or \
            "velocities" not in trajectory.extras or len(facts.global_minimizers) != 1:
        return {}
    r = float(match.group(1))
    x_star = facts.global_minimizers[0]
    t, x, v = trajectory.ts, trajectory.xs, trajectory.extras["velocities"]
    gap = trajectory.values - min_value
    w = x + t[:, None] * v / (r - 1) - x_star
    energy = 2 * t ** 2 * gap / (r - 1) + (r - 1) * np.sum(w * w, axis=1)
    return {"nesterov_energy": energy,
            "nesterov_energy_decreasing": bool(np.all(np.diff(energy) <= _rounding(energy[:-1])))}
