r"""Symbolic stand-ins for a method's own code: numbers known only as formulas.

:class:`Traced` wraps a sympy expression and does arithmetic, comparisons (``x > 0`` is a
formula, not a bool) and, through ``ops.xp`` (:data:`FUNCTIONS`), numpy's functions;
``xp.where`` becomes a piecewise formula. ``ops`` (:class:`SymbolicOps`) returns the loss's
derivatives at a symbolic point and counts the calls. Whatever a formula cannot stand for
raises :class:`Untraceable` with the reason (a Python ``if`` on a traced value, a function
``xp`` lacks, a linear solve). The floats a trace meets become named constants
(:class:`Constants`, see :func:`lift`), so no number is ever printed into source.
"""
from __future__ import annotations

import functools
import math
import numbers

import numpy as np
import sympy as sp

__all__ = ["Traced", "Untraceable", "formulas", "lift", "Constants", "constants_of",
           "SymbolicOps", "SymbolicNumpy", "FUNCTIONS"]


class Untraceable(Exception):
    """Raised inside a trace where the rule asks for something a formula cannot be."""


class Traced:
    """A number known only as a formula (a sympy expression ``e``), in a rule's trace."""

    __slots__ = ("e",)

    def __init__(self, e):
        self.e = e

    def _op(self, other, func):
        if isinstance(other, np.ndarray):
            return NotImplemented   # numpy takes it, entry by entry
        return Traced(func(self.e, lift(other)))

    def __add__(self, o): return self._op(o, lambda a, b: a + b)
    def __radd__(self, o): return self._op(o, lambda a, b: b + a)
    def __sub__(self, o): return self._op(o, lambda a, b: a - b)
    def __rsub__(self, o): return self._op(o, lambda a, b: b - a)
    def __mul__(self, o): return self._op(o, lambda a, b: a * b)
    def __rmul__(self, o): return self._op(o, lambda a, b: b * a)
    def __truediv__(self, o): return self._op(o, lambda a, b: a / b)
    def __rtruediv__(self, o): return self._op(o, lambda a, b: b / a)
    def __pow__(self, o): return self._op(o, lambda a, b: a ** b)
    def __rpow__(self, o): return self._op(o, lambda a, b: b ** a)
    def __lt__(self, o): return self._op(o, sp.StrictLessThan)
    def __le__(self, o): return self._op(o, sp.LessThan)
    def __gt__(self, o): return self._op(o, sp.StrictGreaterThan)
    def __ge__(self, o): return self._op(o, sp.GreaterThan)
    def __eq__(self, o): return self._op(o, sp.Eq)
    def __ne__(self, o): return self._op(o, sp.Ne)
    def __and__(self, o): return self._op(o, sp.And)
    def __rand__(self, o): return self._op(o, sp.And)
    def __or__(self, o): return self._op(o, sp.Or)
    def __ror__(self, o): return self._op(o, sp.Or)
    def __neg__(self): return Traced(-self.e)
    def __pos__(self): return self
    def __abs__(self): return Traced(sp.Abs(self.e))
    def __invert__(self): return Traced(sp.Not(self.e))
    __hash__ = object.__hash__

    def __bool__(self):
        raise Untraceable("it decides with a Python `if` (or and/or, min, max) on a value "
                           "that differs between starts or steps; write xp.where")

    def __float__(self):
        raise Untraceable("it asks Python for the number a traced value holds")

    __int__ = __index__ = __float__

    def __repr__(self):
        return f"Traced({self.e})"


class _Formulas(np.ndarray):
    """An array of :class:`Traced` entries (and numbers) whose ufuncs take numpy's object
    loops: ``x > 0`` is an array of formulas, where a plain object array would ask each
    entry for a bool."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        args = [np.asarray(a) if isinstance(a, _Formulas) else a for a in inputs]
        if method == "__call__" and ufunc.nout == 1 and "out" not in kwargs:
            kwargs.setdefault("dtype", object)
        return formulas(getattr(ufunc, method)(*args, **kwargs))


def formulas(value):
    """``value`` as a :class:`_Formulas` array where it is an array (else as it is)."""
    if isinstance(value, np.ndarray) and not isinstance(value, _Formulas):
        return np.asarray(value, dtype=object).view(_Formulas)
    return value


class Constants:
    """The floats a trace met, each one symbol (the same float, the same symbol)."""

    def __init__(self):
        self.symbols, self.values, self._by_bits = [], [], {}

    def of(self, value):
        key = np.float64(value).tobytes()
        if key not in self._by_bits:
            self._by_bits[key] = sp.Dummy(f"c{len(self.values)}", real=True)
            self.symbols.append(self._by_bits[key])
            self.values.append(float(value))
        return self._by_bits[key]


_CONSTANTS = [None]   # the trace in progress keeps its constants here


def lift(value):
    """``value`` (a Traced, a bool, an int or a float) as a sympy object; a float that is not
    a whole number becomes a named constant of the trace in progress."""
    if isinstance(value, Traced):
        return value.e
    if isinstance(value, (bool, np.bool_)):
        return sp.true if value else sp.false
    if isinstance(value, numbers.Integral):
        return sp.Integer(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return sp.nan
        if math.isinf(v):
            return sp.oo if v > 0 else -sp.oo
        if v == int(v) and abs(v) < 2 ** 53:
            return sp.Integer(int(v))
        return _CONSTANTS[0].of(v)
    if isinstance(value, sp.Basic):
        return value
    raise Untraceable(f"it computes with a {type(value).__name__}")


def _entrywise(func, arity=1):
    """``func`` of sympy objects, applied entry by entry to Traced values, numbers, arrays."""
    def apply(*args):
        return formulas(np.frompyfunc(lambda *a: Traced(func(*[lift(v) for v in a])),
                                      arity, 1)(*args))
    return apply


def _where(cond, a, b):
    def pick(c, x, y):
        c = lift(c)
        if c is sp.true or c is sp.false:
            return x if c is sp.true else y
        return Traced(sp.Piecewise((lift(x), c), (lift(y), True)))
    return formulas(np.frompyfunc(pick, 3, 1)(cond, a, b))


def _reduce(func):
    def apply(a, axis=None, keepdims=False, **_):
        a = np.asarray(a, dtype=object)
        axis = tuple(range(a.ndim)) if axis is None else axis
        axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
        axes = tuple(ax % a.ndim for ax in axes)
        moved = np.moveaxis(a, axes, tuple(range(a.ndim - len(axes), a.ndim)))
        flat = moved.reshape(moved.shape[:a.ndim - len(axes)] + (-1,))
        out = np.empty(flat.shape[:-1], dtype=object)
        for idx in np.ndindex(out.shape):
            out[idx] = Traced(func(*[lift(v) for v in flat[idx]]))
        if keepdims:
            out = np.expand_dims(out, axes)
        return formulas(out) if out.shape else out[()]
    return apply


#: numpy's sign, maximum and minimum, kept as calls (the generated modules import numpy's):
#: a Piecewise would not keep NaN, as sympy reasons on real numbers and drops the branch that
#: only NaN takes, and Python's copysign and max, which its printer writes, make NaN a number.
#: isfinite is math's.
_sign, _maximum, _minimum, _isfinite = (sp.Function(name) for name in
                                        ("sign", "maximum", "minimum", "isfinite"))


def _fold(pair):
    """The reduction of any number of formulas by the two-argument ``pair``."""
    return lambda *args: functools.reduce(pair, args)


def _like(fill):
    def make(a, *args, **kwargs):
        return formulas(np.full(np.shape(a), Traced(sp.Integer(fill)), dtype=object))
    return make


def _asarray(a, *args, **kwargs):
    return formulas(np.array(a, dtype=object))


#: What ``ops.xp`` offers in a trace: numpy's name -> how it acts on formulas.
FUNCTIONS = {
    "sqrt": _entrywise(sp.sqrt), "exp": _entrywise(sp.exp), "log": _entrywise(sp.log),
    "abs": _entrywise(sp.Abs), "absolute": _entrywise(sp.Abs), "sign": _entrywise(_sign),
    "sin": _entrywise(sp.sin), "cos": _entrywise(sp.cos), "tanh": _entrywise(sp.tanh),
    "arctan": _entrywise(sp.atan), "square": _entrywise(lambda u: u ** 2),
    "maximum": _entrywise(_maximum, 2), "minimum": _entrywise(_minimum, 2),
    "isfinite": _entrywise(_isfinite),
    "clip": _entrywise(lambda u, lo, hi: _minimum(_maximum(u, lo), hi), 3),
    "where": _where, "sum": _reduce(sp.Add), "prod": _reduce(sp.Mul),
    "max": _reduce(_fold(_maximum)), "min": _reduce(_fold(_minimum)),
    "all": _reduce(sp.And), "any": _reduce(sp.Or),
    "zeros_like": _like(0), "ones_like": _like(1), "asarray": _asarray, "array": _asarray,
    "stack": lambda arrays, axis=0: formulas(np.stack([np.asarray(a, dtype=object)
                                                       for a in arrays], axis)),
    "float64": np.float64, "inf": math.inf, "nan": math.nan, "pi": Traced(sp.pi),
    "newaxis": None,
}


class SymbolicNumpy:
    """``ops.xp`` in a trace: :data:`FUNCTIONS`, and a refusal naming anything else."""

    def __getattr__(self, name):
        if name in FUNCTIONS:
            return FUNCTIONS[name]
        raise Untraceable(f"it calls xp.{name}, which the compiled backend does not have "
                           f"(it has {', '.join(sorted(FUNCTIONS))})")


class SymbolicOps:
    """``ops`` in a trace: the loss's derivatives at a symbolic point, calls counted."""

    def __init__(self, loss):
        self.xp, self.n, self._loss = SymbolicNumpy(), loss.n, loss
        self.calls = {"value": 0, "grad": 0, "hess": 0}

    def _at(self, x, exprs, shape):
        self._check(x)
        out = np.empty((x.shape[0],) + shape, dtype=object)
        for r in range(x.shape[0]):
            point = dict(zip(self._loss.variables, (lift(v) for v in x[r])))
            for idx, e in zip(np.ndindex(shape), exprs):
                out[(r,) + idx] = Traced(e.xreplace(point))
        return formulas(out)

    def _check(self, x):
        if np.shape(x)[-1:] != (self.n,) or np.ndim(x) != 2:
            raise Untraceable(f"it evaluates the loss at an array of shape {np.shape(x)}, "
                               f"not (starts, {self.n})")

    def value(self, x):
        self.calls["value"] += 1
        return self._at(x, [self._loss.expr], ())

    def grad(self, x):
        self.calls["grad"] += 1
        return self._at(x, list(self._loss.gradient_expr), (self.n,))

    def hess(self, x):
        self.calls["hess"] += 1
        H = self._loss.hessian_expr
        return self._at(x, [H[i, j] for i in range(self.n) for j in range(self.n)],
                        (self.n, self.n))

    def solve(self, A, b):
        raise Untraceable("it solves a linear system (ops.solve), which has no short "
                           "formula")


def constants_of(run):
    """``run()`` with the floats it lifts named in a fresh :class:`Constants`; returns
    ``(result, constants)``."""
    _CONSTANTS[0] = constants = Constants()
    try:
        return run(), constants
    finally:
        _CONSTANTS[0] = None
