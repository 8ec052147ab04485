r"""An :class:`~flowsim.rules.UpdateRule`'s step as formulas: the rule run once on symbols.

The compiled backend (:mod:`flowsim.compiled`) does not read the rule's Python: it calls
``rule.step(k, eta, x, state, ops, options)`` once with symbolic stand-ins, one start of shape
(1, n) whose entries are the loss's own variables, the state's entries, k and eta as symbols,
and ``ops`` whose ``grad``, ``value`` and ``hess`` return the loss's derivatives at the
symbolic point. What comes back is the step as sympy expressions of those symbols: x_{k+1},
grad L(x_k) for the stop test, the next state and the failure flag, one formula per entry.

The stand-ins (:class:`Traced`) do arithmetic, comparisons (``x > 0`` is a formula, not a
bool) and the functions of :data:`FUNCTIONS` on ``ops.xp``; ``xp.where`` becomes a
piecewise formula. What a formula cannot stand for is refused in one sentence
(:class:`~flowsim.backends.Refused`, so ``backend="auto"`` runs the call on numpy):

* a Python ``if`` on a value that differs between starts or steps (``bool(x > 0)``);
* a function of ``xp`` outside :data:`FUNCTIONS`, ``ops.solve`` (a linear solve has no
  short formula), a finite-sum loss (its mean over the data).

Every float a rule brings (an option, a constant in its code) becomes a named constant whose
value is passed to the compiled code at run time, so no number is ever printed into source
(a printed float can lose its last digits). Integers stay exact.

Examples
--------
>>> import numpy as np
>>> from flowsim import Loss
>>> from flowsim.rules import UpdateRule
>>> def step(k, eta, x, state, ops, options):
...     g = ops.grad(x)
...     return x - eta * g, g, state, False
>>> t = trace_step(Loss("x**2/2 + y**4"), UpdateRule(step), {})
>>> t.x_next
(-_eta*x + x, -4*_eta*y**3 + y)
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..backends import Refused, refuse

__all__ = ["Traced", "TracedStep", "trace_step", "FUNCTIONS"]


class _Untraceable(Exception):
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
        raise _Untraceable("it decides with a Python `if` (or and/or, min, max) on a value "
                           "that differs between starts or steps; write xp.where")

    def __float__(self):
        raise _Untraceable("it asks Python for the number a traced value holds")

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


class _Constants:
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
    raise _Untraceable(f"it computes with a {type(value).__name__}")


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


def _isfinite(e):
    return sp.Function("isfinite")(e)


def _like(fill):
    def make(a, *args, **kwargs):
        return formulas(np.full(np.shape(a), Traced(sp.Integer(fill)), dtype=object))
    return make


def _asarray(a, *args, **kwargs):
    return formulas(np.array(a, dtype=object))


#: What ``ops.xp`` offers in a trace: numpy's name -> how it acts on formulas.
FUNCTIONS = {
    "sqrt": _entrywise(sp.sqrt), "exp": _entrywise(sp.exp), "log": _entrywise(sp.log),
    "abs": _entrywise(sp.Abs), "absolute": _entrywise(sp.Abs), "sign": _entrywise(sp.sign),
    "sin": _entrywise(sp.sin), "cos": _entrywise(sp.cos), "tanh": _entrywise(sp.tanh),
    "arctan": _entrywise(sp.atan), "square": _entrywise(lambda u: u ** 2),
    "maximum": _entrywise(sp.Max, 2), "minimum": _entrywise(sp.Min, 2),
    "isfinite": _entrywise(_isfinite),
    "clip": _entrywise(lambda u, lo, hi: sp.Min(sp.Max(u, lo), hi), 3),
    "where": _where, "sum": _reduce(sp.Add), "prod": _reduce(sp.Mul), "max": _reduce(sp.Max),
    "min": _reduce(sp.Min), "all": _reduce(sp.And), "any": _reduce(sp.Or),
    "zeros_like": _like(0), "ones_like": _like(1), "asarray": _asarray, "array": _asarray,
    "stack": lambda arrays, axis=0: formulas(np.stack([np.asarray(a, dtype=object)
                                                       for a in arrays], axis)),
    "float64": np.float64, "inf": math.inf, "nan": math.nan, "pi": Traced(sp.pi),
    "newaxis": None,
}


class _SymbolicNumpy:
    """``ops.xp`` in a trace: :data:`FUNCTIONS`, and a refusal naming anything else."""

    def __getattr__(self, name):
        if name in FUNCTIONS:
            return FUNCTIONS[name]
        raise _Untraceable(f"it calls xp.{name}, which the compiled backend does not have "
                           f"(it has {', '.join(sorted(FUNCTIONS))})")


class _SymbolicOps:
    """``ops`` in a trace: the loss's derivatives at a symbolic point, calls counted."""

    def __init__(self, loss):
        self.xp, self.n, self._loss = _SymbolicNumpy(), loss.n, loss
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
            raise _Untraceable(f"it evaluates the loss at an array of shape {np.shape(x)}, "
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
        raise _Untraceable("it solves a linear system (ops.solve), which has no short "
                           "formula")


@dataclass(frozen=True)
class TracedStep:
    """One step of a rule as formulas of ``k``, ``eta``, the loss's variables, the state's
    entries ``state`` and the constants ``constants`` (bound to ``constant_values``).

    ``x_next`` has n formulas, ``grad`` n or None (no stop test on the gradient),
    ``state_next`` one per entry of ``state``, ``failed`` one boolean formula; ``calls``
    counts the loss evaluations of one step (value, grad, hess).
    """

    k: sp.Symbol
    eta: sp.Symbol
    state: tuple
    constants: tuple
    constant_values: tuple
    x_next: tuple
    grad: tuple | None
    state_next: tuple
    failed: object
    calls: dict


def _leaves(state):
    """The arrays of a state (an array, or nested tuples of them), in order."""
    if isinstance(state, (tuple, list)):
        return [leaf for s in state for leaf in _leaves(s)]
    return [state]


def _rebuild(state, leaves):
    """The state of the same structure as ``state`` with its arrays from ``leaves``."""
    if isinstance(state, (tuple, list)):
        return tuple(_rebuild(s, leaves) for s in state)
    return leaves.pop(0)


def _formulas(value, shape, what, owner):
    arr = np.asarray(value, dtype=object)
    if arr.shape != shape:
        arr = np.broadcast_to(arr, shape) if arr.ndim <= len(shape) else arr
    if arr.shape != shape:
        refuse(f"{owner}: its {what} has the shape {arr.shape}, not {shape}; it cannot be "
               "compiled (backend='numpy' says what is wrong).")
    return tuple(sp.sympify(lift(v)) if not isinstance(v, Traced) else v.e
                 for v in arr.reshape(-1))


def trace_step(loss, rule, options, owner="the update rule"):
    """The step of ``rule`` with ``options`` on ``loss`` as a :class:`TracedStep`.

    Raises
    ------
    Refused
        Where the step cannot be written as formulas (see the module's notes); the sentence
        names the cause and says to use backend='numpy'.
    """
    if loss.n_samples is not None:
        refuse("a finite-sum loss (data bound) is not compiled; use backend='numpy' or 'jax'.")
    k = sp.Dummy("k", integer=True, nonnegative=True)
    eta = sp.Dummy("eta", positive=True)
    x = formulas(np.array([[Traced(v) for v in loss.variables]], dtype=object))
    template = rule.start(np.zeros((1, loss.n)), options, np)
    leaves = [np.asarray(a) for a in _leaves(template)]
    symbols, traced_leaves = [], []
    for j, leaf in enumerate(leaves):
        if leaf.ndim == 0 or leaf.shape[0] != 1:
            refuse(f"{owner}: its state has an array of shape {leaf.shape} without a row per "
                   "start; it cannot be compiled.")
        names = [sp.Dummy(f"s{j}_{i}", real=True) for i in range(leaf.size)]
        symbols += names
        traced_leaves.append(formulas(np.array([Traced(s) for s in names], dtype=object)
                                      .reshape(leaf.shape)))
    state = _rebuild(template, list(traced_leaves))
    ops = _SymbolicOps(loss)
    _CONSTANTS[0] = constants = _Constants()
    try:
        with np.errstate(all="ignore"):
            out = rule.step(Traced(k), Traced(eta), x, state, ops, options)
        x_next, g, state_next, failed = out
        x_f = _formulas(x_next, (1, loss.n), "next iterate", owner)
        g_f = None if g is None else _formulas(g, (1, loss.n), "gradient", owner)
        new_leaves = _leaves(state_next)
        if len(new_leaves) != len(leaves):
            refuse(f"{owner}: its next state has {len(new_leaves)} arrays, not "
                   f"{len(leaves)}; it cannot be compiled.")
        s_f = sum((_formulas(v, leaf.shape, "next state", owner)
                   for v, leaf in zip(new_leaves, leaves)), ())
        flag = np.asarray(failed, dtype=object).reshape(-1)
        if flag.size != 1:
            refuse(f"{owner}: its failure flag has {flag.size} entries for one start; it "
                   "cannot be compiled.")
        fail = lift(flag[0])
    except Refused:
        raise
    except _Untraceable as err:
        refuse(f"{owner} cannot be compiled: {err}; use backend='numpy' (or 'jax').")
    except Exception as err:   # a researcher's step may fail on formulas in any way
        refuse(f"{owner} cannot be compiled: its step failed on formulas "
               f"({type(err).__name__}: {err}); use backend='numpy' (or 'jax').")
    finally:
        _CONSTANTS[0] = None
    return TracedStep(k, eta, tuple(symbols), tuple(constants.symbols),
                      tuple(constants.values), x_f, g_f, s_f, fail, dict(ops.calls))
