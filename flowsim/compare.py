"""Step-by-step comparison of discrete schemes with the flows they discretize."""
from __future__ import annotations

import types
from dataclasses import dataclass, field

import numpy as np

from . import methods
from ._validate import (as_loss, choice, int_between, mapping, positive, start_points,
                        step_count)
from .diagnostics.stability import StabilityReport, stability
from .flows._common import check_start
from .flows._solver import METHODS as SOLVERS
from .results import Picklable
from .schedules import as_schedule, step_sizes

__all__ = ["compare", "Comparison", "reference_flow"]


@dataclass(frozen=True)
class Comparison(Picklable):
    """Schemes next to their flows, step by step.

    Attributes
    ----------
    eta : float
        The first step (the step, for a fixed one).
    flows : mapping of str to Trajectory
        The reference flows, keyed by flow name (``"gradient_flow"``; a second ODE of the
        same flow with other parameters is keyed ``"<flow> for <scheme>"``).
    schemes : mapping of str to Trajectory
        Keyed by the schemes' registry names (``"gradient_descent"``).
    references : mapping of str to str
        Each scheme's key in ``flows``.
    deviation : mapping of str to ndarray, shape (n_points_k,)
        |x_k - x(t_k)| per iterate of each scheme (nan where the flow ended earlier).
    loss_gap : mapping of str to ndarray, shape (n_points_k,)
        L(x_k) - L(x(t_k)).
    factors : StabilityReport
        Step-size theory at the known minimizer nearest the flow's end (else the end), with
        each eigendirection's factor per step for the flow, GD and proximal point: the
        explanation of the deviation.
    """

    eta: float
    flows: types.MappingProxyType
    schemes: types.MappingProxyType
    references: types.MappingProxyType
    deviation: types.MappingProxyType
    loss_gap: types.MappingProxyType
    factors: StabilityReport = field(repr=False)

    def __post_init__(self):
        for name in ("flows", "schemes", "references", "deviation", "loss_gap"):
            object.__setattr__(self, name, types.MappingProxyType(dict(getattr(self, name))))

    def reference(self, scheme):
        """The reference flow (a Trajectory) of ``scheme`` (registry or short name)."""
        name = methods.get(scheme, "scheme").name
        if name not in self.schemes:
            raise ValueError(f"scheme: {name!r} is not in this comparison; it holds "
                             f"{', '.join(self.schemes)}.")
        return self.flows[self.references[name]]

    def to_frame(self):
        """Per-step ``pandas.DataFrame`` indexed by ``k``: per scheme ``<name>_t``,
        ``<name>_L``, ``<name>_deviation``, ``<name>_loss_gap`` (nan-padded where a scheme
        stopped early)."""
        import pandas
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
        return pandas.DataFrame(table).set_index("k")

    def __repr__(self):
        worst = ", ".join(f"{name} {np.nanmax(dev):.3g}" for name, dev in self.deviation.items()
                          if np.size(dev))
        return (f"<Comparison: eta = {self.eta:g}; schemes {', '.join(self.schemes)}; largest "
                f"distance to the reference: {worst}>")

    def summary(self, rows=10):
        """The comparison as text: ``rows`` evenly spaced steps (and the step where each
        scheme strays furthest), each scheme's and flow's ending, and the per-direction
        factors (a long table summarized)."""
        rows = int_between(rows, "rows", 1, 1_000_000)
        length = max(len(t.ts) for t in self.schemes.values())
        worst = {name: int(np.nanargmax(dev)) for name, dev in self.deviation.items()
                 if np.isfinite(dev).any()}
        ks = np.unique(np.concatenate([
            np.linspace(0, length - 1, min(rows, length)).round().astype(int),
            list(worst.values())]))
        names = list(self.schemes)
        short = {name: methods.get(name).short or name for name in names}
        head = f"{'k':>6s}" + "".join(f" {short[n] + ' |x-x(t)|':>18s} {short[n] + ' L-L(t)':>16s}"
                                      for n in names)
        lines = [head]
        for k in ks:
            cells = []
            for name in names:
                dev, gap = self.deviation[name], self.loss_gap[name]
                cells.append(f" {dev[k]:18.6g} {gap[k]:16.6g}" if k < len(dev)
                             else f" {'-':>18s} {'-':>16s}")
            lines.append(f"{k:6d}" + "".join(cells))
        lines.append("")
        width = max(len(t.label) for t in list(self.schemes.values()) + list(self.flows.values()))
        for name in names:
            traj = self.schemes[name]
            at = f" at k = {worst[name]}" if name in worst else ""
            lines.append(f"{traj.label:>{width}s}: {traj.status.value:<11s} L = "
                         f"{traj.values[-1]:.6g}, max |x_k - x(t_k)| = "
                         f"{np.nanmax(self.deviation[name]):.4g}{at}; {traj.message}")
        for ref in self.flows.values():
            lines.append(f"{ref.label:>{width}s}: {ref.status.value:<11s} L = "
                         f"{ref.values[-1]:.6g} at t = {ref.ts[-1]:.4g}")
        lines.append("")
        lines.append(self.factors.summary())
        return "\n".join(lines)

    def __str__(self):
        return self.summary()


def reference_flow(record, loss, x0, t_end, h, options, method, rtol, atol):
    """The ODE scheme ``record`` discretizes with ``options`` at ODE step ``h``, integrated
    densely from ``x0`` to ``t_end``: ``(flow name, kwargs, Trajectory)``."""
    flow, kwargs = record.reference_flow(options, h)
    return flow.name, kwargs, flow.function(loss, x0, t_end, method=method, rtol=rtol,
                                            atol=atol, **kwargs)


def _scheme_names(schemes, fixed, etas):
    if isinstance(schemes, str):
        schemes = [s.strip() for s in schemes.split(",") if s.strip()]
    try:
        schemes = list(schemes)
    except TypeError:
        raise TypeError("schemes must be a sequence of scheme names, e.g. ('gd', 'pp').") \
            from None
    if not schemes:
        raise ValueError("schemes must name at least one scheme, e.g. ('gd', 'pp').")
    records = []
    for name in schemes:
        if not isinstance(name, str):
            raise ValueError(f"schemes: {name!r} is not a scheme name; give names such as "
                             "'gd' or 'proximal_point'.")
        record = methods.get(name, "scheme")
        record.reference_flow({}, 1.0)  # refuses a scheme with no flow, before any work
        if fixed is None and ("schedule" not in record.accepts or
                              record.step_time != "eta"):
            raise ValueError(f"eta: {record.name} is compared with its ODE at a fixed step (the "
                             "ODE's time scale follows the step); give a number.")
        if record.max_eta is not None and np.any(etas > record.max_eta):
            raise ValueError(f"eta: {record.name} takes steps of at most {record.max_eta:g} "
                             f"(got {float(np.max(etas)):g}); compare it with a smaller eta.")
        records.append(record)
    if len({r.name for r in records}) != len(records):
        raise ValueError(f"schemes names a scheme twice: {schemes}; give each once.")
    return records


def compare(loss, x0, eta, steps, schemes=("gd", "pp"), *, flow_method="auto",
            rtol=1e-10, atol=1e-12, options=None, progress=None):
    r"""Run schemes and their flows together and measure, per step, how far they stray.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,)
    eta : float or callable
        Step of every scheme (for ``newton`` the damping, at most 1), or a schedule
        ``k -> eta_k`` (see :mod:`flowsim.schedules`).
    steps : int
    schemes : sequence of str
        Registry names or short names of schemes with a flow (:mod:`flowsim.methods`):
        ``gd``, ``pp``, ``heun``, ``sgd`` against the gradient flow; ``hb`` and ``nag``
        against their own ODE at t_k = sqrt(eta_0) + ... ; ``newton`` against the Newton flow.
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

    Notes
    -----
    Iterate k of a scheme whose ODE step is h(eta) sits at t_k = h(eta_0) + ... +
    h(eta_{k-1}) and is compared with the reference ODE there:

    .. math:: d_k = |x_k - x(t_k)|, \qquad g_k = L(x_k) - L(x(t_k)).

    Examples
    --------
    >>> from flowsim import losses
    >>> c = compare(losses.ill_conditioned_quadratic(10.0), [1.0, 1.0], 0.15, 20)
    >>> bool(np.nanmax(c.deviation["gradient_descent"]) >
    ...      np.nanmax(c.deviation["proximal_point"]))
    True
    """
    loss = as_loss(loss)
    x0 = start_points(x0, loss.n, batch=False)
    check_start(loss, x0)   # the reference flow refuses it: before any scheme runs
    schedule, fixed = as_schedule(eta)
    steps = step_count(steps, "steps", loss.n)
    etas = step_sizes(schedule, steps).array()   # compare keeps every step anyway
    eta = float(etas[0])
    choice(flow_method, tuple(SOLVERS) + ("auto",), "flow_method")
    positive(rtol, "rtol")
    positive(atol, "atol")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be a callable taking one message, or None.")
    records = _scheme_names(schemes, fixed, etas)
    options = mapping(options, "options")
    by_name = {r.name: r for r in records} | {r.short: r for r in records if r.short}
    for name, opts in options.items():
        if name not in by_name:
            raise ValueError(f"options: {name!r} is not among the compared schemes "
                             f"{tuple(r.name for r in records)}; key options by scheme name.")
        if not isinstance(opts, dict):
            raise TypeError(f"options[{name!r}] must be a dict of keyword arguments, got "
                            f"{type(opts).__name__}.")
    options = {by_name[name].name: opts for name, opts in options.items()}
    runs, refs, flows = {}, {}, {}
    for record in records:
        opts = options.get(record.name, {})
        runs[record.name] = traj = record.function(loss, x0, schedule if fixed is None
                                                   else fixed, steps, **opts)
        if progress is not None:
            progress(f"{record.name}: {traj.status.value} after {len(traj.ts) - 1} steps")
        hs = record.step_of(etas)
        flow, kwargs = record.reference_flow(opts, float(hs[0]))
        key = next((k for k, (f, kw, _) in flows.items() if f == flow.name and kw == kwargs),
                   None)
        if key is None:
            key = flow.name if flow.name not in flows else f"{flow.name} for {record.name}"
            _, _, ref = reference_flow(record, loss, x0, float(np.sum(hs)), float(hs[0]), opts,
                                       flow_method, rtol, atol)
            flows[key] = (flow.name, kwargs, ref)
            if progress is not None:
                progress(f"{ref.label}: integrated to t = {ref.ts[-1]:.4g} ({ref.status.value})")
        refs[record.name] = key
    deviation, gap = {}, {}
    for name, traj in runs.items():
        ref = flows[refs[name]][2]
        inside = traj.ts <= ref.ts[-1] * (1 + 1e-12)
        dev = np.full(len(traj.ts), np.nan)
        lg = np.full(len(traj.ts), np.nan)
        if inside.any():
            x_ref = ref.at(traj.ts[inside])
            dev[inside] = np.linalg.norm(traj.xs[inside] - x_ref, axis=1)
            lg[inside] = traj.values[inside] - loss.observe_values(x_ref)
        deviation[name], gap[name] = dev, lg
    references = {key: ref for key, (_, _, ref) in flows.items()}
    anchor = _anchor(loss, next(iter(references.values())))
    return Comparison(eta, references, runs, refs, deviation, gap,
                      stability(loss, anchor, eta,
                                geometry=_geometry(loss, [options.get(r.name, {})
                                                          for r in records])))


def _geometry(loss, options):
    """The mirror or natural-gradient geometry every compared scheme steps in (``options``:
    each scheme's, in order), when they all share one that is not Euclidean (the same
    potential= or metric=); else None."""
    from .flows.mirror import geometry_of
    given = {(str(o.get("potential")), str(o.get("metric"))) for o in options}
    if len(given) != 1 or given == {("None", "None")}:
        return None
    return geometry_of(loss, options[0].get("potential"), options[0].get("metric"))


def _anchor(loss, first):
    """Where to explain the factors: the known minimizer nearest the flow's end, or the end."""
    end = first.x_final
    facts = loss.facts
    if facts is not None and facts.minimizers.size:
        mins = facts.minimizers
        return mins[np.argmin(np.linalg.norm(mins - end, axis=1))]
    return end
