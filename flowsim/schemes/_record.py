"""What a run keeps: every iterate, every k-th, or the start and the end, with or without L
and |grad L| (a 100,000-start run need not store 100,000 paths)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import positive_int

__all__ = ["Record", "as_record", "Recorder", "FIELDS", "hold_stopped", "kept_iterates"]

#: Series a run can keep: the states, L and |grad L| at the kept iterates.
FIELDS = ("x", "loss", "grad_norm")


@dataclass(frozen=True)
class Record:
    """Which iterates and series a run keeps.

    Attributes
    ----------
    fields : tuple of str
        From :data:`FIELDS`; the states ``"x"`` are always kept.
    every : int or None
        Keep iterate k when k is a multiple of ``every`` (and always the last); None keeps
        only the start and the end.
    """

    fields: tuple = FIELDS
    every: int | None = 1


def as_record(record="all", record_every=1):
    """``record`` (``"all"``, ``"final"`` or a tuple of :data:`FIELDS`) and ``record_every``
    checked, as a :class:`Record`."""
    every = positive_int(record_every, "record_every")
    if isinstance(record, Record):
        return record
    if isinstance(record, str):
        if record == "all":
            return Record(FIELDS, every)
        if record == "final":
            return Record(FIELDS, None)
        record = (record,)
    try:
        fields = tuple(record)
    except TypeError:
        raise TypeError(f"record must be 'all', 'final' or a tuple of {FIELDS}, got "
                        f"{record!r}.") from None
    unknown = [f for f in fields if f not in FIELDS]
    if unknown or not fields:
        raise ValueError(f"record: unknown series {unknown or fields!r}; choose from {FIELDS} "
                         "(or 'all' or 'final').")
    return Record(tuple(f for f in FIELDS if f in fields or f == "x"), every)


def kept_iterates(end, every):
    """The iterates a run keeps when its last start stopped at iterate ``end``: every
    ``every``-th one (None: the start only) and the end, shape (K,), and how many of them,
    the first ones, lie on that grid."""
    step = every if every is not None else end + 1
    ks = np.arange(0, end + 1, step)
    if ks[-1] != end:
        ks = np.append(ks, end)
    return ks, int(np.count_nonzero(ks % step == 0))


def hold_stopped(xs, ks, last, final):
    """Each start's last state ``final`` (m, n) in ``xs`` (m, K, n) from its last iterate
    ``last`` (m,) on, in place, for the kept iterates ``ks`` (K,) that end at max(last).

    The last column for every start (one that stopped at the end has no slot of its own),
    the columns from its stop for the few that stopped before: no pass over the whole stack.
    """
    xs[:, -1] = final
    early = np.flatnonzero(last < ks[-1])
    if early.size:
        held = ks[None, :] >= last[early, None]
        xs[early] = np.where(held[..., None], final[early, None, :], xs[early])


class Recorder:
    """Keeps the asked-for iterates of m starts while :func:`~._driver.iterate` runs.

    A start that stops holds its last state in every later kept row.
    """

    def __init__(self, steps, m, n, records=(), record=None):
        self.record = record if record is not None else Record()
        every = self.record.every
        self.every = every if every is not None else steps + 1
        self.slots = np.zeros((steps // self.every + 2, m, n))
        self.final = np.zeros((m, n))
        self.last = np.full(m, -1)
        self.steps = steps
        # per-step records at the kept iterates only (the last one, off the grid, is nan)
        self.rec = {name: np.full((m, self.slots.shape[0]), np.nan) for name in records}

    def keep(self, k, rows, X):
        """Iterate k of the starts ``rows`` (indices, or a slice) is ``X``."""
        if k % self.every == 0:
            self.slots[k // self.every, rows] = X

    def note(self, k, rows, info, dts):
        """Per-step records of step k (``"dt"`` sets the step's duration)."""
        for name, value in info.items():
            if name == "dt":
                dts[k] = np.asarray(value).reshape(-1)[0]
            elif k % self.every == 0:
                self.rec[name][rows, k // self.every] = value

    def stop(self, rows, k, X):
        """The starts ``rows`` ended at iterate k in the states ``X``."""
        self.last[rows] = k
        self.final[rows] = X

    def result(self, dts):
        """``(xs (m, K, n), ts (K,), ks (K,), records (m, K))`` on the kept iterates ks."""
        end = int(self.last.max())
        ks, regular = kept_iterates(end, self.every)   # (the regular ones: the first slots)
        xs = np.empty((self.final.shape[0], ks.size, self.final.shape[1]))
        xs[:, :regular] = self.slots[:regular].transpose(1, 0, 2)
        xs[:, regular:] = self.final[:, None]  # the last iterate, off the regular grid
        hold_stopped(xs, ks, self.last, self.final)
        if hasattr(dts, "cumulative"):
            times = dts.cumulative(ks)
        else:
            times = np.concatenate([[0.0], np.cumsum(dts[:end])])[ks]
        on_grid = ks % self.every == 0
        records = {}
        for name, series in self.rec.items():
            records[name] = np.full((series.shape[0], ks.size), np.nan)
            records[name][:, on_grid] = series[:, ks[on_grid] // self.every]
        return xs, times, ks, records
