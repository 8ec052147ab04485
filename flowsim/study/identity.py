"""What a study's rows depend on, as content hashes.

A resumed sweep may reuse a stored chunk only if everything that determines its rows is the
same: the loss (expression, variables in order, parameter values, data, the facts it uses),
the method and its options, the step size, steps or time span, the tolerances, the seed and
the starts themselves. :func:`fingerprint` hashes any of these canonically (SHA-256 over a
typed encoding: ``1`` and ``1.0`` differ, ``np.int64(0)`` and ``0`` do not); a callable option
is identified by its module, qualified name and the values it closes over.
"""
from __future__ import annotations

import dataclasses
import hashlib
import pickle

import numpy as np

from .._digest import feed

__all__ = ["fingerprint", "loss_parts", "describe_difference"]


def _other(h, obj, depth):
    """What a study identifies besides plain values (:func:`flowsim._digest.feed`)."""
    put = h.update
    if type(obj).__name__ == "Loss" and hasattr(obj, "symbol_values"):
        feed(h, loss_parts(obj), _other, depth + 1)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        put(f"D{type(obj).__module__}.{type(obj).__qualname__}".encode())
        feed(h, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, _other,
             depth + 1)
    elif callable(obj) and hasattr(obj, "__qualname__"):
        put(f"F{getattr(obj, '__module__', '')}.{obj.__qualname__}".encode())
        cells = getattr(obj, "__closure__", None) or ()
        feed(h, [c.cell_contents for c in cells], _other, depth + 1)
        feed(h, getattr(obj, "__defaults__", None), _other, depth + 1)
    elif hasattr(obj, "free_symbols") and hasattr(obj, "func"):   # a sympy object
        put(b"S" + repr(obj.func).encode())
        feed(h, str(obj), _other, depth + 1)
    else:
        try:
            put(b"P" + pickle.dumps(obj, protocol=4))
        except Exception:  # noqa: BLE001 - anything that does not pickle cannot be named
            raise TypeError(f"{type(obj).__name__} values cannot be identified for a study "
                            "store; pass numbers, text, arrays or flowsim objects") from None


def fingerprint(*parts):
    """A hex SHA-256 of ``parts`` in a canonical, typed encoding.

    Raises
    ------
    TypeError
        For a value that cannot be identified (it neither is one of the kinds above nor
        pickles).
    """
    h = hashlib.sha256()
    feed(h, parts, _other)
    return h.hexdigest()


def loss_parts(loss):
    """Everything a loss contributes to its runs' rows, by name: ``expression``,
    ``variables`` (in order), ``parameters``, ``data`` and ``facts``."""
    values = loss.symbol_values()
    params = {s.name: v for s, v in values.items() if np.ndim(v) == 0}
    data = {s.name: v for s, v in values.items() if np.ndim(v) == 1}
    facts = loss.facts
    fact_parts = None if facts is None else {
        "min_value": facts.min_value, "bounds": facts.bounds,
        "points": [(p.point, p.kind.value, bool(p.is_global)) for p in facts.critical_points]}
    return {"expression": str(loss.expr), "variables": [v.name for v in loss.variables],
            "parameters": params, "data": data, "facts": fact_parts}


def describe_difference(old, new):
    """The first component (in the order of ``new``) whose hash differs, in words, or None.

    ``old`` and ``new`` map component names (e.g. ``"loss 'L': parameters"``) to hashes."""
    for name, value in new.items():
        if old.get(name) != value:
            return name if name in old else f"{name} (not in the stored sweep)"
    extra = [name for name in old if name not in new]
    return f"{extra[0]} (only in the stored sweep)" if extra else None
