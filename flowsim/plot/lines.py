"""Pictures over time and over the spectrum: L - L*, the distance to the flow, the Hessian's
eigenvalues, step-size factors, and the three-panel comparison figure."""
from __future__ import annotations

import numpy as np

from .._validate import as_loss, finite, hessian_at, int_between, optional, positive
from .maps import contour
from .style import (axes_for, check_comparison, comparison_paths, draw_path, figure_legend,
                    fit_log_axis, positive_part, unique_legend)

__all__ = ["values", "deviation", "spectrum", "stability_picture", "comparison_figure"]


def values(trajectories, ax=None, *, min_value=0.0, source=None, x="auto"):
    """V = L - L* against time (or steps), on a log scale, for flows and schemes.

    Parameters
    ----------
    trajectories : Comparison, Trajectory, or sequence/dict of Trajectory
    min_value : float
        L* to subtract (the known minimum value, 0 by default).
    source : str, optional
        Where L* came from, for the axis label.
    ax : matplotlib Axes, optional
    x : {"auto", "time", "steps"}
        The horizontal axis. ``"time"``: each path at its own time (a scheme's iterate k at
        t_k on its ODE). ``"steps"`` (a Comparison only): every scheme at its step k and
        each flow at k = the step its scheme reaches at that time, so schemes whose steps
        cover different times (gradient descent t = k eta, heavy ball and Nesterov
        t = k sqrt(eta)) compare like with like. ``"auto"``: steps for a Comparison whose
        schemes step through time at different rates, time otherwise.

    Returns
    -------
    matplotlib.axes.Axes
        One line per trajectory (for a batch, one per start), in the method's colour. Points
        with L - L* <= 0 are gaps; the axis spans the data.
    """
    min_value = finite(min_value, "min_value")
    if x not in ("auto", "time", "steps"):
        raise ValueError(f"x must be 'auto', 'time' or 'steps', got {x!r}.")
    is_comparison = hasattr(trajectories, "schemes") and hasattr(trajectories, "flows")
    if x == "steps" and not is_comparison:
        raise ValueError("x='steps' needs a Comparison (it places each flow on its scheme's "
                         "steps); pass x='time' for plain trajectories.")
    if x == "auto":
        x = "steps" if is_comparison and _mixed_time_scales(trajectories) else "time"
    ax = axes_for(ax)
    trajs = comparison_paths(trajectories)
    clocks = _step_clocks(trajectories) if x == "steps" else {}
    drawn = []
    for i, traj in enumerate(trajs):
        V = positive_part(traj.values - min_value)
        drawn.append(V)
        where = clocks[id(traj)](traj.ts) if x == "steps" else traj.ts
        draw_path(ax, where, V.T, traj, i, label=traj.label, log=True)
    fit_log_axis(ax, drawn)
    ax.set(xlabel="t" if x == "time" else "step k (a flow at its scheme's k for the same t)",
           ylabel=f"L - L*  (L* = {min_value:.6g}" + (f", {source})" if source else ")"))
    unique_legend(ax)
    return ax


def _mixed_time_scales(comparison):
    """Whether the schemes' first steps cover different amounts of time."""
    steps = [t.ts[1] - t.ts[0] for t in comparison.schemes.values() if len(t.ts) > 1]
    return len(steps) > 1 and max(steps) > 1.01 * min(steps)


def _step_clocks(comparison):
    """For every path of a Comparison, t -> step k: a scheme's index, a flow's time read on
    the (first) scheme that references it (interpolated, so schedules work too)."""
    clocks = {}
    for name, traj in comparison.schemes.items():
        clocks[id(traj)] = (lambda ts, _n=len(traj.ts): np.arange(_n, dtype=float))
        flow = comparison.flows[comparison.references[name]]
        clocks.setdefault(id(flow), lambda ts, _s=traj.ts: _steps_at(ts, _s))
    return clocks


def _steps_at(ts, scheme_ts):
    """The (fractional) step at which a scheme with times ``scheme_ts`` reaches each t;
    linear past its ends."""
    k = np.arange(len(scheme_ts), dtype=float)
    if len(scheme_ts) < 2:
        return np.zeros_like(ts)
    out = np.interp(ts, scheme_ts, k)
    h0, h1 = scheme_ts[1] - scheme_ts[0], scheme_ts[-1] - scheme_ts[-2]
    out = np.where(ts > scheme_ts[-1], k[-1] + (ts - scheme_ts[-1]) / h1, out)
    return np.where(ts < scheme_ts[0], (ts - scheme_ts[0]) / h0, out)


def deviation(comparison, ax=None):
    """Per-step deviation |x_k - x(t_k)| of each scheme from its flow (log scale).

    Parameters
    ----------
    comparison : Comparison
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One line per scheme, from step 1, in the scheme's colour and marker.
    """
    check_comparison(comparison)
    ax = axes_for(ax)
    for i, (name, dev) in enumerate(comparison.deviation.items()):
        traj = comparison.schemes[name]
        draw_path(ax, np.arange(len(dev))[1:], positive_part(dev[1:]), traj, i,
                  label=traj.label, log=True)
    ax.set(xlabel="step k", ylabel="|x_k - x(t_k)|")
    unique_legend(ax)
    return ax


def stability_picture(loss, x, ax=None, *, eta_max=None, n=400):
    """Per-direction factors against eta at ``x``: |1 - eta lambda_i| (GD, solid) and
    1/(1 + eta lambda_i) (proximal point, dashed), with 2/lambda_max marked.

    Parameters
    ----------
    loss : Loss or str
    x : array_like, shape (n,)
        Where the Hessian is taken (usually a minimizer).
    ax : matplotlib Axes, optional
    eta_max : float, optional
        Right end of the eta axis (3/lambda_max by default).
    n : int
        Points on the eta axis.

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
    ax = axes_for(ax)
    for i, l in enumerate(lam):
        ax.plot(eta, np.abs(1 - eta * l), "-", color=f"C{i}", label=f"GD, lambda={l:.3g}")
        ax.plot(eta, 1 / (1 + eta * l), "--", color=f"C{i}", label=f"prox, lambda={l:.3g}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axvline(2 / top, color="tab:red", lw=1.2, ls=":", label=f"2/lambda_max = {2 / top:.3g}")
    ax.set(xlabel="eta", ylabel="factor per step", ylim=(0, 2))
    unique_legend(ax, fontsize=7)
    return ax


def spectrum(loss, x, ax=None):
    """The Hessian spectrum at ``x`` as a stem plot, with zero marked.

    Parameters
    ----------
    loss : Loss or str
    x : array_like, shape (n,)
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        The stems hold the eigenvalues (ascending) against their index.
    """
    loss, x, H = hessian_at(loss, x)
    lam = np.linalg.eigvalsh(H)
    ax = axes_for(ax)
    ax.stem(np.arange(1, lam.size + 1), lam)
    ax.axhline(0.0, color="k", lw=0.8)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # an index axis
    ax.set(xlabel="i", ylabel="lambda_i", title="Hessian spectrum")
    return ax


def comparison_figure(comparison, loss):
    """Three panels for a :class:`~flowsim.Comparison`: the paths on the contour map (2-D
    losses), L - L* over time, and the per-step deviation; each method in its one colour.

    Parameters
    ----------
    comparison : Comparison
    loss : Loss or str
        The loss the comparison ran on (for the map and L*).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    check_comparison(comparison)
    loss = as_loss(loss)
    panels = 3 if loss.n == 2 else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.4))
    if loss.n == 2:
        contour(loss, comparison_paths(comparison), ax=axes[0], critical=True)
        axes[0].set_title("paths")
    from ..diagnostics.facts_on_demand import min_value_along
    trajs = comparison_paths(comparison)
    min_value, source = min_value_along(loss, np.concatenate([np.reshape(t.xs, (-1, loss.n))
                                                              for t in trajs]),
                                        np.concatenate([np.ravel(t.values) for t in trajs]),
                                        time_limit=5.0)
    values(comparison, ax=axes[-2], min_value=min_value, source=source)
    axes[-2].set_title("L - L* along the way")
    deviation(comparison, ax=axes[-1])
    own = {comparison.references[name] for name in comparison.schemes}
    reference = (f"the {next(iter(own)).replace('_', ' ')}" if len(own) == 1
                 else "each scheme's own ODE")
    axes[-1].set_title(f"distance to {reference} (eta = {comparison.eta:g})", fontsize=10)
    rows = figure_legend(fig, list(axes))
    fig.tight_layout(rect=(0, 0.02 + 0.045 * rows, 1, 1) if rows else None)
    return fig
