"""``flowsim.sweep``: losses x methods x step sizes x starts, in chunks, on any executor."""
from __future__ import annotations

import dataclasses
import inspect
import sys

import numpy as np

from .. import methods as registry
from .._validate import (as_loss, check_recorded, finite, int_between, mapping, positive,
                         seed_value, start_points, step_count, writable_folder)
from ..ensemble.workers import run_calls, worker_count
from ..loss import Loss
from . import chunk as chunk_module
from .chunk import Task, derived_seed, failed_rows, run_chunk
from .identity import fingerprint, loss_parts
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
    for record in records:   # the record says whether the method takes a batch of starts
        if "batch" not in record.accepts:
            batched = ", ".join(m.name for m in registry.REGISTRY.values()
                                if "batch" in m.accepts and m.kind == record.kind)
            raise ValueError(f"methods: {record.name} runs one start at a time and a sweep "
                             f"runs each chunk as one batch; sweep a batch-capable {record.kind} "
                             f"({batched}) or loop over starts yourself.")
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


def _check_options(options, records):
    """Every method's options by name against its signature, before any chunk runs."""
    for key, opts in options.items():
        registry.get(key)   # a registered method (options of one not swept are unused)
        if not isinstance(opts, dict):
            raise TypeError(f"options[{key!r}] must be a dict of keyword arguments, got "
                            f"{type(opts).__name__}.")
    for record in records:
        params = inspect.signature(record.function).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for key in options.get(record.name, options.get(record.short, {})):
            if key in RESERVED or (key not in params and not takes_any):
                raise ValueError(f"options[{record.name!r}]: {key!r} is not an option of "
                                 f"{record.name}" + (" (the sweep sets it)" if key in RESERVED
                                                     else "") + "; remove it.")


#: Arguments a sweep gives every run itself.
RESERVED = frozenset({"loss", "x0", "eta", "steps", "t_end", "record", "t_eval",
                      "dense_output", "workers", "executor", "chunk_size"})


def _probe(tasks, X):
    """Run each distinct (method, options) once on one start for one step, so that an option
    the method refuses is refused before the first chunk (one sentence, naming it)."""
    seen = set()
    for task in tasks:
        key = (task.method, fingerprint(task.options))
        if key in seen:
            continue
        seen.add(key)
        probe = dataclasses.replace(task, steps=1 if task.steps else None,
                                    t_end=min(task.t_end, 1e-6) if task.t_end else None,
                                    reference=False, paths=False, tol=None)
        try:
            chunk_module.run_chunk(probe, np.arange(1), X[:1])
        except (TypeError, ValueError) as error:
            raise type(error)(f"options[{task.method!r}]: {error}") from None


def _identity(items, records, etas, steps, t_end, options, reference, tol, min_value, paths,
              chunk_size, seed, X):
    """The hash of each ingredient of the sweep, by name (see :mod:`.identity`)."""
    from .. import __version__
    out = {"flowsim version": fingerprint(__version__)}
    for name, loss in items:
        for part, value in loss_parts(loss).items():
            out[f"loss {name!r}: {part}"] = fingerprint(value)
    out.update({"methods": fingerprint([r.name for r in records]), "etas": fingerprint(etas),
                "steps": fingerprint(steps), "t_end": fingerprint(t_end),
                "options": fingerprint(options), "reference": fingerprint(reference),
                "tol": fingerprint(tol), "min_value": fingerprint(min_value),
                "paths": fingerprint(paths), "chunk_size": fingerprint(chunk_size),
                "seed": fingerprint(seed), "starts": fingerprint(X)})
    return out


def _worker_count(workers, executor, chunks):
    """Processes to start: None where an executor or this process runs the chunks, else
    ``workers`` checked and capped (:func:`~flowsim.ensemble.workers.worker_count`)."""
    if executor is not None:
        if not hasattr(executor, "submit"):
            raise TypeError("executor must have submit() (a concurrent.futures.Executor or a "
                            f"dask.distributed.Client), got {type(executor).__name__}.")
        return None
    if workers is None:
        return None
    return worker_count(workers, chunks)


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
    _check_options(options, records)
    min_value = finite(min_value, "min_value") if min_value is not None else None
    seed = seed_value(seed)
    if not isinstance(seed, int):
        raise ValueError(f"seed must be an integer >= 0 (a study records it), got {seed!r}.")
    for flag, value in (("reference", reference), ("paths", paths), ("resume", resume)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{flag} must be True or False, got {value!r}.")
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True, False or None, got {progress!r}.")
    store = writable_folder(store, "store") if store is not None else None
    if tol is not None and min_value is None:
        for name, loss in items:
            if loss.facts is None or loss.facts.min_value is None:
                raise ValueError(f"tol: the loss {name!r} carries no minimum value L*, so "
                                 "L - L* <= tol cannot be told; give min_value=, or carry it "
                                 "with flowsim.with_facts(loss, bounds=...).")
    tasks = _tasks(items, records, etas, steps, t_end, options, bool(reference), tol,
                   min_value, bool(paths), seed)
    _check_size(tasks, X, steps, bool(paths) or tol is not None)
    n_chunks = -(-len(X) // chunk_size)
    keys = [(task.index, c) for task in tasks for c in range(n_chunks)]
    workers = _worker_count(workers, executor, len(keys))
    _probe(tasks, X)
    spec = {"losses": [name for name, _ in items], "methods": [r.name for r in records],
            "etas": [float(e) for e in etas], "steps": steps, "t_end": t_end,
            "starts": X.tolist() if X.size <= 2_000 else f"{X.shape} array",
            "options": {k: {kk: repr(vv) for kk, vv in v.items()} for k, v in options.items()},
            "reference": bool(reference), "tol": tol, "min_value": min_value,
            "paths": bool(paths), "chunk_size": chunk_size, "seed": seed}

    def rows_of(key):
        return np.arange(key[1] * chunk_size, min((key[1] + 1) * chunk_size, len(X)))

    task_keys = {}

    def chunk_key(key):   # what the chunk's rows depend on: its task (hashed once), its starts
        if key[0] not in task_keys:
            t = tasks[key[0]]
            task_keys[key[0]] = fingerprint(loss_parts(t.loss), t.method, t.eta, t.steps,
                                            t.t_end, t.options, t.reference, t.tol,
                                            t.min_value, t.paths)
        rows = rows_of(key)
        return fingerprint(task_keys[key[0]], rows, X[rows])

    chunks = ChunkStore(store) if store is not None else None
    done, failed = {}, {}
    try:
        if chunks is not None:
            identity = _identity(items, records, etas, steps, t_end, options, reference, tol,
                                 min_value, paths, chunk_size, seed, X)
            stored = chunks.open(spec, identity, keys, resume)
            done = {key: chunks.get(key) for key in keys if stored.get(key) == chunk_key(key)}
        todo = [key for key in keys if key not in done]
        bar = _progress(len(todo), progress)

        def deliver(key, result):
            if chunks is not None:
                chunks.put(key, chunk_key(key), *result)
            done[key] = result
            if bar is not None:
                bar.update()
        try:
            given_up = run_calls([(key, run_chunk, (tasks[key[0]], rows_of(key),
                                                    X[rows_of(key)])) for key in todo],
                                 deliver, workers=workers, executor=executor)
        finally:
            if bar is not None:
                bar.close()
        for key, reason in given_up.items():
            failed[key] = f"task {key[0]} chunk {key[1]}: {reason}"
            done[key] = failed_rows(tasks[key[0]], rows_of(key), X[rows_of(key)], reason)
    finally:
        if chunks is not None:
            chunks.close()
    return assemble([done[key] for key in keys], spec, missing=tuple(failed.values()))


def _check_size(tasks, X, steps, keep_paths):
    """Refuse a sweep whose rows (or kept paths) would pass the memory limit, before any run.
    """
    m, n = X.shape
    per_row = 2 * n + 30       # numbers, and about 20 numbers' worth of text per row
    total = len(tasks) * m * per_row
    if keep_paths and steps:
        total += sum(1 for t in tasks if t.steps) * m * (steps + 1) * (n + 4)
    check_recorded(total, f"the sweep of {len(tasks)} task(s) x {m} start(s)",
                   "sweep fewer starts, step sizes or steps")
