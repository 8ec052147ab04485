"""Every core: a batch of starts split into chunks over worker processes, the results joined
into one BatchTrajectory identical to the run in one process; workers that may die.

Each start's arithmetic is independent of the others' (per-start steps, per-start stops), so
a chunk computes exactly the rows it would compute in one large batch; the loss travels to
each worker in its pickled form (compiled once per process, under the budget it was accepted
with) and each chunk's starts travel once.

A worker can die (killed, out of memory, ``os._exit`` in a user's callback): the pool is then
broken and every unfinished chunk with it. :func:`run_calls` hands each finished chunk over as
it finishes, retries the unfinished ones on a fresh pool (``RETRIES`` times), then runs each
that is left alone in a pool of one, so that only a chunk that kills its own worker is given
up, with the reason.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import inspect
import multiprocessing
import os
import re
import sys

import numpy as np

from .._validate import int_between, positive_int
from ..results import BatchTrajectory, Status

__all__ = ["parallel", "in_chunks", "merge", "process_pool", "run_calls", "worker_count",
           "PARALLEL_DOC", "RETRIES"]

#: Fresh pools a chunk whose worker died is retried on, before it is run alone.
RETRIES = 2

PARALLEL_DOC = """    workers : int, optional
        Split m starts into chunks over this many processes (None: this process; at most
        one per chunk and per core).
    executor : concurrent.futures.Executor, optional
        Run the chunks on this executor instead (a process pool, a Dask client's executor).
    chunk_size : int, optional
        Starts per chunk (by default m split evenly over the workers). The result is the
        same whatever the workers and chunk sizes; a chunk whose worker keeps dying ends
        its starts ``failed`` with the reason.
"""


def process_pool(workers):
    """A process pool of ``workers`` processes. Once JAX is imported this process runs its
    threads, and forking a multithreaded process can deadlock the child: the pool then
    starts its workers from a fork server (a fresh single-threaded process) instead."""
    context = multiprocessing.get_context("forkserver") if "jax" in sys.modules and \
        "forkserver" in multiprocessing.get_all_start_methods() else None
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context)


def worker_count(workers, calls):
    """``workers`` checked (an int >= 1) and capped by the number of ``calls`` and of cores."""
    workers = int_between(workers, "workers", 1, 4096)
    return max(1, min(workers, calls, os.cpu_count() or 1))


def _died(error):
    """Whether ``error`` says the worker process running a call died."""
    return isinstance(error, concurrent.futures.BrokenExecutor) or \
        type(error).__name__ == "KilledWorker"


def _as_completed(pool, futures):
    """The futures in the order they finish (Dask's own futures need Dask's helper)."""
    if type(pool).__module__.split(".")[0] == "distributed":
        from distributed import as_completed
        return as_completed(list(futures))
    return concurrent.futures.as_completed(futures)


def _round(pool, calls, deliver):
    """Submit ``calls`` to ``pool``; deliver each result as it comes. Returns the keys whose
    worker died, with the error."""
    futures = {pool.submit(fn, *args): key for key, fn, args in calls}
    died = {}
    try:
        for future in _as_completed(pool, futures):
            key = futures[future]
            try:
                result = future.result()
            except BaseException as error:
                if not _died(error):
                    raise
                died[key] = error
            else:
                deliver(key, result)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return died


def run_calls(calls, deliver, *, workers=None, executor=None, retries=RETRIES):
    """Run ``calls`` (a list of ``(key, function, args)``), handing ``deliver(key, result)``
    each result as it finishes.

    Parameters
    ----------
    workers : int, optional
        Processes of a pool made here (None or 1 with no executor: in this process).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where to submit instead; a process pool that breaks is replaced by fresh pools of
        its size for the retries.
    retries : int
        Fresh pools a call whose worker died is retried on before it runs alone.

    Returns
    -------
    dict
        ``{key: reason}`` of the calls given up (their worker died every time); an exception
        raised by a call itself propagates after the finished results were delivered.
    """
    if executor is None and (workers is None or workers == 1):
        for key, fn, args in calls:
            deliver(key, fn(*args))
        return {}
    size = getattr(executor, "_max_workers", None) or workers or (os.cpu_count() or 1)
    lookup = {key: (key, fn, args) for key, fn, args in calls}
    pending, attempt, given_up = list(calls), 0, {}
    user = executor
    while pending:
        own = user is None
        pool = process_pool(min(size, len(pending))) if own else user
        try:
            died = _round(pool, pending, deliver)
        finally:
            if own:
                pool.shutdown(wait=True, cancel_futures=True)
        if not died:
            break
        if isinstance(user, concurrent.futures.ProcessPoolExecutor):
            user = None   # a broken process pool stays broken: fresh ones from here
        attempt += 1
        if attempt <= retries:
            pending = [lookup[key] for key in died]
            continue
        for key, error in died.items():   # alone, so that a death is this call's own
            if user is None:
                with process_pool(1) as alone:
                    again = _round(alone, [lookup[key]], deliver)
            else:
                again = {key: error}
            if again:
                text = (str(again[key]).splitlines() or ["no message"])[0]
                given_up[key] = (f"the worker process running it died {attempt + 1} times "
                                 f"({type(again[key]).__name__}: {text})")
        break
    return given_up


def _held(a, first, k):
    """The columns ``a[:, :first]`` of ``a`` (m, K', ...), then its last column held up to
    k columns."""
    if first == a.shape[1] == k:
        return a
    tail = np.repeat(a[:, -1:], k - first, axis=1)
    return np.concatenate([a[:, :first], tail], axis=1)


def _on_times(p, ts):
    """How many leading columns of the chunk ``p`` lie on the batch's times ``ts``: all of
    them, or all but its last where that is the chunk's own end between two kept iterates
    of the batch (a scheme keeps every ``record_every``-th iterate and the end; a start
    that stopped earlier holds its last state at the batch's later ones). None where
    neither: the chunks ran on different times."""
    k = len(p.ts)
    if k <= len(ts) and np.array_equal(p.ts, ts[:k]):
        return k
    if 2 <= k <= len(ts) and np.array_equal(p.ts[:-1], ts[:k - 1]) and \
            p.ts[-2] < p.ts[-1] < ts[k - 1]:
        return k - 1
    return None


def failed_piece(loss, X, ts, reason):
    """A BatchTrajectory for starts ``X`` (m, n) that could not be run: held at the start,
    status ``failed`` with ``reason``."""
    m = len(X)
    values, grads = loss.observe(X)
    return BatchTrajectory(np.asarray(ts[:1], dtype=float), X[:, None, :].copy(),
                           np.asarray(values, dtype=float).reshape(m, 1),
                           np.asarray(grads, dtype=float).reshape(m, 1),
                           (Status.FAILED,) * m, (f"not run: {reason}",) * m, "failed", "",
                           extras={"steps_taken": np.zeros((m, 1), dtype=int)},
                           variables=loss.variable_names, t_stop=np.full(m, float(ts[0])))


def merge(parts):
    """One BatchTrajectory from chunk results in start order, on the times of the chunk
    that ran longest (each chunk's starts held at their last state after its own end), as
    the run in one process gives it."""
    longest = max(parts, key=lambda p: (len(p.ts), p.ts[-1]))
    k = len(longest.ts)
    firsts = [_on_times(p, longest.ts) for p in parts]
    if any(first is None for first in firsts):
        raise RuntimeError("the chunks of a batch ran on different times; this is a bug.")

    def join(name):
        arrays = [getattr(p, name) for p in parts]
        if any(a is None for a in arrays):
            return None
        return np.concatenate([_held(a, first, k) for a, first in zip(arrays, firsts)])

    def extra(name, p, first):
        if name in p.extras:
            return _held(p.extras[name], first, k)
        like = longest.extras[name]   # a failed piece: zeros of the same kind
        return np.zeros((len(p), k) + like.shape[2:], dtype=like.dtype)

    extras = {name: np.concatenate([extra(name, p, first) for p, first in zip(parts, firsts)])
              for name in longest.extras}
    first = next((p for p in parts if p.method != "failed"), parts[0])
    m = f", m={sum(len(p) for p in parts)}"
    label, found = re.subn(r", m=\d+", m, first.label)
    label = label if found else label + m
    return BatchTrajectory(longest.ts, join("xs"), join("values"), join("grad_norms"),
                           sum((p.status for p in parts), ()),
                           sum((p.message for p in parts), ()), first.method, label,
                           nfev=sum(p.nfev for p in parts), ngev=sum(p.ngev for p in parts),
                           nhev=sum(p.nhev for p in parts), extras=extras,
                           variables=first.variables,
                           t_stop=np.concatenate([p.t_final for p in parts]))


def _chunks(m, workers, chunk_size):
    size = chunk_size if chunk_size is not None else -(-m // workers)
    return [slice(i, min(i + size, m)) for i in range(0, m, size)]


def _on_copy(run, loss, X, *args, **kwargs):
    """Run a chunk on the loss's own copy: its evaluations counted apart from other
    chunks' (threads of one process share a loss object)."""
    from ..loss import Loss
    return run(loss.copy() if isinstance(loss, Loss) else loss, X, *args, **kwargs)


def _check_picklable(target):
    """Refuse, before any process starts, a method that cannot travel to a worker."""
    import pickle
    try:
        pickle.dumps(target)
    except Exception as err:   # pickling raises many kinds (TypeError, AttributeError, ...)
        raise ValueError(f"workers: {getattr(target, '__name__', target)!r} cannot be sent to "
                         f"worker processes ({err}); define its rule's functions at the top "
                         "level of a module (not as lambdas or inside functions), or run "
                         "without workers.") from None


#: Keywords that may hold one row per start (shape (m, n)): split with the starts.
PER_START = ("v0",)


def _rows_of(kwargs, piece, m):
    """``kwargs`` for the chunk ``piece`` of m starts: per-start keywords given one row per
    start (:data:`PER_START`) cut to the chunk's rows."""
    out = dict(kwargs)
    for name in PER_START:
        value = out.get(name)
        if value is not None and np.ndim(value) == 2 and len(value) == m:
            out[name] = np.asarray(value)[piece]
    return out


def in_chunks(target, function, loss, x0, args, kwargs, *, workers, executor, chunk_size,
              takes_dense):
    """Run ``function(loss, x0, *args, **kwargs)``, split into chunks of starts over
    ``workers`` processes or an ``executor`` when one is asked for (arguments checked here);
    each chunk calls the picklable ``target`` (the same function) on its rows.

    ``backend="auto"`` is resolved here, once for the whole batch
    (:func:`flowsim.backends.choose`): a call the JAX path refuses runs on numpy, and the
    result's label ends with ``[auto: numpy]`` or ``[auto: jax]``."""
    if kwargs.get("backend") == "auto":
        return _auto(target, function, loss, x0, args, kwargs, takes_dense,
                     dict(workers=workers, executor=executor, chunk_size=chunk_size,
                          takes_dense=takes_dense))
    if workers is not None:
        workers = int_between(workers, "workers", 1, 4096)
    if chunk_size is not None:
        chunk_size = positive_int(chunk_size, "chunk_size")
    if executor is not None and not isinstance(executor, concurrent.futures.Executor):
        raise TypeError("executor must be a concurrent.futures.Executor, got "
                        f"{type(executor).__name__}.")
    if workers is None and executor is None:
        return function(loss, x0, *args, **kwargs)
    X = np.asarray(x0, dtype=float)
    if X.ndim != 2:
        return function(loss, x0, *args, **kwargs)
    from .._validate import as_loss
    loss = as_loss(loss)
    if takes_dense:
        kwargs["dense_output"] = False
    pieces = _chunks(len(X), workers or 1, chunk_size)
    if workers is not None:
        workers = worker_count(workers, len(pieces))
    call = functools.partial(_on_copy, target, loss)
    if executor is not None or (workers or 1) > 1:
        _check_picklable(target)
    done = {}

    def deliver(i, result):
        done[i] = result
    calls = [(i, functools.partial(call, X[p], *args, **_rows_of(kwargs, p, len(X))), ())
             for i, p in enumerate(pieces)]
    given_up = run_calls(calls, deliver, workers=workers, executor=executor)
    ts = next(iter(done.values())).ts if done else np.zeros(1)
    return merge([done[i] if i in done else failed_piece(loss, X[p], ts, given_up[i])
                  for i, p in enumerate(pieces)])


def _auto(target, function, loss, x0, args, kwargs, takes_dense, split):
    """:func:`in_chunks` with ``backend="auto"`` resolved to the backend that finishes first."""
    from ..backends import Refused, choose
    try:
        X = np.asarray(x0, dtype=float)
    except (TypeError, ValueError):   # the function itself says what is wrong with x0
        X = np.zeros(1)
    steps = args[1] if not takes_dense and len(args) > 1 else None
    from ..loss import Loss
    # warm: this loss object already ran a JAX program in this process
    warm = isinstance(loss, Loss) and bool(loss.memo("jax_runs", dict))
    starts = len(X) if X.ndim == 2 else 1
    if split["executor"] is not None:   # (an executor that does not say: at least two)
        processes = getattr(split["executor"], "_max_workers", None) or 2
    else:
        processes = worker_count(split["workers"], starts) if split["workers"] else 1
    compiled = isinstance(loss, Loss) and bool(loss.memo("compiled_steps", dict) or
                                               loss.memo("compiled_fields", dict))
    choice = choose("flow" if takes_dense else "scheme", starts, steps,
                    X.shape[-1] if X.ndim else 1, warm, processes, compiled)
    try:
        result = in_chunks(target, function, loss, x0, args, dict(kwargs, backend=choice),
                           **split)
    except Refused:   # raised before any work: this call is for numpy
        if choice == "numpy":
            raise
        choice = "numpy"
        result = in_chunks(target, function, loss, x0, args, dict(kwargs, backend=choice),
                           **split)
    label = re.sub(r" \[(jax|numba)\]$", "", result.label) + f" [auto: {choice}]"
    return dataclasses.replace(result, label=label)


def parallel(function):
    """Give a flow or scheme ``workers=``, ``executor=`` and ``chunk_size=`` for x0 of shape
    (m, n): the starts are split into chunks run on processes and joined by :func:`merge`.

    The chunks are called with ``dense_output=False`` where the function has that keyword
    (a dense solution does not travel between processes).
    """
    takes_dense = "dense_output" in inspect.signature(function).parameters

    @functools.wraps(function)
    def run(loss, x0, *args, workers=None, executor=None, chunk_size=None, **kwargs):
        # ``run`` travels to the workers by name (its module attribute)
        return in_chunks(run, function, loss, x0, args, kwargs, workers=workers,
                         executor=executor, chunk_size=chunk_size, takes_dense=takes_dense)

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
