"""Pictures of studies: final loss against the step size, basin maps side by side, and the
distribution of times to a tolerance; every method in its registry colour."""
from __future__ import annotations

import numpy as np

from .. import methods
from .style import axes_for, basin_legend, positive_part, unique_legend

__all__ = ["step_size_picture", "basin_maps", "time_to_tolerance_picture"]


def _study(study):
    from ..study import Study
    if not isinstance(study, Study):
        raise TypeError(f"study must be a flowsim Study (from flowsim.sweep), got "
                        f"{type(study).__name__}.")
    return study.runs


def step_size_picture(study, ax=None):
    """Final L - L* against eta per method (log-log), diverged runs marked with crosses at the
    top, 2/lambda_max and the best fixed step drawn where the study knows them.

    Parameters
    ----------
    study : Study
        From :func:`~flowsim.study.recipes.step_size_sweep` (or any sweep of schemes).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    runs = _study(study)
    ax = axes_for(ax)
    runs = runs[np.isfinite(runs["eta"])]
    floor = np.nanmin(runs["L"].where(np.isfinite(runs["L"]))) if len(runs) else 0.0
    known = study.spec.get("min_value")
    shift = known if known is not None else min(floor, 0.0)
    where = study.spec.get("min_value_source", "known" if known is not None else
                           "0, or the lowest final value if below")
    top = 1.0
    for method, group in runs.groupby("method", sort=False):
        color, marker, _ = methods.style(method)
        group = group.groupby("eta").agg(L=("L", "median"),
                                         diverged=("status", lambda s: (s == "diverged").mean()))
        ok = group["diverged"] < 0.5
        gap = positive_part(group["L"] - shift)
        label = methods.get(method).label if method in methods.REGISTRY else method
        ax.loglog(group.index[ok], gap[ok], "-", color=color, marker=marker, ms=4, label=label)
        seen = gap[ok][np.isfinite(gap[ok])]
        top = max(top, float(seen.max()) if seen.size else top)
        if (~ok).any():
            ax.plot(group.index[~ok], np.full((~ok).sum(), top * 10), "x", color=color, ms=7)
    for key, style, text in (("max_stable_step", ":", "2/lambda_max"),
                             ("best_step", "--", "best fixed step")):
        value = study.spec.get(key)
        if value is not None and np.isfinite(value):
            ax.axvline(value, color="k", ls=style, lw=1, label=f"{text} = {value:.3g}")
    ax.set(xlabel="eta", ylabel=f"final L - L* (median; x: diverged)\nL* = {shift:.4g} ({where})")
    unique_legend(ax)
    return ax


def basin_maps(study, axes=None):
    """One basin map per method of a :func:`~flowsim.study.recipes.basin_map` study, side by
    side: each grid point coloured by the minimizer it reaches (grey: none).

    Parameters
    ----------
    study : Study
    axes : sequence of matplotlib Axes, optional
        One per method (a new figure when None).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt
    runs = _study(study)
    res = study.spec.get("resolution")
    if res is None:
        raise ValueError("study: draw basin maps of a study made by basin_map (it knows its "
                         "grid).")
    names = list(dict.fromkeys(runs["method"]))
    variables = [c[3:] for c in runs.columns if c.startswith("x0_")] or ["x1", "x2"]
    if axes is None:
        fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.0),
                                 squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    box = np.asarray(study.spec["bounds"], dtype=float)
    k = int(runs["minimizer"].max()) + 1
    cmap = mcolors.ListedColormap(["lightgrey"] + [f"C{i}" for i in range(max(k, 1))])
    from ..study.recipes import disagreement
    gaps = disagreement(study, names[0]) if len(names) > 1 else {}
    for ax, name in zip(axes, names):
        labels = runs[runs["method"] == name].sort_values("start")["minimizer"].to_numpy()
        ax.imshow(labels.reshape(res, res), origin="lower", extent=(*box[0], *box[1]),
                  cmap=cmap, vmin=-1.5, vmax=k - 0.5, interpolation="nearest", aspect="auto")
        title = methods.get(name).label if name in methods.REGISTRY else name
        if name in gaps:
            title += f" ({100 * gaps[name]:.2f}% differ)"
        ax.set_title(title, fontsize=10)
        ax.set(xlabel=variables[0], ylabel=variables[1])
    minimizers = study.spec.get("minimizers")
    if minimizers is not None and len(minimizers):
        basin_legend(fig, minimizers, "reaches no known minimizer (diverged, failed, elsewhere)")
        fig.tight_layout(rect=(0, 0.12, 1, 1))
    else:
        fig.tight_layout()
    return fig


def time_to_tolerance_picture(study, ax=None, *, x=None):
    """The fraction of starts that reached L - L* <= tol by iteration k (or time t), per
    method.

    Parameters
    ----------
    study : Study
        From :func:`~flowsim.study.recipes.time_to_tolerance`.
    ax : matplotlib Axes, optional
    x : {"iterations", "time"}, optional
        What the horizontal axis counts. ``"iterations"`` (the default when the study has
        schemes) compares schemes like with like: the flow's time is k eta for gradient
        descent but k sqrt(eta) for the momentum methods, so on a time axis a heavy ball
        looks sqrt(1/eta) times slower than it is. ``"time"`` draws the flows too.

    Returns
    -------
    matplotlib.axes.Axes
        A step curve per method; where no run reached the tolerance the panel says so.
    """
    runs = _study(study)
    ax = axes_for(ax)
    has_schemes = bool(np.isfinite(runs["eta"]).any())
    x = x if x is not None else ("iterations" if has_schemes else "time")
    if x not in ("iterations", "time"):
        raise ValueError(f"x must be 'iterations' or 'time', got {x!r}.")
    column = "iterations_to_tol" if x == "iterations" else "time_to_tol"
    drawn = 0
    for method, group in runs.groupby("method", sort=False):
        if x == "iterations" and not np.isfinite(group["eta"]).any():
            continue   # a flow has no iterations
        color, marker, _ = methods.style(method)
        times = np.sort(group[column].to_numpy(dtype=float))
        reached = np.isfinite(times)
        label = methods.get(method).label if method in methods.REGISTRY else method
        if reached.any():
            ax.step(times[reached], np.arange(1, reached.sum() + 1) / len(times), where="post",
                    color=color, marker=marker, markevery=max(1, reached.sum() // 8),
                    label=f"{label} ({reached.sum()}/{len(times)})")
            drawn += 1
    star = study.spec.get("min_value")
    where = study.spec.get("min_value_source")
    ax.set(xlabel="iteration k" if x == "iterations" else "t (flow time)",
           ylabel="fraction of starts with L - L* <= tol", ylim=(0, 1.02))
    if star is not None:
        ax.set_title(f"L* = {star:.6g}" + (f" ({where})" if where else ""), fontsize=8)
    if drawn:
        unique_legend(ax)
    else:
        ax.text(0.5, 0.5, "no run reached L - L* <= tol within its steps", ha="center",
                va="center", transform=ax.transAxes)
    return ax
