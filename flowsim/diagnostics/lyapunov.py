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
V(t_{k+1}) - V(t_k) = -integral rate dt, the integral carried along the exact solution from the
run's own state at t_k (an extra state, integrated at rtol 1e-12), so the mismatch measures the
error the run made over that interval, whatever its solver: it follows the run's tolerance
(a central difference of L(x(t)) is limited to about 1e-3 at any tolerance, and quadrature on
the dense output follows the interpolant's accuracy, far below the steps' for LSODA and BDF).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .._validate import as_loss, finite, one_trajectory, positive, start_points
from ..flows.batch import second_order_rates
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
        -D_k / (t_{k+1} - t_k), with D_k the integral of |grad L|^2 along the exact
        solution from the run's state at t_k (see the module docstring).
    max_relative_mismatch : float or None
        The largest balance error of one interval, |V(t_{k+1}) - V(t_k) + D_k| with D_k the
        predicted dissipation over it, relative to the total dissipation sum_k D_k: of the
        order of the run's own relative error, whatever its solver.
    descent_violations : ndarray of int or None
        For a discrete run with ``lipschitz`` given: steps breaking the descent lemma
        L(x_{k+1}) <= L(x_k) - eta (1 - eta lambda / 2) |grad L(x_k)|^2.
    energy_rate_mismatch : float or None
        For a heavy-ball flow with ``friction`` given, where V is the energy
        E - L* = m |v|^2/2 + L - L*: the same interval check of E(t_{k+1}) - E(t_k) against
        -gamma integral |v|^2 dt, relative to the total dissipation.
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
    dissipated = _dissipated(trajectory, loss, *equation)
    if dissipated is None:
        return {}
    predicted = -dissipated / dt
    measured = np.diff(V) / dt
    # each interval's balance error against the whole dissipation: a rate error over a tiny
    # step (an implicit solver's first order-1 steps) is not a large error of the solution
    total = max(float(np.abs(dissipated).sum()), 1e-300)
    mismatch = float(np.abs(np.diff(V) + dissipated).max() / total)
    out = {"rate_ts": (ts[1:] + ts[:-1]) / 2, "dVdt": measured, "predicted": predicted,
           "max_relative_mismatch": mismatch}
    if equation[0] == "heavy_ball":
        out["energy_rate_mismatch"] = mismatch
    return out


#: Solvers whose runs the check repeats with Radau (a stiff problem); DOP853 otherwise.
_STIFF_SOLVERS = ("LSODA", "BDF", "Radau", "Rosenbrock")
#: Tolerance of the check's own integration, far below any run it checks.
CHECK_RTOL = 1e-12


def _dissipated(trajectory, loss, kind, parameters):
    """Per output interval [t_k, t_{k+1}], the dissipation the equation predicts: the
    integral of |grad L|^2 (gradient flow), gamma |v|^2 (heavy ball) or (r/t) |v|^2
    (Nesterov) along the exact solution from the run's own state at t_k, shape (k,).

    Every interval is integrated at once, the dissipated amount s carried as one more state
    (s' = rate, s(t_k) = 0) in rescaled time tau in [0, 1], at rtol CHECK_RTOL, so the
    mismatch with V's change measures the run's own error over each interval (and not the
    accuracy of its dense output, which is far lower than its steps' for LSODA and BDF).
    None when the run has no velocities to start from or the integration fails.
    """
    ts = trajectory.ts
    t0, dt = ts[:-1], np.diff(ts)
    start = np.asarray(trajectory.xs[:-1], dtype=float)
    if kind != "gradient":
        velocities = trajectory.extras.get("velocities")
        if velocities is None:
            return None
        start = np.hstack([start, np.asarray(velocities, dtype=float)[:-1]])
    width = start.shape[1]
    stiff = any(name in trajectory.label for name in _STIFF_SOLVERS)
    # intervals in groups, so that a stiff group's Jacobian pattern stays small
    group = max(1, min(4096, 2_000_000 // (width + 1) ** 2)) if stiff else 4096
    parts = [_group_dissipation(loss, kind, parameters, start[i:i + group],
                                t0[i:i + group], dt[i:i + group], stiff)
             for i in range(0, len(dt), group)]
    return None if any(p is None for p in parts) else np.concatenate(parts)


def _group_dissipation(loss, kind, parameters, start, t0, dt, stiff):
    """:func:`_dissipated` for k intervals starting at ``start`` (k, width), one solve."""
    import scipy.integrate
    import scipy.sparse
    n = loss.n
    k, width = start.shape
    y0 = np.hstack([start, np.zeros((k, 1))]).ravel()

    def rhs(tau, y):
        Y = y.reshape(k, width + 1)
        X = Y[:, :n]
        with np.errstate(all="ignore"), loss.uncounted():
            g = loss.grad(X)
        if kind == "gradient":
            out = np.hstack([-g, np.sum(g * g, axis=1, keepdims=True)])
        else:
            v = Y[:, n:width]
            if kind == "heavy_ball":
                mass, friction = parameters[0], np.full(k, parameters[1])
            else:   # Nesterov: r / t, the start t = 0 has v = 0 (the product is 0)
                mass, friction = 1.0, parameters / np.maximum(t0 + tau * dt, 1e-300)
            out = np.hstack([*second_order_rates(None, v, g, friction[:, None], mass),
                             (friction * np.sum(v * v, axis=1))[:, None]])
        return (dt[:, None] * out).ravel()

    options = {}
    method = "DOP853"
    if stiff:
        method = "Radau"
        options["jac_sparsity"] = scipy.sparse.block_diag(
            [np.ones((width + 1, width + 1))] * k, format="csc")
    atol = CHECK_RTOL * max(1.0, float(np.abs(y0).max()))
    sol = scipy.integrate.solve_ivp(rhs, (0.0, 1.0), y0, method=method, rtol=CHECK_RTOL,
                                    atol=atol, **options)
    if not sol.success or not np.all(np.isfinite(sol.y[:, -1])):
        return None
    return sol.y[:, -1].reshape(k, width + 1)[:, -1]


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
