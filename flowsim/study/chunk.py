"""One chunk of a sweep: one method at one step size on a slice of starts, run as one batch,
turned into tidy rows (one per run) and, when asked, long rows of paths."""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas

from .. import methods

__all__ = ["Task", "run_chunk", "derived_seed", "failed_rows"]


def derived_seed(*parts):
    """A 32-bit seed from a study's seed and a task's identity: the same whatever the
    executor, the number of workers or the chunking."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass(frozen=True)
class Task:
    """One (loss, method, step size) cell of a sweep.

    Attributes
    ----------
    index : int
        Its place in the sweep (the first part of each chunk's key).
    loss_name : str
    loss : Loss
    method : str
        Registry name.
    eta : float
        Step size (nan for a flow).
    steps : int or None
        Steps of a scheme.
    t_end : float or None
        Time span of a flow.
    options : dict
        Keyword arguments of the method.
    reference : bool
        Integrate the gradient flow from the same starts and report the largest deviation.
    tol : float or None
        Report the first time at which L - L* <= tol.
    min_value : float or None
        L* for ``tol``.
    paths : bool
        Keep the paths.
    """

    index: int
    loss_name: str
    loss: object
    method: str
    eta: float
    steps: int | None
    t_end: float | None
    options: dict
    reference: bool = False
    tol: float | None = None
    min_value: float | None = None
    paths: bool = False


def apportion(total, steps):
    """Each start's share of a batch's ``total`` evaluations, in proportion to the steps it
    took (integers summing to ``total``, largest remainders first). Exact for schemes, whose
    every step costs the same; for flows the share of the accepted steps."""
    steps = np.asarray(steps, dtype=float)
    if total == 0 or steps.sum() <= 0:
        return np.zeros(len(steps), dtype=np.int64)
    exact = total * steps / steps.sum()
    out = np.floor(exact).astype(np.int64)
    rest = int(total - out.sum())
    if rest:
        out[np.argsort(-(exact - out), kind="stable")[:rest]] += 1
    return out


def _run(task, X):
    record = methods.get(task.method)
    if record.kind == "flow":
        t_eval = None if (task.paths or task.tol is not None) else [0.0, task.t_end]
        return record.function(task.loss, X, task.t_end, t_eval=t_eval, dense_output=False,
                               **task.options)
    keep = "all" if (task.paths or task.tol is not None or task.reference) else "final"
    return record.function(task.loss, X, task.eta, task.steps, record=keep, **task.options)


def _deviation(task, X, batch):
    """Largest |x_k - x(t_k)| of each start against its gradient flow (DOP853, rtol 1e-10)."""
    from ..flows import gradient_flow
    ref = gradient_flow(task.loss, X, float(batch.ts[-1]), method="DOP853", rtol=1e-10,
                        atol=1e-12, t_eval=batch.ts, dense_output=False)
    return np.max(np.linalg.norm(batch.xs - ref.xs, axis=2), axis=1)


def _minimizer_reached(loss, final):
    facts = loss.facts
    if facts is None or not facts.minimizers.size:
        return np.full(len(final), -1)
    mins = facts.minimizers
    dist = np.linalg.norm(final[:, None, :] - mins[None], axis=2)
    scale = 1e-3 * (1.0 + np.abs(mins).max())
    return np.where(dist.min(axis=1) < scale, dist.argmin(axis=1), -1)


def _time_to_tol(task, batch):
    """The first time, and for a scheme the iteration, with L - L* <= tol (nan: never)."""
    if task.tol is None or task.min_value is None or batch.values is None:
        return np.full(len(batch), np.nan), np.full(len(batch), np.nan)
    below = (batch.values - task.min_value) <= task.tol
    first = np.argmax(below, axis=1)
    reached = below.any(axis=1)
    scheme = methods.get(task.method).kind == "scheme"
    return (np.where(reached, batch.ts[first], np.nan),
            np.where(reached & scheme, first.astype(float), np.nan))


def failed_rows(task, rows, X, reason):
    """The rows of a chunk that could not be run: each start ``failed`` with ``reason``."""
    return run_chunk(task, rows, X, reason=reason)


def run_chunk(task, rows, X, *, reason=None):
    """Run ``task`` on the starts ``X`` (their indices ``rows`` in the sweep's starts), or,
    with ``reason``, report them ``failed`` for it without running.

    Returns
    -------
    runs : pandas.DataFrame
        One row per start.
    paths : pandas.DataFrame or None
        Long rows (run, step, t, x1..xn, L) when the task keeps paths.
    """
    from ..ensemble.workers import failed_piece
    task = dataclasses.replace(task, loss=task.loss.copy())   # its own evaluation counts
    batch = _run(task, X) if reason is None else \
        failed_piece(task.loss, X, np.zeros(1), reason)
    m, n = X.shape
    final = batch.xs[:, -1]
    values = batch.values[:, -1] if batch.values is not None else task.loss.observe_values(final)
    to_tol = _time_to_tol(task, batch)
    table = {"task": np.full(m, task.index), "loss": [task.loss_name] * m,
             "method": [task.method] * m, "eta": np.full(m, task.eta), "start": rows}
    names = task.loss.variable_names
    table.update({f"x0_{name}": X[:, i] for i, name in enumerate(names)})
    table.update({f"x_{name}": final[:, i] for i, name in enumerate(names)})
    table.update(L=values, status=[s.value for s in batch.status],
                 message=list(batch.message), t_final=batch.t_final,
                 steps=batch.extras["steps_taken"][:, -1],
                 time_to_tol=to_tol[0], iterations_to_tol=to_tol[1],
                 deviation=_deviation(task, X, batch) if task.reference and
                 methods.get(task.method).kind == "scheme" else np.full(m, np.nan),
                 minimizer=_minimizer_reached(task.loss, final))
    runs = pandas.DataFrame(table)
    # evaluations: each run's own where every step costs the same (schemes written as an
    # update rule: the batch's count shared by steps taken is exact), else the chunk's total
    # on its first row, which assemble() turns into the task's mean per start (the same
    # whatever the chunking)
    record = methods.get(task.method)
    exact = record.kind == "scheme" and record.rule is not None
    steps = batch.extras["steps_taken"][:, -1]
    for name in ("nfev", "ngev", "nhev"):
        if exact:
            runs[f"_{name}"] = apportion(getattr(batch, name), steps).astype(float)
        else:
            runs[f"_{name}"] = np.zeros(m)
            runs.loc[0, f"_{name}"] = getattr(batch, name)
    runs["_exact"] = exact
    paths = None
    if task.paths and reason is None:
        k = len(batch.ts)
        paths = pandas.DataFrame({"task": np.full(m * k, task.index),
                                  "start": np.repeat(rows, k), "step": np.tile(np.arange(k), m),
                                  "t": np.tile(batch.ts, m)})
        for i in range(n):
            paths[f"x_{names[i]}"] = batch.xs[:, :, i].ravel()
        paths["L"] = batch.values.ravel() if batch.values is not None else np.nan
    return runs, paths
