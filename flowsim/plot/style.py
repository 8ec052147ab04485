"""How pictures look: each method's colour and marker from the registry, one axes helper,
and the checks every plotting function makes of its trajectories."""
from __future__ import annotations

import numpy as np


from .. import methods
from ..facts import PointKind
from ..results import BatchTrajectory, Trajectory

__all__ = ["KIND_STYLE", "MAX_MARKERS", "draw_path", "axes_for", "as_list", "comparison_paths",
           "check_comparison", "basin_legend", "unique_legend"]

#: Marker and colour per critical-point kind.
KIND_STYLE = {PointKind.MINIMUM: ("o", "tab:green"), PointKind.MAXIMUM: ("^", "tab:red"),
              PointKind.SADDLE: ("X", "tab:orange"), PointKind.DEGENERATE: ("D", "tab:purple")}
#: Most markers drawn along one discrete path: more would hide the flow beneath.
MAX_MARKERS = 40
#: Dash patterns of the schemes, in the order they are drawn.
LINE_STYLES = ("-", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)))


def path_style(traj, index=0):
    """Matplotlib keywords for ``traj``: its registry colour; flows a thick line beneath,
    schemes a thin line with at most :data:`MAX_MARKERS` markers, each scheme its own dash
    pattern and marker phase so that coinciding paths all show."""
    color, marker, is_flow = methods.style(traj.method, index)
    if is_flow or traj.dense is not None:   # beneath the schemes: a thick line they cross
        return dict(color=color, lw=2.2, ls="-", zorder=1.5, alpha=0.85)
    n = traj.xs.shape[-2] if traj.xs.ndim > 1 else len(traj.ts)
    step = max(1, -(-n // MAX_MARKERS))
    # schemes whose paths coincide (GD and proximal point at small steps) must all show:
    # each its own dash pattern, markers offset along the path, every other one hollow and
    # larger, and the first-listed drawn on top
    offset = (index * max(1, step // 3)) % step
    return dict(color=color, lw=0.9, ls=LINE_STYLES[index % len(LINE_STYLES)],
                marker=marker or "o", ms=3.5 + 1.5 * (index % 2),
                mfc="none" if index % 2 else color, markevery=(offset, step),
                zorder=2.5 - 0.01 * (index % 50), alpha=0.9)


def draw_path(ax, x, y, traj, index=0, label=None, log=False):
    """Draw one path (or one series over time) of ``traj`` in its style; returns the Line2D."""
    plot = ax.semilogy if log else ax.plot
    return plot(x, y, label=label, **path_style(traj, index))[0]


#: From this many legend entries on, a legend goes outside the data (below the panel).
LEGEND_OUTSIDE_FROM = 5


def legend_entries(*axes):
    """The unique ``(handles, labels)`` of ``axes``, each label once (its first artist)."""
    seen = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_"):
                seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def unique_legend(ax, fontsize=8, **kwargs):
    """``ax.legend`` with each label once (the first artist that carries it); with
    :data:`LEGEND_OUTSIDE_FROM` entries or more it goes below the panel, outside the data."""
    handles, labels = legend_entries(ax)
    if not handles:
        return
    if len(handles) >= LEGEND_OUTSIDE_FROM and "loc" not in kwargs:
        kwargs.update(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False,
                      ncol=2, borderaxespad=0.0)
    ax.legend(handles, labels, fontsize=fontsize, **kwargs)


#: Columns of a figure-wide legend.
FIGURE_LEGEND_COLUMNS = 4


def figure_legend(fig, axes):
    """One legend for all of ``axes`` (unique labels) under the figure, replacing theirs,
    when they hold many entries; otherwise each panel keeps its own. Returns the legend's
    rows (0 when the panels keep theirs)."""
    handles, labels = legend_entries(*axes)
    if len(handles) < LEGEND_OUTSIDE_FROM:
        return 0
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.legend(handles, labels, loc="lower center", fontsize=8, frameon=False,
               ncol=min(FIGURE_LEGEND_COLUMNS, len(handles)))
    return -(-len(handles) // FIGURE_LEGEND_COLUMNS)


def basin_legend(ax, minima, grey="reaches no minimum"):
    """A legend of basin colours: one patch per minimizer (its point), grey explained; placed
    outside the map, below it (side-by-side maps keep their room)."""
    from matplotlib.patches import Patch
    handles = [Patch(color=f"C{i}", label="to (" + ", ".join(f"{v:.3g}" for v in m) + ")")
               for i, m in enumerate(np.asarray(minima, dtype=float).reshape(len(minima), -1))]
    handles.append(Patch(color="lightgrey", label=grey))
    if hasattr(ax, "add_subplot"):   # a figure: one legend under all its maps
        ax.legend(handles=handles, loc="lower center", fontsize=8, frameon=False,
                  ncol=min(5, len(handles)))
        return
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8,
              frameon=False, ncol=min(3, len(handles)), borderaxespad=0.0)


def positive_part(y):
    """``y`` for a log axis: entries that are not > 0 (a run that lands exactly on L*, or
    below an estimated L*) become gaps, never a clipped 1e-300 that stretches the axis."""
    y = np.array(y, dtype=float)
    y[~(y > 0)] = np.nan
    return y


def fit_log_axis(ax, arrays, pad=2.0):
    """Set a log y-axis to the range of the positive, finite data in ``arrays``."""
    data = np.concatenate([np.ravel(a) for a in arrays]) if arrays else np.zeros(0)
    data = data[np.isfinite(data) & (data > 0)]
    if data.size:
        low, high = float(data.min()), float(data.max())
        ax.set_ylim(low / pad, high * pad if high > low else low * pad * pad)


def axes_for(ax, projection=None):
    if ax is not None:
        if not hasattr(ax, "plot") or not hasattr(ax, "figure"):
            raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}.")
        return ax
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(6, 5))
    return fig.add_subplot(projection=projection)


def as_list(trajectories, n=None):
    """Trajectories as a list, each checked to be a result with states in ``n`` variables."""
    if trajectories is None:
        return []
    if isinstance(trajectories, (Trajectory, BatchTrajectory)):
        trajs = [trajectories]
    elif isinstance(trajectories, dict):
        trajs = list(trajectories.values())
    else:
        try:
            trajs = list(trajectories)
        except TypeError:
            trajs = [trajectories]
    for traj in trajs:
        if not isinstance(traj, (Trajectory, BatchTrajectory)):
            raise TypeError("trajectories must be flowsim Trajectory or BatchTrajectory "
                            f"objects (one, a list or a dict), got {type(traj).__name__}.")
        if n is not None and traj.xs.shape[-1] != n:
            raise ValueError(f"a trajectory ({traj.method}) has states in "
                             f"{traj.xs.shape[-1]} variables, but the loss has {n}; draw "
                             "paths of this loss only.")
    return trajs


def check_comparison(obj):
    from ..compare import Comparison
    if not isinstance(obj, Comparison):
        raise TypeError(f"comparison must be a flowsim.Comparison (from flowsim.compare), got "
                        f"{type(obj).__name__}.")


def comparison_paths(obj):
    if hasattr(obj, "schemes") and hasattr(obj, "flows"):
        return list(obj.flows.values()) + list(obj.schemes.values())
    return as_list(obj)
