"""Lyapunov checks: the right V for each equation, and the rate at which it must fall.

* gradient flow: V = L - L*, dV/dt = -|grad L|^2;
* heavy-ball ODE m x'' + gamma x' + grad L = 0: V = E - L* with the energy
  E = m|v|^2/2 + L, dV/dt = -gamma |v|^2 (L itself may rise);
* Nesterov's ODE x'' + (r/t) x' + grad L = 0: the same energy with dV/dt = -(r/t)|v|^2, and
  given a minimizer x* the Su-Boyd-Candes energy
  2 t^2 (L - L*)/(r - 1) + (r - 1)|x + t x'/(r - 1) - x*|^2, non-increasing on convex losses;
* other flows (Newton, mirror, Adam, ...): V = L - L*, monotonicity only (the gradient-flow
  identity is not theirs); discrete runs: monotonicity and, given a Lipschitz bound, the
  descent lemma, both up to rounding.

Flows are checked in integral form: on each output interval [t_k, t_{k+1}],
V(t_{k+1}) - V(t_k) = -integral rate dt, the integral taken by Gauss-Legendre quadrature on the
dense solution, so the mismatch measures the solver's error and not the check's own (a central
difference of L(x(t)) is limited to about 1e-3 at any tolerance).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .._validate import as_loss, finite, one_trajectory, positive, start_points
from ..results import Report

__all__ = ["LyapunovReport", "lyapunov"]


@dataclass(frozen=True)
class LyapunovReport(Report):
    """V = L - L* along a trajectory, with the checks the theory asks for.

    Attributes
    ----------
    min_value : float
    min_value_source : str
        ``"given"``, the loss's facts' source, how :func:`flowsim.with_facts` derived it, or
        ``"the lowest value on the path"`` (then V only shows monotonicity).
    V_name : str
        What V is for this equation (see the module docstring).
    rate_name : str or None
        The rate dV/dt the flow check compares with, or None where no identity is checked.
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
    V_name: str
    rate_name: str | None
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
        lines = [f"V = {self.V_name} with L* = {self.min_value:.10g} "
                 f"({self.min_value_source}); V from {self.V[0]:.6g} to {self.V[-1]:.6g}; "
                 + ("non-increasing" if self.monotone else
                    f"rose at {len(self.rises)} steps (largest {self.rise_sizes.max():.3g})")]
        if self.max_relative_mismatch is not None:
            lines.append(f"dV/dt against {self.rate_name}: largest relative mismatch "
                         f"{self.max_relative_mismatch:.3g}")
        elif self.rate_name is None and self.dVdt is None and len(self.ts) > 1:
            lines.append("no rate identity checked for this equation (monotonicity only)")
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


def lyapunov(loss, trajectory, min_value=None, *, lipschitz=None, friction=None, distance=None,
             minimizer=None):
    """Check V(x) = L(x) - L* as a Lyapunov function along ``trajectory``.

    Parameters
    ----------
    loss : Loss
    trajectory : Trajectory
        A flow (with its dense solution) or a discrete run.
    min_value : float, optional
        L*; by default the loss's known minimum value, else the lowest minimum that
        :func:`flowsim.with_facts` finds in a box around the path, else the lowest value on
        the path (said in ``min_value_source``).
    lipschitz : float, optional
        A bound lambda on the Hessian's spectral norm, to check the descent lemma of a
        discrete run.
    friction : float, optional
        gamma of a heavy-ball flow (read from the trajectory's label by default), to check
        dE/dt = -gamma |v|^2.
    distance : callable, optional
        ``distance(xs)`` -> shape (n_points,): distance to a set of minimizers; by default
        the distance to the nearest known global minimizer when the loss lists several.
    minimizer : array_like, shape (n,), optional
        x* for the Su-Boyd-Candes energy of Nesterov's ODE (by default the loss's unique
        known global minimizer).

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
    if minimizer is not None:
        minimizer = start_points(minimizer, loss.n, batch=False, name="minimizer")
    min_value, source = _min_value(loss, trajectory, min_value)
    equation = _equation(trajectory, friction)
    V = values - min_value
    if equation is not None and equation[0] != "gradient":
        V = _energy(trajectory, loss, equation) - min_value
    dV = np.diff(V)
    rises = np.flatnonzero(dV > _rounding(V[:-1]))
    names = {None: ("L - L*", None), "gradient": ("L - L*", "-|grad L|^2"),
             "heavy_ball": ("E - L* (E = m|v|^2/2 + L, the energy)", "-gamma |v|^2"),
             "nesterov": ("E - L* (E = |v|^2/2 + L, the energy)", "-(r/t) |v|^2")}
    V_name, rate_name = names[equation[0] if equation else None]
    report = dict(min_value=min_value, min_value_source=source, V_name=V_name,
                  rate_name=rate_name, ts=trajectory.ts, V=V, monotone=not rises.size,
                  rises=rises, rise_sizes=dV[rises])
    if trajectory.dense is not None and len(trajectory.ts) > 1 and equation is not None:
        report.update(_flow_rates(trajectory, loss, equation, V))
        if equation[0] == "nesterov":
            report.update(_nesterov_energy(trajectory, loss, min_value, equation[1],
                                           minimizer))
    elif lipschitz is not None and len(trajectory.ts) > 1:
        lam = positive(lipschitz, "lipschitz")
        eta = np.diff(trajectory.ts)
        drop = eta * (1 - eta * lam / 2) * trajectory.grad_norms[:-1] ** 2
        bound = values[:-1] - drop
        slack = 64 * np.finfo(float).eps * (np.abs(values[:-1]) + np.abs(values[1:]) +
                                            np.abs(drop) + 1e-300)
        report["descent_violations"] = np.flatnonzero(values[1:] > bound + slack)
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


def _min_value(loss, trajectory, min_value):
    """L* and where it came from (see :func:`lyapunov`)."""
    if min_value is not None:
        return finite(min_value, "min_value"), "given"
    from .facts_on_demand import min_value_along
    star, source = min_value_along(loss, trajectory.xs, trajectory.values)
    if source == "the lowest value seen":
        source = "the lowest value on the path (no L* known: V shows monotonicity only)"
    return star, source


_LABELS = {"heavy_ball_flow": re.compile(r"m=([-+0-9.eE]+), gamma=([-+0-9.eE]+)"),
           "nesterov_flow": re.compile(r"Nesterov ODE \(r=([-+0-9.eE]+)")}


def _equation(trajectory, friction):
    """``(kind, parameters)`` of the equation a flow solved, or None (a scheme, or a flow
    with no rate identity here)."""
    method = trajectory.method
    if method == "gradient_flow" and "ascent" not in trajectory.label:
        return "gradient", None
    match = _LABELS.get(method, re.compile("$^")).search(trajectory.label)
    if method == "heavy_ball_flow" and match is not None:
        mass, gamma = float(match.group(1)), float(match.group(2))
        return "heavy_ball", (mass, friction if friction is not None else gamma)
    if method == "nesterov_flow" and match is not None and "velocities" in trajectory.extras:
        return "nesterov", float(match.group(1))
    return None


def _energy(trajectory, loss, equation):
    """E = m|v|^2/2 + L along a momentum flow's outputs."""
    v = np.asarray(trajectory.extras["velocities"])
    mass = equation[1][0] if equation[0] == "heavy_ball" else 1.0
    return mass * np.sum(v * v, axis=-1) / 2 + trajectory.values


def _flow_rates(trajectory, loss, equation, V):
    """Interval checks of V against the equation's dissipation rate."""
    ts = trajectory.ts
    dt = np.diff(ts)
    if np.any(dt <= 0):
        return {}
    kind, parameters = equation
    n = loss.n
    if kind == "gradient":
        def dissipation_rate(t):
            _, g = loss._observe(np.asarray(trajectory.dense(t)).T, full=True)
            return np.sum(g * g, axis=-1)
    else:
        full = getattr(trajectory.dense, "dense", None)
        if full is None:
            return {}

        def dissipation_rate(t):
            v = np.asarray(full(t))[n:]
            friction = parameters[1] if kind == "heavy_ball" else parameters / t
            return friction * np.sum(v * v, axis=0)
    predicted = -_interval_integrals(ts, dissipation_rate) / dt
    measured = np.diff(V) / dt
    scale = max(np.abs(predicted).max(), 1e-300)
    mismatch = float(np.abs(measured - predicted).max() / scale)
    out = {"rate_ts": (ts[1:] + ts[:-1]) / 2, "dVdt": measured, "predicted": predicted,
           "max_relative_mismatch": mismatch}
    if kind == "heavy_ball":
        out["energy_rate_mismatch"] = mismatch
    return out


def _nesterov_energy(trajectory, loss, min_value, r, minimizer):
    """Su-Boyd-Candes energy along a Nesterov ODE path, given or knowing one minimizer."""
    facts = loss.facts
    if minimizer is None:
        if facts is None or len(facts.global_minimizers) != 1:
            return {}
        minimizer = facts.global_minimizers[0]
    t, x, v = trajectory.ts, trajectory.xs, trajectory.extras["velocities"]
    gap = trajectory.values - min_value
    w = x + t[:, None] * v / (r - 1) - minimizer
    energy = 2 * t ** 2 * gap / (r - 1) + (r - 1) * np.sum(w * w, axis=1)
    return {"nesterov_energy": energy,
            "nesterov_energy_decreasing": bool(np.all(np.diff(energy) <= _rounding(energy[:-1])))}
