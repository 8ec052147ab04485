"""The result family: ``Trajectory`` (one start) and ``BatchTrajectory`` (m starts), ``Status``.

Both have the same fields and methods; a batch adds a leading start axis.
"""
from __future__ import annotations

import enum
import types
from dataclasses import dataclass, field

import numpy as np

from ._report import Picklable, Report, _table


__all__ = ["Status", "Trajectory", "BatchTrajectory", "cut_at_nonfinite", "Picklable", "Report",
           "PositionPart", "StartDense"]


class Status(str, enum.Enum):
    """How a run ended."""

    CONVERGED = "converged"      #: |grad L| fell below the tolerance
    REACHED_END = "reached_end"  #: ran to t_end or the step budget
    DIVERGED = "diverged"        #: left the bound on |x|, or the loss/gradient became non-finite
    FAILED = "failed"            #: a solver gave up (message says why)

    def __str__(self):
        return self.value


def cut_at_nonfinite(values, status, message, ts):
    """Where L first turns non-finite (after the start): ``(k, status, message)``.

    A path that leaves the loss's domain (log of a negative number) or overflows is cut
    before that state and reported diverged; ``k`` is the number of states to keep
    (``len(values)`` when nothing is cut).
    """
    outside = np.flatnonzero(~np.isfinite(values))
    if not outside.size or outside[0] == 0:
        return len(values), status, message
    k = outside[0]
    return k, Status.DIVERGED, (f"L(x) is not finite at t = {ts[k]:.6g} (the path left the "
                                f"loss's domain or overflowed); kept the path up to "
                                f"t = {ts[k - 1]:.6g}")


class PositionPart:
    """The x part of a dense solution in (x, v): ``dense(t)[:n]`` (picklable)."""

    def __init__(self, dense, n):
        self.dense, self.n = dense, n

    def __call__(self, t):
        return np.asarray(self.dense(t))[:self.n]


class StartDense:
    """Start i's part of a batch's dense solution."""

    def __init__(self, dense, i):
        self.dense, self.i = dense, i

    def __call__(self, t):
        return np.asarray(self.dense(t))[self.i]


def _frozen(a):
    a = np.asarray(a)
    a.setflags(write=False)
    return a


def _check_times(ts, t):
    """``t`` as an array of times inside [ts[0], ts[-1]] (one sentence otherwise)."""
    from ._validate import real_array
    t_arr = real_array(t, "t")
    if not np.all(np.isfinite(t_arr)):
        raise ValueError("t must be finite times inside the span of this trajectory.")
    lo, hi = ts[0], ts[-1]
    if np.any(t_arr < lo - 1e-12 * max(1, abs(lo))) or \
            np.any(t_arr > hi + 1e-12 * max(1, abs(hi))):
        raise ValueError(f"t must lie in [{lo:g}, {hi:g}], the span of this trajectory.")
    return t_arr


def _own_times(ts, t_arr):
    """Indices of ``t_arr`` among the recorded times ``ts`` (a discrete run has no others)."""
    idx = np.clip(np.searchsorted(ts, t_arr), 0, len(ts) - 1)
    if not np.allclose(ts[idx], t_arr, rtol=1e-12, atol=1e-12):
        raise ValueError("this discrete trajectory has no dense solution; ask for states "
                         "at its own times ts.")
    return idx


@dataclass(frozen=True)
class _Result(Picklable):
    """The fields and methods :class:`Trajectory` and :class:`BatchTrajectory` share (a batch
    holds ``status`` and ``message`` per start)."""

    ts: np.ndarray
    xs: np.ndarray
    values: np.ndarray
    grad_norms: np.ndarray
    status: Status
    message: str
    method: str
    label: str = ""
    nfev: int = 0
    ngev: int = 0
    nhev: int = 0
    extras: types.MappingProxyType = field(default_factory=dict)
    dense: object = field(default=None, repr=False, compare=False)
    variables: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "variables", tuple(str(v) for v in self.variables))
        for name in ("ts", "xs", "values", "grad_norms"):
            if getattr(self, name) is not None:  # a batch may leave L and |grad L| unkept
                object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "extras", types.MappingProxyType(
            {k: _frozen(v) for k, v in dict(self.extras).items()}))
        if not self.label:
            object.__setattr__(self, "label", self.method)

    @property
    def n_points(self):
        """Number of recorded times."""
        return len(self.ts)

    @property
    def counts(self):
        """Evaluations spent by the run, as ``{"nfev": ..., "ngev": ..., "nhev": ...}``."""
        return {"nfev": self.nfev, "ngev": self.ngev, "nhev": self.nhev}

    def state_columns(self, prefix="x_"):
        """Column names of the state's components: ``prefix`` + the loss's variable names
        (``x_x``, ``x_y``), or + 1..n where the names are not known. The one convention of
        every frame: ``x_`` a state, ``x0_`` a start."""
        n = self.xs.shape[-1]
        names = self.variables if len(self.variables) == n else \
            tuple(str(i + 1) for i in range(n))
        return [prefix + name for name in names]

    def _attrs(self, frame):
        frame.attrs.update(method=self.method, label=self.label, variables=list(self.variables),
                           nfev=int(self.nfev), ngev=int(self.ngev), nhev=int(self.nhev))
        return frame


@dataclass(frozen=True, repr=False)
class Trajectory(_Result):
    """A path x(t) of a flow, or the iterates x_k of a scheme placed at times t_k.

    Attributes
    ----------
    ts : ndarray, shape (n_points,)
        Times. A discrete scheme's iterate k sits at ``k * eta`` (the sum of its steps).
    xs : ndarray, shape (n_points, n)
        States.
    values : ndarray, shape (n_points,)
        L(x) at each state.
    grad_norms : ndarray, shape (n_points,)
        |grad L(x)| at each state.
    status : Status
    message : str
        A human sentence on how the run ended.
    method : str
        The registry name of the flow or scheme, e.g. ``"gradient_flow"`` or
        ``"gradient_descent"`` (see :mod:`flowsim.methods`).
    label : str
        A human label with the settings, e.g. ``"gradient flow (LSODA)"`` or
        ``"heavy ball (beta=0.9)"``; ``method`` when not given.
    nfev, ngev, nhev : int
        Evaluations of L, grad L and the Hessian spent by the run itself (in points).
    extras : mapping of str to ndarray
        Method-specific series, e.g. ``"velocities"`` and ``"energy"`` for the heavy ball,
        ``"inner_iterations"`` for proximal point. Each has ``n_points`` rows.
    dense : callable or None
        For flows: the continuous solution, ``dense(t)`` of shape (n,) for any t in range.
    """

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "status", Status(self.status))

    @property
    def x_final(self):
        """The last state, shape (n,)."""
        return self.xs[-1]

    @property
    def t_final(self):
        """The time at which the run stopped (its last time)."""
        return float(self.ts[-1])

    def at(self, t):
        """The state at time(s) ``t``: shape (n,) for a scalar, (len(t), n) for an array.

        Flows use their dense solution; a discrete scheme is only defined at its own times,
        so ``t`` must be one of ``ts`` there.
        """
        t_arr = _check_times(self.ts, t)
        if self.dense is not None:
            out = np.asarray(self.dense(t_arr))
            return out.T if t_arr.ndim else out
        return self.xs[_own_times(self.ts, t_arr)]

    def summary(self):
        """One line: label, status, final L and |grad L|, the message."""
        return (f"{self.label}: {self.status.value} at t = {self.ts[-1]:.6g} after "
                f"{self.n_points - 1} steps, L = {self.values[-1]:.6g}, |grad L| = "
                f"{self.grad_norms[-1]:.3g}; {self.message}")

    def to_frame(self):
        """The path as a ``pandas.DataFrame``: ``t``, ``x_<variable>`` per component (see
        :meth:`state_columns`), ``L``, ``grad_norm`` and every one-column extra series;
        ``.attrs`` hold the method, label, status, message, variables and counts."""
        columns = {"t": self.ts}
        columns.update(dict(zip(self.state_columns(), self.xs.T)))
        columns.update(L=self.values, grad_norm=self.grad_norms)
        columns.update({k: v for k, v in self.extras.items() if v.ndim == 1})
        frame = self._attrs(_table(columns))
        frame.attrs.update(status=self.status.value, message=self.message)
        return frame

    def __repr__(self):
        return (f"Trajectory(method={self.method!r}, label={self.label!r}, "
                f"status={self.status.value}, n_points={self.n_points}, "
                f"t_end={self.ts[-1]:g}, L_final={self.values[-1]:.6g}, "
                f"message={self.message!r})")


@dataclass(frozen=True, repr=False)
class BatchTrajectory(_Result):
    """Paths of m starting points run together, on common times: :class:`Trajectory`'s
    fields with a leading start axis.

    Attributes
    ----------
    ts : ndarray, shape (n_points,)
    xs : ndarray, shape (m, n_points, n)
        ``xs[i]`` is start i's path.
    values, grad_norms : ndarray, shape (m, n_points), or None
        None where the run was asked not to keep them (``record=("x",)``).
    status : tuple of Status, length m
        Each start's final status.
    message : tuple of str, length m
        Each start's sentence on how it ended (one string is given to every start).
    method, label : str
        As in :class:`Trajectory`.
    nfev, ngev, nhev : int
        Evaluations in points, over all starts.
    extras : mapping of str to ndarray
        Series of shape (m, n_points, ...).
    dense : callable or None
        For flows, the continuous solution of all starts (see :meth:`at`).
    t_stop : ndarray, shape (m,), or None
        The time at which each start stopped (see :attr:`t_final`).
    """

    t_stop: object = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        super().__post_init__()
        m = self.xs.shape[0]
        if self.t_stop is not None:
            t_stop = np.array(self.t_stop, dtype=float).reshape(-1)
            if t_stop.shape != (m,):
                raise ValueError(f"t_stop needs one time per start (m = {m}), got shape "
                                 f"{t_stop.shape}.")
            t_stop.setflags(write=False)
            object.__setattr__(self, "t_stop", t_stop)
        status = tuple(self.status)
        if set(map(type, status)) - {Status}:   # (a million starts: skip the calls)
            status = tuple(Status(s) for s in status)
        object.__setattr__(self, "status", status)
        message = self.message
        if isinstance(message, str):
            message = (message,) * m
        else:
            message = tuple(message)
            if set(map(type, message)) - {str}:
                message = tuple(str(text) for text in message)
        object.__setattr__(self, "message", message)
        if len(self.status) != m or len(self.message) != m:
            raise ValueError(f"status and message need one entry per start (m = {m}).")

    def __len__(self):
        return self.xs.shape[0]

    @property
    def x_final(self):
        """Final states, shape (m, n)."""
        return self.xs[:, -1]

    @property
    def t_final(self):
        """Each start's own end time, shape (m,): where it converged, diverged or failed, or
        the run's end (a start stopped at t = 0.3 says 0.3, not the grid's last time)."""
        if self.t_stop is not None:
            return self.t_stop
        return np.full(len(self), float(self.ts[-1]))

    def at(self, t):
        """States at time(s) ``t``: shape (m, n) for a scalar, (m, len(t), n) for an array
        (start i's rows are ``trajectory(i).at(t)``)."""
        t_arr = _check_times(self.ts, t)
        if self.dense is not None:
            out = np.asarray(self.dense(t_arr))  # (m, n) or (m, n, len(t))
            return out if t_arr.ndim == 0 else out.transpose(0, 2, 1)
        return self.xs[:, _own_times(self.ts, t_arr)]

    def trajectory(self, i):
        """Start i's path as a :class:`Trajectory`, with its share of the counts (the batch's
        counts over m: every start is evaluated at every batched call)."""
        m = len(self)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -m <= i < m:
            raise IndexError(f"i must be a start index in [-{m}, {m}), got {i!r}.")
        dense = StartDense(self.dense, i) if self.dense is not None else None
        share = {name: count // m for name, count in self.counts.items()}
        values = self.values[i] if self.values is not None else np.full(self.n_points, np.nan)
        norms = self.grad_norms[i] if self.grad_norms is not None else \
            np.full(self.n_points, np.nan)
        return Trajectory(self.ts, self.xs[i], values, norms,
                          self.status[i], self.message[i], self.method, self.label,
                          extras={k: v[i] for k, v in self.extras.items()}, dense=dense,
                          variables=self.variables, **share)

    def summary(self):
        """One line: label, m, how many starts ended how, the spread of the final L."""
        text = f"{self.label}: {len(self)} starts to t = {self.ts[-1]:.6g}; {self._tally()}"
        if self.values is None:
            return text
        final = self.values[:, -1]
        return f"{text}; final L from {np.nanmin(final):.6g} to {np.nanmax(final):.6g}"

    def _tally(self):
        return ", ".join(f"{self.status.count(s)} {s.value}" for s in Status
                         if s in self.status)

    def to_frame(self):
        """One row per start: ``start``, ``status``, ``t_end``, ``L``, ``grad_norm``,
        ``x0_<variable>`` (start), ``x_<variable>`` (final state) and ``message``;
        ``.attrs`` hold the method, label, variables and counts."""
        columns = {"start": np.arange(len(self)), "status": [s.value for s in self.status],
                   "t_end": self.t_final}
        if self.values is not None:
            columns["L"] = self.values[:, -1]
        if self.grad_norms is not None:
            columns["grad_norm"] = self.grad_norms[:, -1]
        columns.update(dict(zip(self.state_columns("x0_"), self.xs[:, 0].T)))
        columns.update(dict(zip(self.state_columns(), self.x_final.T)))
        columns["message"] = list(self.message)
        return self._attrs(_table(columns).set_index("start"))

    def __repr__(self):
        return (f"BatchTrajectory(method={self.method!r}, label={self.label!r}, m={len(self)}, "
                f"n_points={self.n_points}, t_end={self.ts[-1]:g}, status=({self._tally()}))")
