"""Step-by-step comparison of discrete schemes with the flows they discretize."""
from __future__ import annotations

import math
import types
from dataclasses import dataclass, field

import numpy as np

from . import flow as flows
from . import second_order
from ._ode import METHODS
from ._validate import (as_loss, choice, int_between, mapping, positive, start_points,
                        step_count)
from .schedules import as_schedule, step_sizes
from .diagnostics.stability import stability
from .schemes import SCHEMES
from .schemes.others import DEFAULT_MOMENTUM
from .trajectory import Picklable

__all__ = ["compare", "Comparison", "StepFactors"]

#: Schemes that discretize the gradient flow with iterate k at t = k * eta.
_GRADIENT_FLOW = ("gd", "prox", "heun", "sgd")


@dataclass(frozen=True)
class StepFactors(Picklable):
    """Per-eigendirection contraction per step near a point, for step eta.

    Attributes
    ----------
    point : ndarray, shape (n,)
        Where the Hessian was taken (a minimizer when one is known).
    eigenvalues : ndarray, shape (n,)
        Hessian eigenvalues lambda_i, ascending.
    flow, gd, prox : ndarray, shape (n,)
        e^{-eta lambda_i} (the exact flow over one step), |1 - eta lambda_i| (gradient
        descent) and 1/(1 + eta lambda_i) (proximal point).
    eta : float
    """

    point: np.ndarray
    eigenvalues: np.ndarray
    flow: np.ndarray
    gd: np.ndarray
    prox: np.ndarray
    eta: float

    def explain(self):
        """A few lines of text: each direction's factor for the flow, GD and proximal point."""
        lines = [f"per-step factors at x = {np.round(self.point, 6).tolist()} "
                 f"(eta = {self.eta:g}, GD stable iff eta < 2/lambda_max = "
                 f"{2 / self.eigenvalues.max():.4g})" if self.eigenvalues.max() > 0 else
                 f"per-step factors at x = {np.round(self.point, 6).tolist()}",
                 f"  {'lambda':>12s} {'flow e^-eta.l':>14s} {'GD |1-eta.l|':>13s} "
                 f"{'prox 1/(1+eta.l)':>17s}"]
        for lam, f, g, p in zip(self.eigenvalues, self.flow, self.gd, self.prox):
            note = "  <- GD unstable" if g > 1 else ("  <- GD oscillates" if 1 - self.eta * lam < 0
                                                    else "")
            lines.append(f"  {lam:12.5g} {f:14.5g} {g:13.5g} {p:17.5g}{note}")
        return "\n".join(lines)


def step_factors(loss, point, eta):
    """:class:`StepFactors` of ``loss`` at ``point`` for step ``eta``."""
    r = stability(loss, point, eta)
    with np.errstate(over="ignore"):  # a growing direction far out: its factor is inf
        flow = np.exp(-eta * r.eigenvalues)
    return StepFactors(r.point, r.eigenvalues, flow, r.gd_factors, r.prox_factors, eta)


@dataclass(frozen=True)
class Comparison(Picklable):
    """Schemes next to their flows, step by step.

    Attributes
    ----------
    eta : float
    flows : mapping of str to Trajectory
        The reference flow of each scheme (schemes sharing a flow share the object).
    schemes : mapping of str to Trajectory
    deviation : mapping of str to ndarray, shape (n_points_k,)
        |x_k - x(t_k)| per iterate of each scheme (nan where the flow ended earlier).
    loss_gap : mapping of str to ndarray, shape (n_points_k,)
        L(x_k) - L(x(t_k)).
    factors : StepFactors
        The per-direction explanation of the deviation (see :class:`StepFactors`).
    """

    eta: float
    flows: types.MappingProxyType
    schemes: types.MappingProxyType
    deviation: types.MappingProxyType
    loss_gap: types.MappingProxyType
    factors: StepFactors = field(repr=False)

    def __post_init__(self):
        for name in ("flows", "schemes", "deviation", "loss_gap"):
            object.__setattr__(self, name, types.MappingProxyType(dict(getattr(self, name))))

    def to_frame(self):
        """Per-step table: ``k``, and per scheme ``t``, ``L``, ``deviation``, ``loss_gap``.

        A ``pandas.DataFrame`` when pandas is installed, else a dict of equal-length arrays
        (nan-padded where a scheme stopped early).
        """
        length = max(len(t.ts) for t in self.schemes.values())
        table = {"k": np.arange(length)}

        def padded(a):
            out = np.full(length, np.nan)
            out[:len(a)] = a
            return out

        for name, traj in self.schemes.items():
            table[f"{name}_t"] = padded(traj.ts)
            table[f"{name}_L"] = padded(traj.values)
            table[f"{name}_deviation"] = padded(self.deviation[name])
            table[f"{name}_loss_gap"] = padded(self.loss_gap[name])
        try:
            import pandas
        except ImportError:
            return table
        return pandas.DataFrame(table).set_index("k")

    def table(self, rows=10):
        """The comparison as text: ``rows`` evenly spaced steps, then status per scheme."""
        rows = int_between(rows, "rows", 1, 1_000_000)
        length = max(len(t.ts) for t in self.schemes.values())
        ks = np.unique(np.linspace(0, length - 1, min(rows, length)).round().astype(int))
        names = list(self.schemes)
        head = f"{'k':>6s}" + "".join(f" {name + ' |x-x(t)|':>18s} {name + ' L-L(t)':>16s}"
                                      for name in names)
        lines = [head]
        for k in ks:
            cells = []
            for name in names:
                dev, gap = self.deviation[name], self.loss_gap[name]
                cells.append(f" {dev[k]:18.6g} {gap[k]:16.6g}" if k < len(dev)
                             else f" {'-':>18s} {'-':>16s}")
            lines.append(f"{k:6d}" + "".join(cells))
        lines.append("")
        for name in names:
            traj = self.schemes[name]
            lines.append(f"{name:>10s}: {traj.status.value:<11s} L = {traj.values[-1]:.6g}, "
                         f"max |x_k - x(t_k)| = {np.nanmax(self.deviation[name]):.4g}; "
                         f"{traj.message}")
        for key, ref in self.flows.items():
            lines.append(f"{key:>10s}: {ref.status.value:<11s} L = {ref.values[-1]:.6g} "
                         f"at t = {ref.ts[-1]:.4g} ({ref.method})")
        lines.append("")
        lines.append(self.factors.explain())
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _reference_flow(name, loss, x0, t_end, steps, method, rtol, atol, options):
    """The flow a scheme discretizes, integrated densely; and its time per step factor."""
    if name in _GRADIENT_FLOW:
        return "gradient flow", flows.gradient_flow(loss, x0, t_end, method, rtol=rtol,
                                                    atol=atol)
    if name == "heavy_ball":
        beta = options.get("momentum", DEFAULT_MOMENTUM)
        h = t_end / steps
        return f"heavy ball ODE (beta={beta:g})", second_order.heavy_ball_flow(
            loss, x0, t_end, mass=1.0, friction=(1 - beta) / h, method=method, rtol=rtol,
            atol=atol)
    if name == "nesterov":
        r = options.get("r", 3.0)
        return f"Nesterov ODE (r={r:g})", second_order.nesterov_flow(loss, x0, t_end, r=r,
                                                             method=method, rtol=rtol, atol=atol)
    if name == "newton":
        return "Newton flow", flows.newton_flow(loss, x0, t_end, method=method, rtol=rtol,
                                                atol=atol)
    raise ValueError(f"schemes: {name!r} has no flow to compare with; compare one of "
                     f"{', '.join(_GRADIENT_FLOW + ('heavy_ball', 'nesterov', 'newton'))}.")


def compare(loss, x0, eta, steps, schemes=("gd", "prox"), *, flow_method="auto",
            rtol=1e-10, atol=1e-12, options=None, progress=None):
    """Run schemes and their flows together and measure, per step, how far they stray.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,)
    eta : float or callable
        Step of every scheme (for ``newton`` the damping, at most 1). A schedule
        ``k -> eta_k`` (see :mod:`flowsim.schedules`) is taken by the schemes of the
        gradient flow (gd, prox, heun, sgd); their iterate k sits at eta_0 + ... + eta_{k-1}.
    steps : int
    schemes : sequence of str
        Names from :data:`flowsim.schemes.SCHEMES` (``gd``, ``prox``, ``heun``, ``sgd``
        against the gradient flow; ``heavy_ball`` and ``nesterov`` against their own ODE at
        t_k = k sqrt(eta); ``newton`` against the Newton flow).
    flow_method : str
        Solver of the reference flows: ``"auto"`` (DOP853, switching to Radau where the
        flow turns out to be stiff) or any :func:`flowsim.gradient_flow` method.
    rtol, atol : float
        Tolerances of the reference flows.
    options : dict of str to dict, optional
        Extra keyword arguments per scheme, e.g. ``{"heavy_ball": {"momentum": 0.8}}``.
    progress : callable, optional
        Called with a short message as each scheme and reference flow finishes (the
        command line prints them, so long runs show where they are).

    Returns
    -------
    Comparison

    Examples
    --------
    >>> from flowsim import losses
    >>> c = compare(losses.ill_conditioned_quadratic(10.0), [1.0, 1.0], 0.15, 20)
    >>> bool(np.nanmax(c.deviation["gd"]) > np.nanmax(c.deviation["prox"]))
    True
    """
    loss = as_loss(loss)
    x0 = start_points(x0, loss.n, batch=False)
    schedule, fixed = as_schedule(eta)
    steps = step_count(steps, "steps", loss.n)
    span = float(np.sum(step_sizes(schedule, steps)))  # the time the gradient-flow schemes cover
    eta = fixed if fixed is not None else float(schedule(0))
    choice(flow_method, tuple(METHODS) + ("auto",), "flow_method")
    positive(rtol, "rtol")
    positive(atol, "atol")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be a callable taking one message, or None.")
    if isinstance(schemes, str):
        schemes = [s.strip() for s in schemes.split(",") if s.strip()]
    try:
        schemes = list(schemes)
    except TypeError:
        raise TypeError("schemes must be a sequence of scheme names, e.g. ('gd', 'prox').") \
            from None
    if not schemes:
        raise ValueError("schemes must name at least one scheme, e.g. ('gd', 'prox').")
    for name in schemes:
        if not isinstance(name, str) or name not in SCHEMES:
            raise ValueError(f"schemes: unknown scheme {name!r}; choose from "
                             f"{', '.join(SCHEMES)}.")
        if fixed is None and name not in _GRADIENT_FLOW:
            raise ValueError(f"eta: {name} runs with a fixed step here; give a number, or "
                             f"compare only {', '.join(_GRADIENT_FLOW)} with a schedule.")
    if len(set(schemes)) != len(schemes):
        raise ValueError(f"schemes names a scheme twice: {schemes}; give each once.")
    options = mapping(options, "options")
    for name, opts in options.items():
        if name not in schemes:
            raise ValueError(f"options: {name!r} is not among the compared schemes "
                             f"{tuple(schemes)}; key options by scheme name.")
        if not isinstance(opts, dict):
            raise TypeError(f"options[{name!r}] must be a dict of keyword arguments, got "
                            f"{type(opts).__name__}.")
    runs, refs, by_key = {}, {}, {}
    for name in schemes:
        opts = options.get(name, {})
        if name == "newton":
            runs[name] = SCHEMES[name](loss, x0, steps, damping=min(eta, 1.0), **opts)
            t_end = steps * min(eta, 1.0)
        else:
            runs[name] = SCHEMES[name](loss, x0, schedule if fixed is None else eta, steps,
                                       **opts)
            t_end = steps * math.sqrt(eta) if name in ("heavy_ball", "nesterov") else span
        if progress is not None:
            progress(f"{name}: {runs[name].status.value} after {len(runs[name].ts) - 1} steps")
        key = (name if name not in _GRADIENT_FLOW else "gradient flow")
        if key not in by_key:
            label, ref = _reference_flow(name, loss, x0, t_end, steps, flow_method, rtol,
                                         atol, opts)
            by_key[key] = (label, ref)
            if progress is not None:
                progress(f"{label}: integrated to t = {ref.ts[-1]:.4g} ({ref.status.value})")
        refs[name] = by_key[key]
    deviation, gap = {}, {}
    for name, traj in runs.items():
        ref = refs[name][1]
        inside = traj.ts <= ref.ts[-1] * (1 + 1e-12)
        dev = np.full(len(traj.ts), np.nan)
        lg = np.full(len(traj.ts), np.nan)
        if inside.any():
            x_ref = ref.at(traj.ts[inside])
            dev[inside] = np.linalg.norm(traj.xs[inside] - x_ref, axis=1)
            lg[inside] = traj.values[inside] - loss._values(x_ref)
        deviation[name], gap[name] = dev, lg
    anchor = _anchor(loss, by_key)
    return Comparison(eta, types.MappingProxyType({lab: ref for lab, ref in by_key.values()}),
                      types.MappingProxyType(runs), types.MappingProxyType(deviation),
                      types.MappingProxyType(gap), step_factors(loss, anchor, eta))


def _anchor(loss, by_key):
    """Where to explain the factors: the known minimizer nearest the flow's end, or the end."""
    end = next(iter(by_key.values()))[1].x_final
    facts = loss.facts
    if facts is not None and facts.minimizers.size:
        mins = facts.minimizers
        return mins[np.argmin(np.linalg.norm(mins - end, axis=1))]
    return end
