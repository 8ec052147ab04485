"""Every core: a batch of starts split into chunks over worker processes, the results joined
into one BatchTrajectory identical to the run in one process.

Each start's arithmetic is independent of the others' (per-start steps, per-start stops), so
a chunk computes exactly the rows it would compute in one large batch; the loss travels to
each worker in its pickled form (compiled once per process) and each chunk's starts travel
once.
"""
from __future__ import annotations

import concurrent.futures
import functools
import inspect
import multiprocessing
import sys

import numpy as np

from .._validate import int_between, positive_int
from ..results import BatchTrajectory

__all__ = ["parallel", "merge", "process_pool", "PARALLEL_DOC"]

PARALLEL_DOC = """    workers : int, optional
        Split m starts into chunks over this many processes (None: this process).
    executor : concurrent.futures.Executor, optional
        Run the chunks on this executor instead (a process pool, a Dask client's executor).
    chunk_size : int, optional
        Starts per chunk (by default m split evenly over the workers). The result is the
        same whatever the workers and chunk sizes.
"""


def process_pool(workers):
    """A process pool of ``workers`` processes. Once JAX is imported this process runs its
    threads, and forking a multithreaded process can deadlock the child: the pool then
    starts its workers from a fork server (a fresh single-threaded process) instead."""
    context = multiprocessing.get_context("forkserver") if "jax" in sys.modules and \
        "forkserver" in multiprocessing.get_all_start_methods() else None
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _pad(a, k):
    """``a`` (m, K, ...) held at its last row up to K = k rows."""
    if a.shape[1] == k:
        return a
    tail = np.repeat(a[:, -1:], k - a.shape[1], axis=1)
    return np.concatenate([a, tail], axis=1)


def merge(parts):
    """One BatchTrajectory from chunk results in start order (shorter ones held at their
    last row, on the longest chunk's times)."""
    longest = max(parts, key=lambda p: len(p.ts))
    k = len(longest.ts)
    if any(not np.array_equal(p.ts, longest.ts[:len(p.ts)]) for p in parts):
        raise RuntimeError("the chunks of a batch ran on different times; this is a bug.")

    def join(name):
        arrays = [getattr(p, name) for p in parts]
        if any(a is None for a in arrays):
            return None
        return np.concatenate([_pad(a, k) for a in arrays])

    extras = {name: np.concatenate([_pad(p.extras[name], k) for p in parts])
              for name in longest.extras}
    first = parts[0]
    label = first.label.rsplit(", m=", 1)[0] + f", m={sum(len(p) for p in parts)}"
    return BatchTrajectory(longest.ts, join("xs"), join("values"), join("grad_norms"),
                           sum((p.status for p in parts), ()),
                           sum((p.message for p in parts), ()), first.method, label,
                           nfev=sum(p.nfev for p in parts), ngev=sum(p.ngev for p in parts),
                           nhev=sum(p.nhev for p in parts), extras=extras)


def _chunks(m, workers, chunk_size):
    size = chunk_size if chunk_size is not None else -(-m // workers)
    return [slice(i, min(i + size, m)) for i in range(0, m, size)]


def parallel(function):
    """Give a flow or scheme ``workers=``, ``executor=`` and ``chunk_size=`` for x0 of shape
    (m, n): the starts are split into chunks run on processes and joined by :func:`merge`.

    The chunks are called with ``dense_output=False`` where the function has that keyword
    (a dense solution does not travel between processes).
    """
    takes_dense = "dense_output" in inspect.signature(function).parameters

    @functools.wraps(function)
    def run(loss, x0, *args, workers=None, executor=None, chunk_size=None, **kwargs):
        if workers is None and executor is None:
            return function(loss, x0, *args, **kwargs)
        if workers is not None:
            workers = int_between(workers, "workers", 1, 4096)
        if chunk_size is not None:
            chunk_size = positive_int(chunk_size, "chunk_size")
        if executor is not None and not isinstance(executor, concurrent.futures.Executor):
            raise TypeError("executor must be a concurrent.futures.Executor, got "
                            f"{type(executor).__name__}.")
        X = np.asarray(x0, dtype=float)
        if X.ndim != 2:
            return function(loss, x0, *args, **kwargs)
        if takes_dense:
            kwargs["dense_output"] = False
        pieces = _chunks(len(X), workers or 1, chunk_size)
        target = functools.partial(run, loss)  # by name: the same object in a worker
        if executor is not None:
            futures = [executor.submit(target, X[p], *args, **kwargs) for p in pieces]
            return merge([f.result() for f in futures])
        if workers == 1:
            return merge([target(X[p], *args, **kwargs) for p in pieces])
        with process_pool(workers) as pool:
            futures = [pool.submit(target, X[p], *args, **kwargs) for p in pieces]
            return merge([f.result() for f in futures])

    signature = inspect.signature(function)
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
             for name in ("workers", "executor", "chunk_size")]
    run.__signature__ = signature.replace(parameters=list(signature.parameters.values()) +
                                          extra)
    doc = function.__doc__ or ""
    if "\n\n    Returns\n" in doc:
        run.__doc__ = doc.replace("\n\n    Returns\n", "\n" + PARALLEL_DOC + "\n    Returns\n",
                                  1)
    return run
