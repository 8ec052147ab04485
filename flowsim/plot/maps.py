"""Pictures on the plane of a 2-D loss: contour maps with paths, basins, the surface, and
an animation of flow and iterates together."""
from __future__ import annotations

import numpy as np

from .._validate import (as_loss, check_bounds, int_between, positive, real_array,
                         writable_path)
from ..diagnostics.critical import critical_points
from ..results import BatchTrajectory
from .style import (KIND_STYLE, as_list, axes_for, basin_legend, draw_path, path_style,
                    unique_legend)

__all__ = ["contour", "basins", "surface", "animate", "plot_box"]


def _plane_loss(loss, what):
    """``loss`` checked to have two variables, for a picture of the plane."""
    loss = as_loss(loss)
    if loss.n != 2:
        raise ValueError(f"{what} needs a loss in two variables, got n = {loss.n}.")
    return loss


def plot_box(loss, bounds, trajectories, pad=0.15):
    if bounds is not None:
        return check_bounds(bounds, 2)
    if loss.facts is not None and loss.facts.bounds is not None:
        return np.array(loss.facts.bounds, dtype=float)
    pts = [t.xs.reshape(-1, 2) for t in trajectories]
    if pts and loss.facts is not None and loss.facts.minimizers.size:
        pts.append(loss.facts.minimizers)
    if not pts:
        return np.array([[-2.0, 2.0], [-2.0, 2.0]])
    pts = np.concatenate(pts)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.maximum(hi - lo, 1e-3)
    return np.stack([lo - pad * span, hi + pad * span], axis=1)


def _grid(loss, box, resolution):
    gx = np.linspace(box[0, 0], box[0, 1], resolution)
    gy = np.linspace(box[1, 0], box[1, 1], resolution)
    X, Y = np.meshgrid(gx, gy)
    Z = loss.observe_values(np.stack([X, Y], axis=-1))
    return X, Y, Z


def contour(loss, trajectories=None, ax=None, *, bounds=None, critical=True, levels=30,
            resolution=200):
    """Contour map of a 2-D loss with paths overlaid.

    Parameters
    ----------
    loss : Loss or str
        A loss in two variables.
    trajectories : Trajectory, sequence or dict of Trajectory, optional
        Flows are drawn as lines, discrete runs as markers joined by thin lines; each start
        is marked with a black square.
    bounds : (low, high) or two pairs, optional
        The window; by default the loss's usual box, else the paths' extent.
    critical : bool or sequence of CriticalPoint
        Mark critical points by kind (found in the window when True).
    levels : int
        Contour levels, spaced in log(L - min + 1) so valleys show.

    Returns
    -------
    matplotlib.axes.Axes
    """
    loss = _plane_loss(loss, "contour")
    trajs = as_list(trajectories, 2)
    levels = int_between(levels, "levels", 2, 500)
    resolution = int_between(resolution, "resolution", 2, 4000)
    box = plot_box(loss, bounds, trajs)
    ax = axes_for(ax)
    X, Y, Z = _grid(loss, box, resolution)
    finite = np.isfinite(Z)
    shift = np.nanmin(np.where(finite, Z, np.nan))
    ax.contourf(X, Y, np.log1p(np.where(finite, Z - shift, np.nan)), levels=levels,
                cmap="viridis", alpha=0.85)
    ax.contour(X, Y, np.log1p(np.where(finite, Z - shift, np.nan)), levels=levels,
               colors="k", linewidths=0.3, alpha=0.5)
    for i, traj in enumerate(trajs):
        paths = traj.xs if isinstance(traj, BatchTrajectory) else [traj.xs]
        for j, xs in enumerate(paths):
            draw_path(ax, xs[:, 0], xs[:, 1], traj, i, label=traj.label if j == 0 else None)
            ax.plot(xs[0, 0], xs[0, 1], "s", color="k", ms=6, zorder=4)
    if not isinstance(critical, (bool, list, tuple)) and \
            type(critical).__name__ != "CriticalPointSet":
        raise TypeError("critical must be True, False or a sequence of critical points, got "
                        f"{type(critical).__name__}.")
    if critical is True:
        critical = critical_points(loss, box, time_limit=10.0)
    for cp in critical or ():
        marker, color = KIND_STYLE[cp.kind]
        ax.plot(cp.point[0], cp.point[1], marker, color=color, mec="k", ms=9, ls="none",
                label=cp.kind.value)
    names = [v.name for v in loss.variables]
    ax.set(xlim=box[0], ylim=box[1], xlabel=names[0], ylabel=names[1])
    if trajs or critical:
        unique_legend(ax)
    return ax


def basins(loss, ax=None, *, bounds=None, resolution=200, t_end=20.0, minima=None):
    """Basins of attraction: which minimum the gradient flow from each grid point reaches.

    Parameters
    ----------
    loss : Loss or str
        A loss in two variables.
    ax : matplotlib Axes, optional
    bounds : (low, high) or two pairs, optional
        The window; by default the loss's usual bounds.
    resolution : int
        Grid points per side.
    t_end : float
        How long each start flows.
    minima : array_like, shape (k, 2), optional
        The minima to sort ends by (found in the window by default).

    Uses one batched flow over all grid points (RK45 on the per-start engine, each start
    stopped once |grad L| <= 1e-4). Points that end near no minimum are grey. For the
    basins of schemes next to the flow's, see :func:`flowsim.study.recipes.basin_map` and
    :func:`basin_maps`.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.images[0]`` holds the basin labels (-1 for none).
    """
    from ..flows.gradient import gradient_flow
    loss = _plane_loss(loss, "basins")
    resolution = int_between(resolution, "resolution", 2, 2000)
    t_end = positive(t_end, "t_end")
    box = plot_box(loss, bounds, [])
    if minima is None:
        minima = [c.point for c in critical_points(loss, box, kinds=("minimum",),
                                                   time_limit=10.0)]
    minima = real_array(minima, "minima").reshape(-1, 2) if len(minima) else np.empty((0, 2))
    if not np.all(np.isfinite(minima)):
        raise ValueError("minima must be finite points of shape (k, 2).")
    if not len(minima):
        raise ValueError("basins: no minimum was found in the box; widen bounds= or give the "
                         "minima with minima=[(x, y), ...].")
    gx = np.linspace(box[0, 0], box[0, 1], resolution)
    gy = np.linspace(box[1, 0], box[1, 1], resolution)
    X0 = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    run = gradient_flow(loss, X0, t_end, method="RK45", rtol=1e-6, atol=1e-9, gtol=1e-4,
                        dense_output=False, t_eval=[0.0, t_end])
    end = run.x_final
    dist = np.linalg.norm(end[:, None, :] - minima[None], axis=2)
    labels = np.where(dist.min(axis=1) < 1e-2 * (1 + np.abs(box).max()), dist.argmin(axis=1),
                      -1).reshape(resolution, resolution)
    ax = axes_for(ax)
    import matplotlib.colors as mcolors
    colors = ["lightgrey"] + [f"C{i}" for i in range(len(minima))]
    ax.imshow(labels, origin="lower", extent=(*box[0], *box[1]), aspect="auto",
              cmap=mcolors.ListedColormap(colors), vmin=-1.5, vmax=len(minima) - 0.5,
              interpolation="nearest")
    ax.plot(minima[:, 0], minima[:, 1], "o", color="white", mec="k", ms=8, ls="none")
    names = [v.name for v in loss.variables]
    ax.set(xlabel=names[0], ylabel=names[1], title="basins of attraction of the flow")
    basin_legend(ax, minima, f"near no minimum at t = {t_end:g}")
    return ax


def surface(loss, trajectory=None, ax=None, *, bounds=None, resolution=60):
    """3-D surface of a 2-D loss with paths drawn on it.

    Parameters
    ----------
    loss : Loss or str
        A loss in two variables.
    trajectory : Trajectory or sequence of Trajectory, optional
    ax : 3-D matplotlib Axes, optional
        A new 3-D Axes when None.
    bounds : (low, high) or two pairs, optional
    resolution : int

    Returns
    -------
    mpl_toolkits.mplot3d.Axes3D
    """
    loss = _plane_loss(loss, "surface")
    trajs = as_list(trajectory, 2)
    resolution = int_between(resolution, "resolution", 2, 2000)
    box = plot_box(loss, bounds, trajs)
    ax = axes_for(ax, projection="3d")
    X, Y, Z = _grid(loss, box, resolution)
    ax.plot_surface(X, Y, Z, cmap="viridis", alpha=0.6, linewidth=0)
    for i, traj in enumerate(trajs):
        ax.plot(traj.xs[:, 0], traj.xs[:, 1], traj.values, label=traj.label,
                **path_style(traj, i))
    names = [v.name for v in loss.variables]
    ax.set(xlabel=names[0], ylabel=names[1], zlabel="L")
    return ax


def animate(loss, trajectories, path, *, bounds=None, frames=100, fps=20):
    """Flow and iterates moving together on the contour map, saved as a GIF (Pillow).

    Parameters
    ----------
    loss : Loss
        A loss in two variables.
    trajectories : sequence or dict of Trajectory
        All advance on one clock: frame f shows each path up to time f/frames of the
        longest; a discrete run shows its iterates with t_k up to then.
    path : str or path-like
        The GIF to write.
    frames, fps : int

    Returns
    -------
    matplotlib.animation.FuncAnimation
        Already saved to ``path``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    loss = as_loss(loss)
    trajs = as_list(trajectories, loss.n)
    if not trajs:
        raise ValueError("trajectories must hold at least one Trajectory to animate.")
    frames = int_between(frames, "frames", 1, 10_000)
    fps = int_between(fps, "fps", 1, 1000)
    writable_path(path, "path")
    ax = contour(loss, None, bounds=plot_box(as_loss(loss), bounds, trajs), critical=False)
    fig = ax.figure
    t_max = max(t.ts[-1] for t in trajs)
    lines, dots = [], []
    for i, traj in enumerate(trajs):
        style = path_style(traj, i)
        lines.append(ax.plot([], [], "-", color=style["color"], lw=1.5, label=traj.label)[0])
        dots.append(ax.plot([], [], style.get("marker", "o"), color=style["color"], mec="k",
                            ms=9)[0])
    unique_legend(ax)

    def draw(f):
        t = t_max * f / max(frames - 1, 1)
        for traj, line, dot in zip(trajs, lines, dots):
            k = np.searchsorted(traj.ts, t, side="right")
            xs = traj.xs[:max(k, 1)]
            line.set_data(xs[:, 0], xs[:, 1])
            dot.set_data([xs[-1, 0]], [xs[-1, 1]])
        return lines + dots

    anim = FuncAnimation(fig, draw, frames=frames, blit=True)
    anim.save(str(path), writer=PillowWriter(fps=fps))
    plt.close(fig)
    return anim
