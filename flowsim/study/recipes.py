"""Three questions researchers ask of many runs, each one sweep and one table.

``step_size_sweep``: which step sizes each method survives on a loss. ``basin_map``: where
the flow, GD(eta) and proximal point(eta) send each start of a grid, and where they disagree.
``time_to_tolerance``: how long each method takes to reach L - L* <= tol from many starts.
Each returns a :class:`~flowsim.study.Study`; :mod:`flowsim.plot` draws each.
"""
from __future__ import annotations

import numpy as np

from ..diagnostics.facts_on_demand import box_around, needed
from .._validate import as_loss, int_between, positive, start_points
from ..diagnostics.stability import stability
from .runner import grid_starts, sweep

__all__ = ["step_size_sweep", "basin_map", "time_to_tolerance", "disagreement"]

#: The flow of a basin map: which minimizer a path reaches needs no tight tolerance, and a
#: path is done once |grad L| <= 1e-4 (within about 1e-4 / lambda_min of its minimizer).
FLOW_OPTIONS = {"method": "RK45", "rtol": 1e-6, "atol": 1e-9, "gtol": 1e-4}


def _finite_or_none(value):
    """A float for the study's spec, or None where the theory gives no number."""
    return float(value) if np.isfinite(value) else None

def step_size_sweep(loss, x0, etas, methods=("gd", "hb", "nag"), steps=500, **kwargs):
    """Final loss and status against the step size, per method, from one start (or several).

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
    etas : array_like
        Step sizes, e.g. ``np.geomspace(1e-4, 1e-1, 40)``.
    methods : sequence of str
        Schemes from the registry.
    steps : int
    **kwargs
        Passed to :func:`~flowsim.sweep` (options, workers, executor, store, ...).

    Returns
    -------
    Study
        ``spec["max_stable_step"]`` and ``spec["best_step"]``: 2/lambda_max and
        2/(lambda_min + lambda_max) at the loss's known minimizer nearest the first start
        (or at the first start), the lines the picture marks.

    Examples
    --------
    >>> s = step_size_sweep("x**2/2 + 2*y**2", [1.0, 1.0], [0.1, 0.4, 0.6], ("gd",), 200)
    >>> s.runs["status"].tolist(), s.spec["max_stable_step"]
    (['reached_end', 'reached_end', 'diverged'], 0.5)
    """
    loss = as_loss(loss)
    X = np.atleast_2d(start_points(x0, loss.n))
    study = sweep(loss, methods, starts=X, etas=etas, steps=steps, **kwargs)
    anchor = X[0]
    if loss.facts is not None and loss.facts.minimizers.size:
        mins = loss.facts.minimizers
        anchor = mins[np.argmin(np.linalg.norm(mins - anchor, axis=1))]
    report = stability(loss, anchor)
    study.spec.update(max_stable_step=_finite_or_none(report.max_stable_step),
                      best_step=_finite_or_none(report.best_step), stability=report.kind,
                      recipe="step_size_sweep")
    return study


#: Most steps a recipe derives by itself from t_end / eta (an explicit steps= may be more).
MAX_DERIVED_STEPS = 10 ** 7

def basin_map(loss, eta=0.01, resolution=100, *, bounds=None, steps=None, t_end=None,
              methods=("gradient_flow", "gd", "pp"), **kwargs):
    """Which known minimizer each method reaches from each point of a grid.

    Parameters
    ----------
    loss : Loss or str
        A loss in two variables whose facts list its minimizers (named losses do).
    eta : float
        Step of the schemes.
    resolution : int
        Grid points per side (500 gives 250,000 starts).
    bounds : (low, high) or two pairs, optional
        The window; the loss's usual box by default.
    steps, t_end : optional
        Scheme steps (default: t_end / eta) and the flow's span (default 20).
    methods : sequence of str
        The flow first (the reference of :func:`disagreement`), then schemes.
    **kwargs
        Passed to :func:`~flowsim.sweep`; the flow runs with :data:`FLOW_OPTIONS` unless
        ``options={"gradient_flow": {...}}`` says otherwise.

    Returns
    -------
    Study
        ``runs["minimizer"]`` per method and start (-1: none); :func:`disagreement` gives the
        fraction of starts where each scheme ends elsewhere than the flow.

    Examples
    --------
    >>> from flowsim import losses
    >>> s = basin_map(losses.double_well(), eta=0.05, resolution=20, bounds=(-2, 2),
    ...               progress=False)
    >>> sorted(disagreement(s))
    ['gradient_descent', 'proximal_point']
    """
    loss, source = needed(loss, "minimizers", bounds=bounds, where="a basin map")
    resolution = int_between(resolution, "resolution", 2, 4000)
    eta = positive(eta, "eta")
    t_end = positive(t_end, "t_end") if t_end is not None else 20.0
    if steps is None:
        steps = int(np.ceil(t_end / eta))
        if steps > MAX_DERIVED_STEPS:
            raise ValueError(f"eta: t_end / eta = {t_end:g} / {eta:g} makes {steps:.3g} steps "
                             f"per start, over {MAX_DERIVED_STEPS:.0e}; give a larger eta, a "
                             "shorter t_end, or steps= explicitly.")
    starts = grid_starts(loss, resolution, bounds)
    options = {"gradient_flow": dict(FLOW_OPTIONS)} | dict(kwargs.pop("options", None) or {})
    study = sweep(loss, methods, starts=starts, etas=[eta], steps=steps, t_end=t_end,
                  options=options, **kwargs)
    study.spec.update(resolution=resolution, recipe="basin_map", minimizers_source=source,
                      minimizers=loss.facts.minimizers.tolist(),
                      bounds=np.asarray(bounds if bounds is not None else
                                        loss.facts.bounds, dtype=float).tolist())
    return study


def disagreement(study, reference="gradient_flow"):
    """Fraction of starts where each other method reaches another minimizer than
    ``reference`` (a dict of method to fraction)."""
    runs = study.runs
    ref = runs[runs["method"] == reference].set_index("start")["minimizer"]
    out = {}
    for method, group in runs[runs["method"] != reference].groupby("method"):
        mine = group.set_index("start")["minimizer"]
        out[method] = float((mine != ref.reindex(mine.index)).mean())
    return out


def time_to_tolerance(loss, starts, tol=1e-8, methods=("gradient_flow", "gd", "hb", "nag"),
                      eta=1e-3, steps=20_000, t_end=None, *, min_value=None, bounds=None,
                      **kwargs):
    """First time at which L - L* <= tol, per method and start (nan: never within the run).

    Parameters
    ----------
    loss : Loss or str
        L* is ``min_value=``, else the loss's known minimum value, else the lowest minimum
        :func:`flowsim.with_facts` finds in ``bounds`` (by default a box around the starts);
        ``spec["min_value_source"]`` says which.
    starts : array_like, shape (m, n)
    tol : float
    methods : sequence of str
    eta, steps : float, int
        The schemes' step and budget; the flows run to ``t_end`` (default eta * steps).

    Returns
    -------
    Study
        ``runs["time_to_tol"]`` (nan where a run never got there) and
        ``runs["iterations_to_tol"]`` (the iteration k of that time, for schemes); time is
        the flow's time (k eta for GD, k sqrt(eta) for the momentum methods).

    Examples
    --------
    >>> s = time_to_tolerance("(x - 1)**2 + 10*y**2", [[2.0, 1.0]], 1e-6, ("gd",), eta=0.05,
    ...                       steps=400, progress=False)
    >>> s.spec["min_value"], s.spec["min_value_source"]
    (0.0, 'critical_points on [[1.0, 3.0], [0.0, 2.0]]: proven')
    >>> bool(s.runs["time_to_tol"].notna().all())
    True
    """
    loss = as_loss(loss)
    X = np.atleast_2d(start_points(starts, loss.n))
    loss, source = needed(loss, "min_value", min_value=min_value,
                          bounds=bounds if bounds is not None else (
                              None if loss.facts is not None and loss.facts.bounds is not None
                              else box_around(X)), where="time_to_tolerance")
    star = min_value if min_value is not None else loss.facts.min_value
    study = sweep(loss, methods, starts=X, etas=[eta], steps=steps,
                  t_end=t_end if t_end is not None else eta * steps, tol=tol,
                  min_value=star, **kwargs)
    study.spec.update(min_value=float(star), min_value_source=source,
                      recipe="time_to_tolerance")
    return study
