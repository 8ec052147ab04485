"""What a method's own code must return: an update rule's step, a vector field's value.

A researcher's own :class:`~flowsim.rules.UpdateRule` or :class:`~flowsim.rules.VectorField`
is code flowsim did not write: a step that returns the wrong number of things, a state of
another shape, a field of the wrong shape or a complex iterate would otherwise fail deep
inside a driver (``'list' object has no attribute 'max'``, a broadcast error, JAX's scan carry
types) or, on JAX, be broadcast silently into a wrong answer. :func:`checked_step` and
:func:`checked_field` say in one sentence which part broke the contract, on numpy (at the
first call of a run) and on JAX (at the trace, where shapes and dtypes are known). Integer
values are taken as floats; nothing else is changed.
"""
from __future__ import annotations

import numpy as np

__all__ = ["checked_step", "checked_field", "checked_jacobian", "checked_once"]


def _shapes(state):
    """The shapes of a state (an array, a tuple of them, or ()), as nested tuples."""
    if isinstance(state, (tuple, list)):
        return tuple(_shapes(s) for s in state)
    return tuple(np.shape(state))


def _real(value, shape, name, owner, xp, like="of x"):
    """``value`` as a real float array of ``shape``, or TypeError (``like`` names the shape
    in the message)."""
    try:
        arr = xp.asarray(value)
    except (TypeError, ValueError):
        arr = np.asarray(None)
    if arr.dtype == object or tuple(arr.shape) != shape:
        got = tuple(arr.shape) if arr.dtype != object else type(value).__name__
        rows = "; return one row per start" if like == "of x" else ""
        raise TypeError(f"{owner}: {name} must have the shape {like} {shape}, got {got}{rows}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{owner}: {name} is complex; return real numbers.")
    return arr if arr.dtype == np.float64 else arr.astype(np.float64)


def checked_field(value, x, owner, xp=np):
    """A vector field's value dx/dt at ``x`` (shape (a, n) on numpy, (n,) on JAX), checked:
    a real float array of the shape of x (integers taken as floats), or one TypeError naming
    ``owner``."""
    return _real(value, tuple(x.shape), "the field's value dx/dt", owner, xp)


def checked_jacobian(value, x, owner):
    """A vector field's jacobian at ``x`` (a, n), checked: a real float array (a, n, n)."""
    return _real(value, tuple(x.shape) + x.shape[-1:], "the field's jacobian", owner, np,
                 "(starts, n, n)")


def checked_once(func, check):
    """``func`` whose first value passes ``check(value, *args)`` (a contract above, which
    returns the value with its arrays made float); later values pass as they are, unless
    the first had to be made so, in which case every one is."""
    converting = [None]

    def call(*args):
        value = func(*args)
        if converting[0] is False:
            return value
        out = check(value, *args)
        if converting[0] is None:
            pairs = zip(out, value) if isinstance(out, tuple) else [(out, value)]
            converting[0] = any(a is not b for a, b in pairs)
        return out
    return call


def checked_step(result, x, state, owner, xp=np):
    """``(x_next, g, state_next, failed)`` from a rule's step, checked against its contract.

    Parameters
    ----------
    result : object
        What ``rule.step(k, eta, x, state, ops, options)`` returned.
    x : array, shape (a, n) on numpy, (n,) on JAX
        The iterates the step was given, and ``state`` the state.
    owner : str
        Who wrote the step, for the message (``"the update rule of 'my_method'"``).
    xp : module
        ``numpy`` or ``jax.numpy``.

    Returns
    -------
    tuple
        ``x_next`` (and ``g`` unless None) as float arrays of the shape of x; the state and
        ``failed`` as returned.

    Raises
    ------
    TypeError
        One sentence naming the part that broke the contract: not four things, an iterate
        or gradient of another shape or complex, a state whose shapes changed, ``failed``
        neither a bool nor a mask of the starts.
    """
    if not isinstance(result, (tuple, list)) or len(result) != 4:
        got = f"{len(result)} things" if isinstance(result, (tuple, list)) else \
            type(result).__name__
        raise TypeError(f"{owner}: the step must return (x_next, g, state, failed), got {got}.")
    x_next, g, state_next, failed = result
    x_next = _real(x_next, tuple(x.shape), "the step's x_next", owner, xp)
    if g is not None:
        g = _real(g, tuple(x.shape), "the step's g (grad L at x, or None)", owner, xp)
    if _shapes(state_next) != _shapes(state):
        raise TypeError(f"{owner}: the step must return a state of the shapes it was given, "
                        f"{_shapes(state)}, got {_shapes(state_next)}.")
    if failed is not False:
        rows = () if x.ndim == 1 else (x.shape[0],)
        try:
            mask = xp.asarray(failed)
        except (TypeError, ValueError):
            mask = np.asarray(None)
        if mask.dtype != bool or tuple(mask.shape) not in ((), rows):
            raise TypeError(f"{owner}: the step's failed must be False or a boolean mask of "
                            f"shape {rows}, got {failed!r:.60}.")
    return x_next, g, state_next, failed
