"""Pictures of flows, schemes and diagnostics (matplotlib, imported lazily).

Every function takes ``ax=None`` (a new figure is made when it is None), returns the Axes
(or the Figure, for multi-panel views) and never calls ``plt.show()``.
"""
from __future__ import annotations

import numpy as np

from ._validate import (as_loss, finite, int_between, optional, positive, real_array,
                        writable_path)
from .diagnostics.critical import check_bounds, critical_points, hessian_at
from .facts import PointKind
from .trajectory import BatchTrajectory, Trajectory

__all__ = ["contour", "values", "deviation", "spectrum", "stability_picture", "basins",
           "surface",
           "comparison_figure", "animate", "KIND_STYLE"]

#: Marker and colour per critical-point kind.
KIND_STYLE = {PointKind.MINIMUM: ("o", "tab:green"), PointKind.MAXIMUM: ("^", "tab:red"),
              PointKind.SADDLE: ("X", "tab:orange"), PointKind.DEGENERATE: ("D", "tab:purple")}


def _axes(ax, projection=None):
    if ax is not None:
        if not hasattr(ax, "plot") or not hasattr(ax, "figure"):
            raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}.")
        return ax
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(6, 5))
    return fig.add_subplot(projection=projection)


def _as_list(trajectories, n=None):
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


def _comparison(obj):
    from .compare import Comparison
    if not isinstance(obj, Comparison):
        raise TypeError(f"comparison must be a flowsim.Comparison (from flowsim.compare), got "
                        f"{type(obj).__name__}.")


def _box(loss, bounds, trajectories, pad=0.15):
    if bounds is not None:
        return check_bounds(bounds, 2)
    if loss.facts is not None and loss.facts.box is not None:
        return np.array(loss.facts.box, dtype=float)
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
    Z = loss._values(np.stack([X, Y], axis=-1))
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
    loss = as_loss(loss)
    if loss.n != 2:
        raise ValueError(f"contour needs a loss in two variables, got n = {loss.n}.")
    trajs = _as_list(trajectories, 2)
    levels = int_between(levels, "levels", 2, 500)
    resolution = int_between(resolution, "resolution", 2, 4000)
    box = _box(loss, bounds, trajs)
    ax = _axes(ax)
    X, Y, Z = _grid(loss, box, resolution)
    finite = np.isfinite(Z)
    shift = np.nanmin(np.where(finite, Z, np.nan))
    ax.contourf(X, Y, np.log1p(np.where(finite, Z - shift, np.nan)), levels=levels,
                cmap="viridis", alpha=0.85)
    ax.contour(X, Y, np.log1p(np.where(finite, Z - shift, np.nan)), levels=levels,
               colors="k", linewidths=0.3, alpha=0.5)
    for i, traj in enumerate(trajs):
        color = f"C{(i + 1) % 10}"
        paths = traj.xs if isinstance(traj, BatchTrajectory) else [traj.xs]
        for j, xs in enumerate(paths):
            label = traj.method if j == 0 else None
            if traj.dense is not None:
                ax.plot(xs[:, 0], xs[:, 1], "-", color=color, lw=2, label=label)
            else:
                ax.plot(xs[:, 0], xs[:, 1], "-", color=color, lw=0.7, marker="o", ms=2.5,
                        label=label)
            ax.plot(xs[0, 0], xs[0, 1], "s", color="k", ms=6)
    if critical is True:
        critical = critical_points(loss, box)
    for cp in critical or ():
        marker, color = KIND_STYLE[cp.kind]
        ax.plot(cp.point[0], cp.point[1], marker, color=color, mec="k", ms=9, ls="none")
    names = [v.name for v in loss.variables]
    ax.set(xlim=box[0], ylim=box[1], xlabel=names[0], ylabel=names[1])
    if trajs:
        ax.legend(loc="best", fontsize=8)
    return ax


def values(trajectories, ax=None, *, l_star=0.0):
    """V = L - L* against time, on a log scale, for flows and schemes.

    Parameters
    ----------
    trajectories : Comparison, Trajectory, or sequence/dict of Trajectory
    l_star : float
        L* to subtract (the known minimum value, 0 by default).
    """
    l_star = finite(l_star, "l_star")
    ax = _axes(ax)
    trajs = _comparison_paths(trajectories)
    for traj in trajs:
        V = np.maximum(traj.values - l_star, 1e-300)
        style = dict(lw=2) if traj.dense is not None else dict(lw=0.8, marker=".", ms=3)
        ax.semilogy(traj.ts, V, label=traj.method, **style)
    ax.set(xlabel="t", ylabel="L - L*")
    ax.legend(fontsize=8)
    return ax


def _comparison_paths(obj):
    if hasattr(obj, "schemes") and hasattr(obj, "flows"):
        return list(obj.flows.values()) + list(obj.schemes.values())
    return _as_list(obj)


def deviation(comparison, ax=None):
    """Per-step deviation |x_k - x(t_k)| of each scheme from its flow (log scale)."""
    _comparison(comparison)
    ax = _axes(ax)
    for name, dev in comparison.deviation.items():
        ax.semilogy(np.arange(len(dev))[1:], np.maximum(dev[1:], 1e-300), label=name)
    ax.set(xlabel="step k", ylabel="|x_k - x(t_k)|")
    ax.legend(fontsize=8)
    return ax


def stability_picture(loss, x, ax=None, *, eta_max=None, n=400):
    """Per-direction factors against eta at ``x``: |1 - eta lambda_i| (GD, solid) and
    1/(1 + eta lambda_i) (proximal point, dashed), with 2/lambda_max marked.

    Returns
    -------
    matplotlib.axes.Axes
        Lines: one GD and one proximal-point curve per eigenvalue, the level 1, the
        2/lambda_max marker.
    """
    loss, x, H = hessian_at(loss, x)
    eta_max = optional(positive, eta_max, "eta_max")
    n = int_between(n, "n", 2, 100_000)
    lam = np.linalg.eigvalsh(H)
    top = lam.max()
    if not top > 0:
        raise ValueError("x: the Hessian has no positive eigenvalue, so no step limit exists.")
    eta = np.linspace(0, eta_max or 3 / top, n)
    ax = _axes(ax)
    for i, l in enumerate(lam):
        ax.plot(eta, np.abs(1 - eta * l), "-", color=f"C{i}", label=f"GD, lambda={l:.3g}")
        ax.plot(eta, 1 / (1 + eta * l), "--", color=f"C{i}", label=f"prox, lambda={l:.3g}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axvline(2 / top, color="tab:red", lw=1.2, ls=":", label=f"2/lambda_max = {2 / top:.3g}")
    ax.set(xlabel="eta", ylabel="factor per step", ylim=(0, 2))
    ax.legend(fontsize=7)
    return ax


def spectrum(loss, x, ax=None):
    """The Hessian spectrum at ``x`` as a stem plot, with zero marked.

    Returns
    -------
    matplotlib.axes.Axes
        The stems hold the eigenvalues (ascending) against their index.
    """
    loss, x, H = hessian_at(loss, x)
    lam = np.linalg.eigvalsh(H)
    ax = _axes(ax)
    ax.stem(np.arange(1, lam.size + 1), lam)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set(xlabel="i", ylabel="lambda_i", title="Hessian spectrum")
    return ax


def basins(loss, ax=None, *, bounds=None, resolution=60, t_end=20.0, minima=None):
    """Basins of attraction: which minimum the gradient flow from each grid point reaches.

    Uses one batched flow over all grid points (RK45). Points that end near no minimum
    are grey.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.images[0]`` holds the basin labels (-1 for none).
    """
    from .flow import gradient_flow
    loss = as_loss(loss)
    if loss.n != 2:
        raise ValueError(f"basins needs a loss in two variables, got n = {loss.n}.")
    resolution = int_between(resolution, "resolution", 2, 2000)
    t_end = positive(t_end, "t_end")
    box = _box(loss, bounds, [])
    if minima is None:
        minima = [c.point for c in critical_points(loss, box) if c.kind is PointKind.MINIMUM]
    minima = real_array(minima, "minima").reshape(-1, 2) if len(minima) else np.empty((0, 2))
    if not np.all(np.isfinite(minima)):
        raise ValueError("minima must be finite points of shape (k, 2).")
    if not len(minima):
        raise ValueError("basins: no minimum was found in the box; widen bounds= or give the "
                         "minima with minima=[(x, y), ...].")
    gx = np.linspace(box[0, 0], box[0, 1], resolution)
    gy = np.linspace(box[1, 0], box[1, 1], resolution)
    X0 = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    run = gradient_flow(loss, X0, t_end, "RK45", rtol=1e-6, atol=1e-9, dense_output=False,
                        t_eval=[t_end])
    end = run.x_final
    dist = np.linalg.norm(end[:, None, :] - minima[None], axis=2)
    labels = np.where(dist.min(axis=1) < 1e-2 * (1 + np.abs(box).max()), dist.argmin(axis=1),
                      -1).reshape(resolution, resolution)
    ax = _axes(ax)
    import matplotlib.colors as mcolors
    colors = ["lightgrey"] + [f"C{i}" for i in range(len(minima))]
    ax.imshow(labels, origin="lower", extent=(*box[0], *box[1]), aspect="auto",
              cmap=mcolors.ListedColormap(colors), vmin=-1.5, vmax=len(minima) - 0.5)
    ax.plot(minima[:, 0], minima[:, 1], "o", color="white", mec="k", ms=8, ls="none")
    names = [v.name for v in loss.variables]
    ax.set(xlabel=names[0], ylabel=names[1], title="basins of attraction of the flow")
    return ax


def surface(loss, trajectory=None, ax=None, *, bounds=None, resolution=60):
    """3-D surface of a 2-D loss with a path drawn on it (a new 3-D Axes when ax is None)."""
    loss = as_loss(loss)
    if loss.n != 2:
        raise ValueError(f"surface needs a loss in two variables, got n = {loss.n}.")
    trajs = _as_list(trajectory, 2)
    resolution = int_between(resolution, "resolution", 2, 2000)
    box = _box(loss, bounds, trajs)
    ax = _axes(ax, projection="3d")
    X, Y, Z = _grid(loss, box, resolution)
    ax.plot_surface(X, Y, Z, cmap="viridis", alpha=0.6, linewidth=0)
    for i, traj in enumerate(trajs):
        ax.plot(traj.xs[:, 0], traj.xs[:, 1], traj.values, color=f"C{(i + 1) % 10}", lw=2,
                label=traj.method)
    names = [v.name for v in loss.variables]
    ax.set(xlabel=names[0], ylabel=names[1], zlabel="L")
    return ax


def comparison_figure(comparison, loss):
    """Three panels for a :class:`~flowsim.Comparison`: the paths on the contour map (2-D
    losses), the loss gap over time, and the per-step deviation. Returns the Figure."""
    import matplotlib.pyplot as plt
    _comparison(comparison)
    loss = as_loss(loss)
    panels = 3 if loss.n == 2 else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.4))
    if loss.n == 2:
        contour(loss, _comparison_paths(comparison), ax=axes[0], critical=True)
        axes[0].set_title("paths")
    l_star = loss.facts.min_value if loss.facts and loss.facts.min_value is not None else \
        min(float(np.min(t.values)) for t in _comparison_paths(comparison))
    values(comparison, ax=axes[-2], l_star=l_star)
    axes[-2].set_title("L - L* along the way")
    deviation(comparison, ax=axes[-1])
    axes[-1].set_title(f"distance to the flow (eta = {comparison.eta:g})")
    fig.tight_layout()
    return fig


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
    trajs = _as_list(trajectories, loss.n)
    if not trajs:
        raise ValueError("trajectories must hold at least one Trajectory to animate.")
    frames = int_between(frames, "frames", 1, 10_000)
    fps = int_between(fps, "fps", 1, 1000)
    writable_path(path, "path")
    ax = contour(loss, None, bounds=_box(as_loss(loss), bounds, trajs), critical=False)
    fig = ax.figure
    t_max = max(t.ts[-1] for t in trajs)
    lines, dots = [], []
    for i, traj in enumerate(trajs):
        color = f"C{(i + 1) % 10}"
        lines.append(ax.plot([], [], "-", color=color, lw=1.5, label=traj.method)[0])
        dots.append(ax.plot([], [], "o", color=color, mec="k", ms=9)[0])
    ax.legend(loc="best", fontsize=8)

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
