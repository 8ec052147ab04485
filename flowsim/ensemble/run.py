"""The flows' batched path: a flow given as a batched system runs on the per-start engines and
comes back as a BatchTrajectory on common output times."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import stops
from .._numeric import row_blocks, row_norms
from ..results import BatchTrajectory, Status
from .explicit import TABLEAUS, explicit
from .rosenbrock import rosenbrock

__all__ = ["System", "GridDense", "batch_run", "DEFAULT_OUTPUTS", "ENGINE", "hand_over"]

#: Output times of a batched flow when ``t_eval`` is not given.
DEFAULT_OUTPUTS = 101
#: The engine that runs each solver name on a batch.
ENGINE = {"RK23": "BS3", "RK45": "DP5", "DOP853": "DOP853", "auto": "DOP853, RODAS4 once stiff",
          "LSODA": "RODAS4", "BDF": "RODAS4", "Radau": "RODAS4"}


@dataclass(frozen=True)
class System:
    """A flow as a batched first-order system y' = f(t, y), y = (x, ...) of size d.

    ``fun(t, Y)`` and ``jac(t, Y)`` take t of shape (a,) and Y of shape (a, d); ``n`` is the
    number of leading components that are the position x; ``spectral(t, Y)`` estimates the
    spectral radius of df/dy (for the stiffness watch); ``dfdt`` is df/dt for a
    non-autonomous system; ``speed(F)`` the stationarity measure tested against gtol;
    ``guard(Y)`` -> (status, message) arrays (None where fine) for a flow's own stop rules;
    ``stationarity(Y)``, where given, is tested against gtol instead of ``speed(F)``.
    """

    fun: object
    jac: object
    n: int
    spectral: object = None
    dfdt: object = None
    speed: object = None
    guard: object = None
    stationarity: object = None


class GridDense:
    """Cubic Hermite interpolation of each start's path between its output times.

    ``dense(t)`` -> (m, n) for a scalar t, (m, n, len(t)) for an array. It matches the states
    and velocities at the output times exactly, with error O(dt^4) in between.
    """

    def __init__(self, ts, xs, vs):
        self.ts, self.xs, self.vs = ts, xs, vs

    def __call__(self, t):
        t_arr = np.atleast_1d(np.asarray(t, dtype=float))
        i = np.clip(np.searchsorted(self.ts, t_arr, side="right") - 1, 0, len(self.ts) - 2)
        t0, t1 = self.ts[i], self.ts[i + 1]
        h = t1 - t0
        s = ((t_arr - t0) / h)[None, :, None]
        h = h[None, :, None]
        x0, x1 = self.xs[:, i], self.xs[:, i + 1]
        v0, v1 = self.vs[:, i], self.vs[:, i + 1]
        out = ((2 * s ** 3 - 3 * s ** 2 + 1) * x0 + (s ** 3 - 2 * s ** 2 + s) * h * v0 +
               (-2 * s ** 3 + 3 * s ** 2) * x1 + (s ** 3 - s ** 2) * h * v1)
        out = out.transpose(0, 2, 1)
        return out[:, :, 0] if np.ndim(t) == 0 else out


def _check(system, gtol, max_norm):
    """The per-start stop rule after an accepted step: diverged past max_norm (or into
    non-finite states), converged where the speed falls to gtol."""
    quick = max_norm / np.sqrt(system.n)   # max |x_i| <= quick: |x| <= max_norm in every row

    def check(Y, F):
        found = []
        X = Y[:, :system.n]
        if not np.abs(X).max(initial=0.0) <= quick:   # some row may be out (or not finite)
            norms = row_norms(X)
            out = np.flatnonzero(~(norms <= max_norm))
            if out.size:
                found.append((Status.DIVERGED, out,
                              [stops.diverged(v, max_norm) for v in norms[out]]))
        if gtol is not None:
            speed = system.stationarity(Y) if system.stationarity is not None else \
                system.speed(F) if system.speed is not None else row_norms(F)
            done = np.flatnonzero(speed <= gtol)
            if done.size:
                found.append((Status.CONVERGED, done,
                              [stops.converged(g, gtol) for g in speed[done]]))
        if system.guard is not None:
            own, why = system.guard(Y)
            hit = np.flatnonzero(own != None)  # noqa: E711
            if hit.size:
                found.append((Status.FAILED, hit, list(why[hit])))
        return found
    return check


def batch_run(loss, system, Y0, t_end, method, rtol, atol, t_eval, dense_output, gtol,
              max_norm, max_steps, name, label, t0=0.0, extras=None, engine=None):
    """Run ``system`` from every row of ``Y0`` on the per-start engines.

    ``method`` picks the engine (:data:`ENGINE`): an explicit pair for RK23/RK45/DOP853, the
    Rosenbrock pair for LSODA/BDF/Radau, and for ``"auto"`` DP5 with each start that turns
    out stiff handed to the Rosenbrock pair from where it is. Large batches run in blocks of
    rows (:func:`row_blocks`), each block's arrays small enough to stay in the caches.
    ``engine``, where given, runs the starts instead (the compiled engine of
    :mod:`flowsim.compiled.engine`: ``engine(Y0, t0, t_end, method, rtol, atol, t_out,
    budget, gtol, max_norm, dense)`` -> (:class:`Outputs`, the starts it hands over as
    stiff, run on by :func:`hand_over`)).
    """
    m, n = Y0.shape[0], system.n
    t_out = np.linspace(t0, t_end, DEFAULT_OUTPUTS) if t_eval is None else \
        np.asarray(t_eval, dtype=float)
    budget = stops.budget(max_steps, Y0.shape[1])
    dense = bool(dense_output)
    held = _held_at_start(system, Y0, max_norm)
    go = np.setdiff1d(np.arange(m), np.fromiter(held, int, len(held)))
    before = loss.counts
    if not go.size:
        ran = None
    elif engine is not None:
        ran, stiff = engine(Y0[go] if held else Y0, t0, t_end, method, rtol, atol, t_out,
                            budget, gtol, max_norm, dense)
        hand_over(ran, stiff, system, t_end, rtol, atol, t_out, budget,
                  _check(system, gtol, max_norm), dense)
    else:
        ran = _in_blocks(system, Y0[go] if held else Y0, t0, t_end, method, rtol, atol, t_out,
                         budget, _check(system, gtol, max_norm), dense,
                         loss.watched(system.spectral) if system.spectral is not None
                         else None)
    counts = loss.counts.spent_since(before)
    ens = ran if not held else _with_held(ran, go, held, Y0, t0, t_out.size, dense)
    xs = ens.out[:, :, :n]
    values, grad_norms = loss.observe(xs)
    message = [text or stops.reached_end(t_end, steps)
               for text, steps in zip(ens.message, ens.steps_taken)]
    more = extras(ens.out, values) if extras is not None else {}
    more["steps_taken"] = ens.sout
    dense_path = GridDense(t_out, xs, ens.fout[:, :, :n]) if dense else None
    return BatchTrajectory(t_out, xs, values, grad_norms, tuple(Status(s) for s in ens.status),
                           tuple(message), name, f"{label}, m={m}, batched on "
                           f"{ENGINE[method]}{' [numba]' if engine is not None else ''}",
                           extras=more,
                           dense=dense_path, variables=loss.variable_names,
                           t_stop=ens.t_stop.copy(), **counts)


def _held_at_start(system, Y0, max_norm):
    """The starts that end where they are, not run: ``{row: (status, message)}`` for a state
    that is not finite, one beyond max_norm (diverged) and one that breaks the flow's own
    rule at t0 (its guard's status)."""
    held = {}
    if system.guard is not None:
        own, why = system.guard(Y0)
        held.update((i, (own[i], why[i])) for i in np.flatnonzero(own != None))  # noqa: E711
    held.update((i, (Status.DIVERGED, stops.not_finite_start()))
                for i in np.flatnonzero(~np.isfinite(Y0).all(axis=1)))
    held.update((i, (Status.DIVERGED, why))
                for i, why in zip(*stops.outside(Y0[:, :system.n], max_norm)))
    return held


def _in_blocks(system, Y0, t0, t_end, method, rtol, atol, t_out, budget, check, dense,
               spectral):
    """The engines on the starts ``Y0``, in blocks of rows where there are many: an
    ensemble (or :class:`Outputs`) of their outputs, statuses and stops."""
    blocks = row_blocks(*Y0.shape)
    if len(blocks) == 1:
        return _engines(system, Y0, t0, t_end, method, rtol, atol, t_out, budget, check,
                        dense, spectral)
    ens = Outputs.empty(Y0.shape[0], t_out.size, Y0.shape[1], dense)
    for rows in blocks:   # each block writes its outputs into its rows of the batch's arrays
        ens.put(rows, _engines(system, Y0[rows], t0, t_end, method, rtol, atol, t_out,
                               budget, check, dense, spectral, ens.rows(rows)))
    return ens


def _with_held(ran, go, held, Y0, t0, K, dense):
    """The :class:`Outputs` of all m starts: those that ran (rows ``go``, ensemble ``ran``
    or None) and the ``held`` ones, at rest at Y0 from t0 on (no step, zero velocity)."""
    full = Outputs.empty(Y0.shape[0], K, Y0.shape[1], dense)
    for name, value in vars(full).items():
        if ran is not None and value is not None:
            value[go] = getattr(ran, name)
    for i, (status, why) in held.items():
        full.out[i] = Y0[i]
        if dense:
            full.fout[i] = 0.0
        full.status[i], full.message[i], full.t_stop[i] = status, why, t0
    return full


def hand_over(ens, stiff, system, t_end, rtol, atol, t_out, budget, check, dense):
    """The starts an explicit engine handed over as stiff, ``stiff = (idx, t, Y, j)``, run
    on from where they are by the Rosenbrock pair, their outputs from j on, steps, statuses,
    messages and stop times written into ``ens`` (in place)."""
    idx, t_h, Y_h, j_h = stiff
    if not len(idx):
        return
    rest = rosenbrock(system.fun, system.jac, Y_h, t_h, t_end, rtol, atol, t_out,
                      max_steps=budget, check=check, dfdt=system.dfdt, dense=dense, j0=j_h)
    for k, i in enumerate(np.asarray(idx).astype(int)):
        j = int(j_h[k])
        ens.out[i, j:] = rest.out[k, j:]
        ens.sout[i, j:] = rest.sout[k, j:] + ens.steps_taken[i]
        if dense:
            ens.fout[i, j:] = rest.fout[k, j:]
        ens.status[i], ens.message[i] = rest.status[k], rest.message[k]
        ens.steps_taken[i] += rest.steps_taken[k]
        ens.t_stop[i] = rest.t_stop[k]


@dataclass(frozen=True)
class Outputs:
    """What :func:`batch_run` reads of an engine's ensemble, for starts run in blocks: the
    arrays of all m starts (``out`` (m, K, d), ``sout`` (m, K), ``fout`` (m, K, d) or None,
    ``status``, ``message``, ``steps_taken``, ``t_stop`` (m,)). The engines write their
    outputs into the rows of a block (:meth:`rows`); :meth:`put` adds the rest."""

    out: np.ndarray
    sout: np.ndarray
    fout: np.ndarray
    status: np.ndarray
    message: np.ndarray
    steps_taken: np.ndarray
    t_stop: np.ndarray

    @classmethod
    def empty(cls, m, K, d, dense):
        """Arrays for m starts, K outputs, states of size d."""
        return cls(np.empty((m, K, d)), np.zeros((m, K), dtype=int),
                   np.empty((m, K, d)) if dense else None, np.empty(m, dtype=object),
                   np.empty(m, dtype=object), np.zeros(m, dtype=int), np.zeros(m))

    def rows(self, rows):
        """The output arrays of the starts ``rows`` (a slice), for an engine to write into."""
        return self.out[rows], self.sout[rows], None if self.fout is None else self.fout[rows]

    def put(self, rows, part):
        """The ensemble ``part`` of the starts ``rows`` ran: its statuses, messages, steps
        and stop times."""
        for name in ("status", "message", "steps_taken", "t_stop"):
            getattr(self, name)[rows] = getattr(part, name)


def _engines(system, Y0, t0, t_end, method, rtol, atol, t_out, budget, check, dense,
             spectral, outputs=None):
    """One block of starts on the engine ``method`` picks (:data:`ENGINE`), its outputs
    written into ``outputs`` where given; the ensemble."""
    if method in TABLEAUS or method == "auto":
        tableau = TABLEAUS.get(method, TABLEAUS["DOP853"])   # "auto": order 8 until stiff
        ens, stiff = explicit(system.fun, Y0, t0, t_end, tableau, rtol, atol, t_out,
                              max_steps=budget, check=check, dense=dense, spectral=spectral,
                              stiff_steps=2_000 if method == "auto" else 50_000,
                              outputs=outputs)
        if method == "auto":
            hand_over(ens, stiff, system, t_end, rtol, atol, t_out, budget, check, dense)
        return ens
    return rosenbrock(system.fun, system.jac, Y0, t0, t_end, rtol, atol, t_out,
                      max_steps=budget, check=check, dfdt=system.dfdt, dense=dense,
                      outputs=outputs)
