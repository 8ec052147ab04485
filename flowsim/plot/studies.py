"""Pictures of studies: final loss against the step size, basin maps side by side, and the
distribution of times to a tolerance; every method in its registry colour."""
from __future__ import annotations

import numpy as np

from .. import methods
from .style import axes_for

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
    shift = min(floor, 0.0)
    top = 1.0
    for method, group in runs.groupby("method", sort=False):
        color, marker, _ = methods.style(method)
        group = group.groupby("eta").agg(L=("L", "median"),
                                         diverged=("status", lambda s: (s == "diverged").mean()))
        ok = group["diverged"] < 0.5
        gap = np.maximum(group["L"] - shift, 1e-300)
        label = methods.get(method).label if method in methods.REGISTRY else method
        ax.loglog(group.index[ok], gap[ok], "-", color=color, marker=marker, ms=4, label=label)
        top = max(top, float(np.nanmax(gap[ok])) if ok.any() else top)
        if (~ok).any():
            ax.plot(group.index[~ok], np.full((~ok).sum(), top * 10), "x", color=color, ms=7)
    for key, style, text in (("max_stable_step", ":", "2/lambda_max"),
                             ("best_step", "--", "best fixed step")):
        value = study.spec.get(key)
        if value is not None and np.isfinite(value):
            ax.axvline(value, color="k", ls=style, lw=1, label=f"{text} = {value:.3g}")
    ax.set(xlabel="eta", ylabel="final L - L* (median; x: diverged)")
    ax.legend(fontsize=8)
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
    fig.tight_layout()
    return fig


def time_to_tolerance_picture(study, ax=None):
    """The fraction of starts that reached L - L* <= tol by time t, per method.

    Parameters
    ----------
    study : Study
        From :func:`~flowsim.study.recipes.time_to_tolerance`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    runs = _study(study)
    ax = axes_for(ax)
    for method, group in runs.groupby("method", sort=False):
        color, _, _ = methods.style(method)
        times = np.sort(group["time_to_tol"].to_numpy())
        reached = np.isfinite(times)
        if reached.any():
            ax.step(times[reached], np.arange(1, reached.sum() + 1) / len(times), where="post",
                    color=color, label=methods.get(method).label
                    if method in methods.REGISTRY else method)
    ax.set(xlabel="t (flow time)", ylabel="fraction of starts with L - L* <= tol", ylim=(0, 1))
    ax.legend(fontsize=8)
    return ax
