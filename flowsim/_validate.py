"""Argument checks shared by flows, schemes and diagnostics: one sentence per bad input."""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_loss", "start_points", "positive", "nonnegative", "choice", "positive_int"]


def as_loss(loss, where="loss"):
    """Accept a :class:`~flowsim.Loss` (or a formula string, compiled on the spot)."""
    from .loss import Loss
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        return Loss(loss)
    raise TypeError(f"{where} must be a flowsim.Loss or a formula string, got "
                    f"{type(loss).__name__}.")


def start_points(x0, n, *, batch=True, name="x0"):
    """``x0`` as a float array of shape (n,) or, if ``batch``, (m, n); finite entries only."""
    X = np.array(x0, dtype=float)
    ok = X.ndim == 1 or (batch and X.ndim == 2 and X.shape[0] > 0)
    if not ok or X.shape[-1] != n:
        shapes = f"({n},) or (m, {n})" if batch else f"({n},)"
        raise ValueError(f"{name} must have shape {shapes} for a loss in {n} variables, "
                         f"got shape {X.shape}.")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} must be finite; it holds nan or inf.")
    return X


def positive(value, name):
    """A finite float > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return float(value)


def nonnegative(value, name):
    """A finite float >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def positive_int(value, name):
    """An int >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def choice(value, options, name):
    """``value`` if it is one of ``options`` (case-sensitive)."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; "
                         f"got {value!r}.")
    return value
