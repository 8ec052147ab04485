"""``flowsim.sweep``: losses x methods x step sizes x starts, in chunks, on any executor."""
from __future__ import annotations

import sys

import numpy as np

from .. import methods as registry
from .._validate import as_loss, int_between, mapping, positive, start_points, step_count
from ..ensemble.workers import process_pool
from ..loss import Loss
from .chunk import Task, derived_seed, run_chunk
from .store import ChunkStore, assemble

__all__ = ["sweep", "grid_starts"]

#: Starts per chunk by default: large enough that a batch amortizes its overhead.
CHUNK_SIZE = 5_000


def grid_starts(loss, resolution, bounds=None):
    """A ``resolution`` x ``resolution`` grid over a 2-D loss's box (its facts' bounds by
    default), shape (resolution**2, 2), x fastest."""
    from .._validate import check_bounds
    loss = as_loss(loss)
    resolution = int_between(resolution, "resolution", 2, 10_000)
    if bounds is None:
        if loss.facts is None or loss.facts.bounds is None:
            raise ValueError("bounds: this loss has no usual box; give bounds=(low, high).")
        bounds = loss.facts.bounds
    box = check_bounds(bounds, loss.n)
    if loss.n != 2:
        raise ValueError(f"a grid of starts needs a loss in two variables, got n = {loss.n}.")
    gx = np.linspace(box[0, 0], box[0, 1], resolution)
    gy = np.linspace(box[1, 0], box[1, 1], resolution)
    return np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)


def _losses(losses):
    if isinstance(losses, (Loss, str)):
        losses = [losses]
    if isinstance(losses, dict):
        items = list(losses.items())
    else:
        items = []
        for loss in losses:
            loss = as_loss(loss)
            name = loss.facts.name if loss.facts is not None else str(loss.expr)
            items.append((name, loss))
    if not items:
        raise ValueError("losses must name at least one loss.")
    return [(str(name), as_loss(loss)) for name, loss in items]


def _methods(names):
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    records = [registry.get(name) for name in names]
    if not records:
        raise ValueError("methods must name at least one registered method, e.g. ('gd',).")
    return records


def _tasks(losses, records, etas, steps, t_end, options, reference, tol, min_value, paths,
           seed):
    tasks = []
    for name, loss in losses:
        for record in records:
            opts = dict(options.get(record.name, options.get(record.short, {})))
            if "samples" in record.accepts and "seed" not in opts:
                opts["seed"] = derived_seed(seed, name, record.name)
            cells = [np.nan] if record.kind == "flow" else etas
            for eta in cells:
                star = min_value if min_value is not None else (
                    loss.facts.min_value if loss.facts is not None else None)
                tasks.append(Task(len(tasks), name, loss, record.name, float(eta),
                                  steps, t_end, opts, reference, tol, star, paths))
    return tasks


def _executor(workers, executor):
    if executor is not None:
        if not hasattr(executor, "submit"):
            raise TypeError("executor must have submit() (a concurrent.futures.Executor or a "
                            f"dask.distributed.Client), got {type(executor).__name__}.")
        return executor, False
    if workers is None or workers == 1:
        return None, False
    return process_pool(workers), True


def _progress(total, progress):
    show = sys.stderr.isatty() if progress is None else bool(progress)
    if not show or total < 2:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="sweep", unit="chunk")


def sweep(losses, methods, *, starts=None, resolution=None, bounds=None, etas=None,
          steps=None, t_end=None, options=None, reference=False, tol=None, min_value=None,
          paths=False, chunk_size=CHUNK_SIZE, workers=None, executor=None, store=None,
          resume=False, progress=None, seed=0):
    r"""Run every method at every step size from every start on every loss.

    Parameters
    ----------
    losses : Loss, str, sequence of them, or dict of name to Loss
    methods : sequence of str
        Registry names or short names (:mod:`flowsim.methods`), flows and schemes.
    starts : array_like, shape (m, n), optional
        The starts; or ``resolution`` (and ``bounds``) for a grid over a 2-D loss's box.
    etas : array_like, optional
        Step sizes of the schemes (required when a scheme is swept).
    steps : int, optional
        Steps of every scheme (required when a scheme is swept).
    t_end : float, optional
        Time span of the flows (by default ``steps * max(etas)``).
    options : dict of str to dict, optional
        Keyword arguments per method, e.g. ``{"hb": {"momentum": 0.8}}``.
    reference : bool
        Also integrate the gradient flow from each start and report each scheme run's
        largest distance to it (``deviation``).
    tol : float, optional
        Report ``time_to_tol``, the first time with L - L* <= tol (L* from ``min_value`` or
        the loss's facts).
    paths : bool
        Keep every run's path (long rows in ``Study.paths``).
    chunk_size : int
        Starts per chunk; a chunk runs as one batch.
    workers : int, optional
        Local processes; or ``executor``: a ``concurrent.futures.Executor`` or a
        ``dask.distributed.Client``.
    store : str, optional
        A folder where each finished chunk is written (Parquet); with ``resume=True`` a
        sweep continues from the chunks found there.
    progress : bool, optional
        A tqdm bar over chunks (default: only on a terminal).
    seed : int
        Seeds of stochastic methods derive from it and each run's identity, so the rows are
        the same whatever the executor, workers and chunking.

    Returns
    -------
    Study

    Notes
    -----
    The runs are the product :math:`\{losses\} \times \{methods\} \times \{\eta\} \times
    \{x_0\}` (flows once per start, without a step size).

    Examples
    --------
    >>> study = sweep("x**2 + 10*y**2", ["gd"], starts=[[1.0, 1.0]], etas=[0.05, 0.15],
    ...               steps=40)
    >>> study.runs[["eta", "status"]].values.tolist()
    [[0.05, 'reached_end'], [0.15, 'diverged']]
    """
    items = _losses(losses)
    records = _methods(methods)
    tol = positive(tol, "tol") if tol is not None else None
    chunk_size = int_between(chunk_size, "chunk_size", 1, 10 ** 9)
    if starts is None and resolution is None:
        raise ValueError("starts: give the starts (m, n), or resolution= for a grid.")
    X = start_points(starts, items[0][1].n) if starts is not None else \
        grid_starts(items[0][1], resolution, bounds)
    X = np.atleast_2d(X)
    if any(loss.n != X.shape[1] for _, loss in items):
        raise ValueError("losses: every loss in one sweep must have the starts' n variables.")
    schemes = [r for r in records if r.kind == "scheme"]
    if schemes:
        if etas is None or steps is None:
            raise ValueError("etas and steps are required to sweep schemes, e.g. "
                             "etas=np.geomspace(1e-3, 1e-1, 20), steps=500.")
        etas = np.atleast_1d(np.asarray(etas, dtype=float))
        if etas.ndim != 1 or not np.all(np.isfinite(etas)) or np.any(etas <= 0):
            raise ValueError("etas must be finite step sizes > 0.")
        steps = step_count(steps, "steps", X.shape[1], min(len(X), chunk_size),
                           1 if (paths or tol is not None or reference) else None)
    else:
        etas = np.array([np.nan])
    if any(r.kind == "flow" for r in records):
        t_end = positive(t_end, "t_end") if t_end is not None else \
            (float(steps * np.max(etas)) if schemes else None)
        if t_end is None:
            raise ValueError("t_end is required to sweep flows.")
    options = mapping(options, "options")
    tasks = _tasks(items, records, etas, steps, t_end, options, bool(reference), tol,
                   min_value, bool(paths), seed)
    spec = {"losses": [name for name, _ in items], "methods": [r.name for r in records],
            "etas": [float(e) for e in etas], "steps": steps, "t_end": t_end,
            "starts": X.tolist() if X.size <= 2_000 else f"{X.shape} array",
            "options": {k: {kk: repr(vv) for kk, vv in v.items()} for k, v in options.items()},
            "reference": bool(reference), "tol": tol, "paths": bool(paths),
            "chunk_size": chunk_size, "seed": seed}
    keys = [(task.index, c) for task in tasks for c in range(-(-len(X) // chunk_size))]
    chunks = ChunkStore(store) if store is not None else None
    done = {}
    if chunks is not None:
        chunks.open(spec, resume)
        done = {key: chunks.get(key) for key in chunks.keys() if key in set(keys)}
    todo = [key for key in keys if key not in done]
    pool, own = _executor(workers, executor)
    bar = _progress(len(todo), progress)

    def args(key):
        rows = np.arange(key[1] * chunk_size, min((key[1] + 1) * chunk_size, len(X)))
        return tasks[key[0]], rows, X[rows]

    try:
        if pool is None:
            for key in todo:
                done[key] = _finished(chunks, key, run_chunk(*args(key)), bar)
        else:
            futures = {key: pool.submit(run_chunk, *args(key)) for key in todo}
            for key, future in futures.items():
                done[key] = _finished(chunks, key, future.result(), bar)
    finally:
        if own:
            pool.shutdown()
        if bar is not None:
            bar.close()
    return assemble([done[key] for key in keys], spec)


def _finished(chunks, key, result, bar):
    if chunks is not None:
        chunks.put(key, *result)
    if bar is not None:
        bar.update()
    return result
