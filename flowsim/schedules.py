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


def step_sizes(schedule, steps):
    """The steps eta_0 .. eta_{steps-1} as an array, each checked to be finite and > 0."""
    ks = np.arange(steps)
    try:
        with np.errstate(all="ignore"):
            etas = np.asarray(schedule(ks), dtype=float)
        if etas.shape != (steps,):
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
                         f"eta_{k} = {etas[k]!r}.")
    return etas
