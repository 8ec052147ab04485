"""A typed, canonical encoding of plain values into a hash: the one the study store's
fingerprints (:mod:`flowsim.study.identity`) and the JAX program store's keys
(:mod:`flowsim.jax_backend.programs`) share.

Plain values are None, booleans, integers, reals, text, bytes, arrays, mappings and
sequences; ``1`` and ``1.0`` differ, ``np.int64(0)`` and ``0`` do not, a float is encoded by
its exact bits (``float.hex``), a mapping in the order of its keys' reprs. Everything else is
handed to the caller's ``other(h, obj, depth)``, which decides what identifies it (and may
feed its parts back through :func:`feed`).
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

__all__ = ["feed", "MAX_DEPTH"]

#: Nesting past this raises TypeError (a value that contains itself, or nearly).
MAX_DEPTH = 50


def feed(h, obj, other, depth=0):
    """Feed ``obj`` to the hash ``h`` (``hashlib``), plain values here and the rest through
    ``other(h, obj, depth)``.

    Raises
    ------
    TypeError
        Where the value nests past :data:`MAX_DEPTH` (and whatever ``other`` raises).
    """
    if depth > MAX_DEPTH:
        raise TypeError("the value nests too deeply to be identified")
    put = h.update
    if obj is None or isinstance(obj, (bool, np.bool_)):
        put(f"<{obj!r}>".encode())
    elif isinstance(obj, numbers.Integral):
        put(b"i" + str(int(obj)).encode() + b";")
    elif isinstance(obj, numbers.Real):
        put(b"f" + float(obj).hex().encode() + b";")
    elif isinstance(obj, str):
        put(b"s" + str(len(obj)).encode() + b":" + obj.encode("utf-8", "surrogatepass"))
    elif isinstance(obj, bytes):
        put(b"b" + str(len(obj)).encode() + b":" + obj)
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        if a.dtype == object:
            feed(h, a.tolist(), other, depth + 1)
        else:
            put(f"a{a.dtype.str}{a.shape}".encode() + a.tobytes())
    elif isinstance(obj, Mapping):
        put(b"d" + str(len(obj)).encode())
        for key in sorted(obj, key=repr):
            feed(h, key, other, depth + 1)
            feed(h, obj[key], other, depth + 1)
    elif isinstance(obj, (list, tuple)):
        put(b"l" + str(len(obj)).encode())
        for item in obj:
            feed(h, item, other, depth + 1)
    else:
        other(h, obj, depth)
