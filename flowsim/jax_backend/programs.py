r"""Traced JAX programs kept between processes (``jax.export``), so that a second process
neither traces nor compiles what the first one did.

JAX's persistent compilation cache (:func:`flowsim.backends.cache_folder`) skips compiling a
program it has seen, but every process still traces it again, and tracing a diffrax solve is
most of its first call (0.8 s of 1.0 s for a Tsit5 flow, 1.3 s of 1.45 s for Kvaerno5; the
schemes' scan driver 0.2-0.7 s). The flows and the schemes keep their programs here. A
:class:`Program` serializes the traced program with ``jax.export`` under a key that holds
everything the trace depends on, in ``programs/`` beside the compilation cache; a later
process reads it and calls it, and the compilation cache supplies the executable.

What the key holds (:func:`program_key`): the caller's settings (method, tolerances, output
times, stop rules, budget); the loss as the expressions the JAX printer prints (its value,
gradient and Hessian in ``sympy.srepr``, the variables in order, the bound parameters and
data by value); the argument shapes and dtypes; a digest of flowsim's own sources; the
versions of Python, numpy, sympy, symengine, jax, jaxlib, diffrax, equinox, lineax and
optimistix; the platform and device kind, and the settings that change a trace
(:data:`TRACE_FLAGS`, ``EQX_ON_ERROR``). A callable in the settings is identified by its code
only where that code is flowsim's own (its module is a flowsim module, and the values it
closes over are identified in turn): a researcher's own vector field, update rule or
coefficients can change without its name changing, so a run that involves one is traced in
every process as before, never read from the store.

The store is off with the compilation cache (``FLOWSIM_JAX_CACHE=off``), keeps at most
:data:`STORE_BYTES` (the least recently used programs go first), and never fails a run: a
program that cannot be exported (one that calls back to the host), a file that cannot be
read or written, a missing ``flatbuffers`` package, all fall back to the plain ``jax.jit``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import sys
import tempfile
import types
from importlib import metadata

import numpy as np

from .._digest import feed
from ..backends import cache_folder

__all__ = ["Program", "program_key", "STORE_BYTES"]

#: The store's size limit; past it the least recently used programs are removed.
STORE_BYTES = 256 * 2 ** 20
#: The distributions whose versions are part of every key.
VERSIONED = ("numpy", "sympy", "symengine", "jax", "jaxlib", "diffrax", "equinox", "lineax",
             "optimistix")
#: JAX settings that change what a trace produces.
TRACE_FLAGS = ("jax_enable_x64", "jax_default_matmul_precision", "jax_numpy_dtype_promotion",
               "jax_numpy_rank_promotion", "jax_default_prng_impl", "jax_enable_checks")
_SUFFIX = ".jaxexport"


class Unidentified(TypeError):
    """A value in a program's settings that cannot be identified by what it computes."""


def _other(h, obj, depth):
    """What a program key identifies besides plain values (:func:`flowsim._digest.feed`):
    a loss by what the JAX printer prints, and flowsim's own code (dataclasses, functions,
    partials) with what it closes over; anything else raises :class:`Unidentified`."""
    put = h.update
    if type(obj).__name__ == "Loss" and hasattr(obj, "symbol_values"):
        put(b"L" + _loss_digest(obj).encode())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        _own_code(type(obj))
        put(f"D{type(obj).__module__}.{type(obj).__qualname__}".encode())
        feed(h, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, _other,
             depth + 1)
    elif isinstance(obj, functools.partial):
        put(b"P")
        feed(h, (obj.func, obj.args, dict(obj.keywords)), _other, depth + 1)
    elif isinstance(obj, (types.FunctionType, type)):
        _own_code(obj)
        put(f"F{obj.__module__}.{obj.__qualname__}".encode())
        cells = getattr(obj, "__closure__", None) or ()
        feed(h, [c.cell_contents for c in cells], _other, depth + 1)
        feed(h, getattr(obj, "__defaults__", None), _other, depth + 1)
        feed(h, getattr(obj, "__kwdefaults__", None), _other, depth + 1)
    else:
        raise Unidentified(f"a {type(obj).__name__} cannot be identified by what it computes")


def _own_code(obj):
    """Raise :class:`Unidentified` unless ``obj`` (a function or class) is flowsim's own,
    whose code the digest of flowsim's sources covers."""
    module = getattr(obj, "__module__", None) or ""
    if module != "flowsim" and not module.startswith("flowsim."):
        raise Unidentified(f"{getattr(obj, '__qualname__', obj)!r} is not flowsim's own code")


def _loss_digest(loss):
    """The loss as the JAX backend prints it: value, gradient and Hessian expressions, the
    variables in order, the bound symbols and their values (kept with the loss)."""
    def digest():
        import sympy as sp
        h = hashlib.sha256()
        H = loss.hessian_expr
        hessian = sorted((i, j, sp.srepr(e)) for (i, j), e in H.todok().items())
        feed(h, (sp.srepr(loss.expr), [sp.srepr(e) for e in loss.gradient_expr], hessian,
                 [sp.srepr(v) for v in loss.variables], loss.n_samples), _other)
        for symbol, value in loss.symbol_values().items():
            feed(h, (sp.srepr(symbol), np.asarray(value, dtype=float)), _other)
        return h.hexdigest()
    return loss.memo("program_digest", digest)


@functools.lru_cache(maxsize=None)
def _sources_digest():
    """A digest of every flowsim source file (the code a trace runs)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            h.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def _version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=None)
def _versions():
    return (sys.version, tuple(_version(name) for name in VERSIONED))


def _environment(jax):
    """What the trace depends on besides the settings: sources, versions, platform, flags."""
    device = jax.devices()[0]
    # equinox reads EQX_ON_ERROR once, when imported: the value it took, where it has one
    on_error = getattr(sys.modules.get("equinox._config"), "EQX_ON_ERROR",
                       os.environ.get("EQX_ON_ERROR"))
    flags = tuple(str(getattr(jax.config, name, None)) for name in TRACE_FLAGS)
    return (_sources_digest(), _versions(), jax.default_backend(), device.device_kind,
            flags, on_error)


def program_key(parts, args, jax):
    """The hex key of the program traced from ``parts`` for arguments ``args`` (a pytree of
    arrays), or None where a part is a researcher's own code (see the module notes)."""
    h = hashlib.sha256(b"flowsim program 1\0")
    leaves, tree = jax.tree_util.tree_flatten(args)
    try:
        feed(h, (_environment(jax), str(tree), [(tuple(a.shape), str(a.dtype)) for a in leaves],
                 parts), _other)
    except TypeError:   # Unidentified, or nested past what can be identified
        return None
    return h.hexdigest()


def _store():
    folder = cache_folder()
    return None if folder is None else os.path.join(folder, "programs")


def _read(path, jax):
    """The exported program at ``path``, or None (absent, unreadable or not one)."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return None
    try:
        exported = jax.export.deserialize(bytearray(blob))
    except Exception:  # noqa: BLE001 - a damaged entry is replaced, never fatal
        try:
            os.remove(path)
        except OSError:
            pass
        return None
    try:
        os.utime(path)   # recently used: the last to go when the store is trimmed
    except OSError:
        pass
    return exported


def _write(folder, path, blob):
    """Write ``blob`` to ``path`` atomically, then trim the store to :data:`STORE_BYTES`
    (the least recently used first; the program just written stays)."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
        entries = []
        for entry in os.scandir(folder):
            if entry.name.endswith(_SUFFIX) and entry.path != path:   # the new one stays
                stat = entry.stat()
                entries.append((stat.st_mtime, stat.st_size, entry.path))
        total = len(blob) + sum(size for _, size, _ in entries)
        for _, size, old in sorted(entries):
            if total <= STORE_BYTES:
                break
            os.remove(old)
            total -= size
    except OSError:
        pass   # a read-only or full disk loses the store, not the run


class Program:
    """A jitted function whose traced program, per argument shape, is read from the store
    when a process before this one traced it, else traced, exported and stored.

    Parameters
    ----------
    build : callable
        ``build()`` -> the ``jax.jit``-ed function (called at most once, only when a trace is
        needed: a program read from the store needs no loss compiled for JAX).
    parts : tuple
        The settings the trace depends on, besides the environment and argument shapes
        (:func:`program_key`).
    """

    def __init__(self, build, parts):
        self._build, self._parts = build, parts
        self._jitted = None
        self._by_shape = {}

    def jitted(self):
        """The plain ``jax.jit``-ed function (traced in this process)."""
        if self._jitted is None:
            self._jitted = self._build()
        return self._jitted

    def __call__(self, *args):
        from . import require
        jax, _ = require()
        folder = _store()
        if folder is None:
            return self.jitted()(*args)
        spec = tuple((tuple(a.shape), str(a.dtype)) for a in jax.tree_util.tree_leaves(args))
        call = self._by_shape.get(spec)
        if call is None:
            call = self._by_shape[spec] = self._load(folder, args, jax)
        return call(*args)

    def _load(self, folder, args, jax):
        key = program_key(self._parts, args, jax)
        if key is None:
            return self.jitted()
        path = os.path.join(folder, key + _SUFFIX)
        exported = _read(path, jax)
        if exported is None:
            try:
                exported = jax.export.export(self.jitted())(*jax.tree_util.tree_map(
                    lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args))
                blob = exported.serialize()
            except Exception:  # noqa: BLE001 - e.g. a host callback, or no flatbuffers
                return self.jitted()
            _write(folder, path, bytes(blob))
        return jax.jit(exported.call)
