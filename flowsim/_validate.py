"""Argument checks shared by flows, schemes and diagnostics: one sentence per bad input."""
from __future__ import annotations

import numbers
import os

import numpy as np

__all__ = ["as_loss", "start_points", "positive", "nonnegative", "choice", "positive_int",
           "finite", "optional", "seed_value", "step_count", "int_between", "mapping",
           "real_array", "one_trajectory", "writable_path", "writable_folder", "check_bounds",
           "hessian_at",
           "MAX_RECORDED", "check_recorded"]

#: Most numbers a run may record (states, values, gradient norms): 4 GB of float64.
MAX_RECORDED = 500_000_000


def as_loss(loss, where="loss"):
    """Accept a :class:`~flowsim.Loss` (or a formula string, compiled on the spot)."""
    from .loss import Loss
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        return Loss(loss)
    raise TypeError(f"{where} must be a flowsim.Loss or a formula string, got "
                    f"{type(loss).__name__}.")


def real_array(value, name, what="real numbers"):
    """``value`` as a float ndarray (a copy); TypeError for complex, text or ragged input."""
    try:
        arr = np.array(value)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.dtype == object:
        raise TypeError(f"{name} must be an array of {what}, got {type(value).__name__} that "
                        "numpy cannot read as one rectangular array.")
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real; it holds complex numbers (flowsim works on "
                        "real vectors).")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of {what}, got dtype {arr.dtype} "
                        f"(for example text); pass numbers, e.g. [1.0, 2.0].")
    return arr.astype(float)


def start_points(x0, n, *, batch=True, name="x0"):
    """``x0`` as a float array of shape (n,) or, if ``batch``, (m, n); finite entries only."""
    X = real_array(x0, name)
    ok = X.ndim == 1 or (batch and X.ndim == 2 and X.shape[0] > 0)
    if not ok or X.shape[-1] != n:
        shapes = f"({n},) or (m, {n})" if batch else f"({n},)"
        raise ValueError(f"{name} must have shape {shapes} for a loss in {n} variables, "
                         f"got shape {X.shape}.")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} must be finite; it holds nan or inf.")
    return X


def one_trajectory(trajectory, loss, name="trajectory"):
    """A single :class:`~flowsim.Trajectory` whose states live in ``loss``'s n variables."""
    from .results import BatchTrajectory, Trajectory
    if isinstance(trajectory, BatchTrajectory) or not isinstance(trajectory, Trajectory):
        raise TypeError(f"{name} must be one flowsim.Trajectory (take .trajectory(i) of a "
                        f"batch), got {type(trajectory).__name__}.")
    if trajectory.xs.shape[-1] != loss.n:
        raise ValueError(f"{name} has states in {trajectory.xs.shape[-1]} variables but the "
                         f"loss has {loss.n}; pass the loss the trajectory was computed on.")
    return trajectory


def writable_path(path, name="path"):
    """``path`` as a str once its folder exists and can be written, checked before any work."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {path!r}.")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{name} {path!r} is a folder; give a file name inside it.")
    if not os.path.isdir(folder):
        raise ValueError(f"{name}: the folder {folder!r} does not exist; create it first.")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{name}: the folder {folder!r} cannot be written; choose another.")
    return path


def writable_folder(path, name="path"):
    """``path`` as a str: an existing folder that can be written, or one that can be made
    (its parent exists and can be written); checked before any work."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)) or \
            not str(os.fspath(path)).strip():
        raise TypeError(f"{name} must be a folder path (str or os.PathLike), got {path!r}.")
    path = os.fspath(path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError(f"{name} {path!r} is a file, not a folder; give a folder.")
        if not os.access(path, os.W_OK):
            raise ValueError(f"{name}: the folder {path!r} cannot be written; choose another.")
        return path
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{name}: the folder {parent!r} that would hold {path!r} does not "
                         "exist; create it first.")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{name}: the folder {parent!r} cannot be written; choose another.")
    return path


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


def int_between(value, name, low, high):
    """An int in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or \
            not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}.")
    return int(value)


def check_recorded(numbers, what, fix):
    """Refuse, before anything is allocated, a result of more than :data:`MAX_RECORDED`
    numbers: ``what`` would record ``numbers``; ``fix`` says what to ask for instead."""
    if numbers > MAX_RECORDED:
        raise ValueError(f"{what} would record {numbers:.3g} numbers ({numbers * 8 / 1e9:.3g} "
                         f"GB); the limit is {MAX_RECORDED:.3g}: {fix}.")


def step_count(value, name="steps", n=1, m=1, every=1):
    """A number of steps whose record (m starts x (steps // every + 2) kept states x (n + 2)
    numbers) fits in :data:`MAX_RECORDED` numbers, checked before anything is allocated;
    ``every`` is None where only the start and the end are kept."""
    steps = positive_int(value, name)
    kept = 2 if every is None else (steps + 1 if every == 1 else steps // every + 2)
    check_recorded(kept * m * (n + 2), f"{name} = {steps} for {m} start(s) in {n} variables",
                   "ask for fewer steps or starts, or a larger record_every")
    return steps


def finite(value, name):
    """A finite real number as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}.")
    return float(value)


def optional(check, value, name):
    """``None``, or ``check(value, name)``."""
    return None if value is None else check(value, name)


def seed_value(seed, name="seed"):
    """A seed for ``numpy.random.default_rng``: None, an int >= 0, or a Generator."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{name} must be None, an integer >= 0 or a numpy Generator, "
                         f"got {seed!r}.")
    return int(seed)


def mapping(value, name):
    """A dict (a copy) from a mapping or None."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict, got {type(value).__name__}.")
    return dict(value)


def choice(value, options, name):
    """``value`` if it is one of ``options`` (case-sensitive)."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; "
                         f"got {value!r}.")
    return value


def check_bounds(bounds, n):
    """``bounds`` as an array of shape (n, 2) with lower < upper, finite."""
    try:
        B = real_array(bounds, "bounds")
    except TypeError:
        raise ValueError("bounds must be numbers: (low, high) or one pair per variable.") \
            from None
    if B.shape == (2,):
        B = np.tile(B, (n, 1))
    if B.shape != (n, 2):
        raise ValueError(f"bounds must be one (low, high) pair or {n} pairs, got shape "
                         f"{B.shape}.")
    if not np.all(np.isfinite(B)) or np.any(B[:, 0] >= B[:, 1]):
        raise ValueError("bounds must be finite with low < high for every variable (the box "
                         "is empty or inverted).")
    return B


def hessian_at(loss, x):
    """``(loss, x, H)`` for a diagnostic at one point: checked arguments and a finite Hessian.

    Raises
    ------
    ValueError
        For a point of the wrong dimension, or a Hessian that is not finite there.
    """
    loss = as_loss(loss)
    x = start_points(x, loss.n, batch=False, name="x")
    with np.errstate(all="ignore"):
        H = loss.hess(x)
    if not np.all(np.isfinite(H)):
        raise ValueError(f"x: the Hessian is not finite at {np.round(x, 6).tolist()}; "
                         "choose a point inside the loss's domain.")
    return loss, x, H
