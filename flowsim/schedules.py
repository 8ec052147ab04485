"""Step-size schedules eta_k for the discrete schemes: callables of the step index k."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ._validate import nonnegative, positive

__all__ = ["constant", "inverse_time", "step_decay", "as_schedule"]


@dataclass(frozen=True)
class constant:
    """eta_k = eta.

    Examples
    --------
    >>> constant(0.1)(np.arange(3))
    array([0.1, 0.1, 0.1])
    """

    eta: float

    def __post_init__(self):
        object.__setattr__(self, "eta", positive(self.eta, "eta"))

    def __call__(self, k):
        return np.full(np.shape(k), self.eta) if np.ndim(k) else self.eta


@dataclass(frozen=True)
class inverse_time:
    """Inverse-time decay eta_k = eta0 / (1 + decay * k).

    Examples
    --------
    >>> inverse_time(1.0, 0.5)(2)
    0.5
    """

    eta0: float
    decay: float

    def __post_init__(self):
        object.__setattr__(self, "eta0", positive(self.eta0, "eta0"))
        object.__setattr__(self, "decay", nonnegative(self.decay, "decay"))

    def __call__(self, k):
        out = self.eta0 / (1.0 + self.decay * np.asarray(k, dtype=float))
        return out if np.ndim(k) else float(out)


@dataclass(frozen=True)
class step_decay:
    """Piecewise-constant decay: eta_k = eta0 * factor ** (number of milestones <= k).

    Examples
    --------
    >>> step_decay(1.0, (10, 20), 0.1)(np.array([0, 10, 25]))
    array([1.  , 0.1 , 0.01])
    """

    eta0: float
    milestones: tuple
    factor: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "eta0", positive(self.eta0, "eta0"))
        object.__setattr__(self, "factor", positive(self.factor, "factor"))
        try:
            ms = tuple(self.milestones)
        except TypeError:
            raise TypeError("milestones must be a sequence of step indices, got "
                            f"{type(self.milestones).__name__}.") from None
        if any(isinstance(m, bool) or not isinstance(m, numbers.Integral) for m in ms):
            raise ValueError(f"milestones must be whole step indices (ints), got {ms}; "
                             "round them explicitly if that is meant.")
        ms = tuple(int(m) for m in ms)
        if any(m < 1 for m in ms) or list(ms) != sorted(set(ms)):
            raise ValueError(f"milestones must be increasing step indices >= 1, got {ms}.")
        object.__setattr__(self, "milestones", ms)

    def __call__(self, k):
        passed = np.searchsorted(np.asarray(self.milestones), np.asarray(k), side="right")
        out = self.eta0 * self.factor ** passed
        return out if np.ndim(k) else float(out)


def as_schedule(eta):
    """Accept a positive number or a callable ``k -> eta_k``; return ``(schedule, constant)``.

    ``constant`` is the float step for a fixed step size, else ``None``.
    """
    if isinstance(eta, constant):
        return eta, eta.eta
    if callable(eta):
        return eta, None
    eta = positive(eta, "eta")
    return constant(eta), eta


def _evaluate(schedule, ks):
    """eta_k for the step indices ``ks`` (an array), each checked to be finite and > 0."""
    try:
        with np.errstate(all="ignore"):
            etas = np.asarray(schedule(ks), dtype=float)
        if etas.shape != ks.shape:
            raise TypeError
    except (TypeError, ValueError, ArithmeticError):
        try:
            with np.errstate(all="ignore"):
                etas = np.array([float(schedule(int(k))) for k in ks])
        except (TypeError, ValueError, ArithmeticError) as err:
            raise ValueError(f"eta: the schedule failed at a step index ({err}); give a "
                             "callable k -> eta_k > 0 that takes an int.") from None
    if not np.all(np.isfinite(etas)) or np.any(etas <= 0):
        k = int(np.flatnonzero(~(np.isfinite(etas) & (etas > 0)))[0])
        raise ValueError(f"eta: the schedule must give finite steps > 0 for every k; "
                         f"eta_{int(ks[k])} = {etas[k]!r}.")
    return etas


class StepSizes:
    r"""The steps :math:`\eta_0, \dots, \eta_{n-1}` of a schedule, computed in blocks of
    :attr:`BLOCK` indices as a run reaches them, so that a run of 10^9 steps that keeps only
    its end holds no array of 10^9 numbers.

    Indexing by an int gives a float, by an array of indices an array; ``cumulative(ks)``
    gives the times :math:`\sum_{j<k} h_j` of iterates ``ks``; ``map(f)`` applies an
    elementwise function (the heavy ball's ODE step sqrt(eta)); ``k`` may be overridden
    (a line search's step) with ``steps[k] = value``.
    """

    BLOCK = 1 << 12

    def __init__(self, schedule, n, value=None, transform=None):
        self.schedule, self.n, self.value, self.transform = schedule, int(n), value, transform
        self._block, self._first, self._changed = None, -1, {}

    def check(self, upper=None, name="eta"):
        """Evaluate every step once, block by block: finite, > 0 and at most ``upper``."""
        for first in range(0, self.n, self.BLOCK) if self.value is None else (0,):
            etas = self._load(first) if self.value is None else np.array([self.value])
            if upper is not None and np.any(etas > upper):
                k = first + int(np.flatnonzero(etas > upper)[0])
                raise ValueError(f"{name} must be at most {upper:g} at every step; step {k} "
                                 f"is {etas[k - first]:g}.")
        return self

    def _load(self, first):
        if first != self._first:
            ks = np.arange(first, min(first + self.BLOCK, self.n))
            etas = _evaluate(self.schedule, ks)
            self._block = self.transform(etas) if self.transform is not None else etas
            self._first = first
        return self._block

    def __len__(self):
        return self.n

    def __getitem__(self, k):
        if self.value is not None and not self._changed and type(k) is int and \
                0 <= k < self.n:
            return self.value   # the hot path of a fixed step
        if isinstance(k, slice):
            start, stop, step = k.indices(self.n)
            if start != 0 or step != 1:
                raise IndexError("StepSizes slices must start at 0 with step 1.")
            head = StepSizes(self.schedule, stop, self.value, self.transform)
            head._changed = {j: v for j, v in self._changed.items() if j < stop}
            return head
        if np.ndim(k):
            return self._take(np.asarray(k, dtype=np.intp))
        k = int(k)
        if k < 0:
            k += self.n
        if not 0 <= k < self.n:
            raise IndexError(f"step {k} is outside 0..{self.n - 1}.")
        if k in self._changed:
            return self._changed[k]
        if self.value is not None:
            return self.value
        return float(self._load(k - k % self.BLOCK)[k % self.BLOCK])

    def __setitem__(self, k, value):
        self._changed[int(k)] = float(value)

    def _take(self, ks):
        ks = np.where(ks < 0, ks + self.n, ks)
        if np.any((ks < 0) | (ks >= self.n)):
            raise IndexError(f"a step index is outside 0..{self.n - 1}.")
        if self._changed:
            return np.array([self[int(j)] for j in ks.ravel()], dtype=float).reshape(ks.shape)
        if self.value is not None:
            return np.full(ks.shape, float(self.value))
        out = np.empty(ks.shape)
        starts = ks - ks % self.BLOCK
        for start in np.unique(starts):
            where = starts == start
            out[where] = self._load(int(start))[ks[where] - start]
        return out

    def __iter__(self):
        for first in range(0, self.n, self.BLOCK):
            yield from self._steps(first, min(self.BLOCK, self.n - first)).tolist()

    def map(self, function):
        """The steps ``function(eta_k)`` (an elementwise numpy function)."""
        if self.value is not None:   # a fixed step: its image, once
            out = StepSizes(self.schedule, self.n, float(function(np.float64(self.value))))
        else:
            before = self.transform
            out = StepSizes(self.schedule, self.n, None,
                            function if before is None else (lambda e: function(before(e))))
        out._changed = {k: float(function(np.float64(v))) for k, v in self._changed.items()}
        return out

    @property
    def constant(self):
        """The step where every step is the same (no override), else None."""
        if self.value is None or self._changed:
            return None
        return self[0]

    def cumulative(self, ks):
        """The times of iterates ``ks`` (sorted ints in 0..n): sum of the steps before each.
        """
        ks = np.asarray(ks, dtype=np.intp)
        c = self.constant
        if c is not None:
            return ks * c
        out = np.empty(ks.shape)
        total, done = 0.0, 0
        for i, k in enumerate(ks):
            while done < k:   # up to k, a block at a time
                count = min(k, done - done % self.BLOCK + self.BLOCK) - done
                total += float(np.sum(self._steps(done, count)))
                done += count
            out[i] = total
        return out

    def _steps(self, first, count):
        """Steps first .. first + count - 1 as an array (overrides applied)."""
        if count <= 0:
            return np.zeros(0)
        if self._changed:
            return np.array([self[j] for j in range(first, first + count)])
        if self.value is not None:
            return np.full(count, self[first])
        parts, k, end = [], first, first + count
        while k < end:
            start = k - k % self.BLOCK
            stop = min(end, start + self.BLOCK)
            parts.append(self._load(start)[k - start:stop - start])
            k = stop
        return np.concatenate(parts)

    def array(self):
        """All steps as an ndarray (for a backend that needs them at once)."""
        return self._steps(0, self.n)

    def __array__(self, dtype=None, copy=None):
        out = self.array()
        return out.astype(dtype) if dtype is not None else out


def step_sizes(schedule, steps):
    """The steps eta_0 .. eta_{steps-1} of a schedule as :class:`StepSizes`, each checked
    to be finite and > 0 (evaluated block by block, never all held at once)."""
    value = schedule.eta if isinstance(schedule, constant) else None
    return StepSizes(schedule, steps, value).check()
