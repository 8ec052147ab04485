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

from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..backends import Refused, refuse
from .symbols import (SymbolicNumpy, SymbolicOps, Traced, Untraceable, constants_of,
                      formulas, lift)

__all__ = ["TracedStep", "trace_step", "state_arrays", "TracedField", "trace_field",
           "trace_coefficients"]


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


def state_arrays(state):
    """The arrays of a state (an array, or nested tuples of them), in order."""
    if isinstance(state, (tuple, list)):
        return [leaf for s in state for leaf in state_arrays(s)]
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
    # lift takes Traced values, numbers and sympy objects only (text is refused there)
    return tuple(lift(v) for v in arr.reshape(-1))


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
    leaves = [np.asarray(a) for a in state_arrays(template)]
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
    ops = SymbolicOps(loss)

    def run():
        x_next, g, state_next, failed = rule.step(Traced(k), Traced(eta), x, state, ops,
                                                  options)
        x_f = _formulas(x_next, (1, loss.n), "next iterate", owner)
        g_f = None if g is None else _formulas(g, (1, loss.n), "gradient", owner)
        new_leaves = state_arrays(state_next)
        if len(new_leaves) != len(leaves):
            refuse(f"{owner}: its next state has {len(new_leaves)} arrays, not "
                   f"{len(leaves)}; it cannot be compiled.")
        s_f = sum((_formulas(v, leaf.shape, "next state", owner)
                   for v, leaf in zip(new_leaves, leaves)), ())
        return x_f, g_f, s_f, _flag(failed, "failure flag", owner)
    (x_f, g_f, s_f, fail), constants = _traced(run, owner)
    return TracedStep(k, eta, tuple(symbols), tuple(constants.symbols),
                      tuple(constants.values), x_f, g_f, s_f, fail, dict(ops.calls))


def _flag(value, what, owner):
    """One start's boolean (a failure flag, a guard) as one formula."""
    flag = np.asarray(value, dtype=object).reshape(-1)
    if flag.size != 1:
        refuse(f"{owner}: its {what} has {flag.size} entries for one start; it cannot be "
               "compiled.")
    return lift(flag[0])


def _traced(run, owner):
    """``run()`` on formulas, with its constants; what it cannot do, refused in one
    sentence."""
    try:
        with np.errstate(all="ignore"):
            return constants_of(run)
    except Refused:
        raise
    except Untraceable as err:
        refuse(f"{owner} cannot be compiled: {err}; use backend='numpy' (or 'jax').")
    except Exception as err:   # a researcher's code may fail on formulas in any way
        refuse(f"{owner} cannot be compiled: it failed on formulas "
               f"({type(err).__name__}: {err}); use backend='numpy' (or 'jax').")


@dataclass(frozen=True)
class TracedField:
    """A vector field as formulas of the loss's variables and the constants ``constants``
    (bound to ``constant_values``): ``field`` (n formulas of dx/dt), ``guard`` (one boolean
    formula, True where the flow stops, or None) and ``calls`` (the loss evaluations of one
    field evaluation, and ``guard_calls`` of one guard test)."""

    constants: tuple
    constant_values: tuple
    field: tuple
    guard: object
    calls: dict
    guard_calls: dict


def trace_field(loss, field, options, owner="the vector field"):
    """The :class:`~flowsim.rules.VectorField` ``field`` with ``options`` on ``loss`` as a
    :class:`TracedField`.

    Raises
    ------
    Refused
        Where the field or its guard cannot be written as formulas.
    """
    if loss.n_samples is not None:
        refuse("a finite-sum loss (data bound) is not compiled; use backend='numpy' or 'jax'.")
    x = formulas(np.array([[Traced(v) for v in loss.variables]], dtype=object))
    ops, guard_ops = SymbolicOps(loss), SymbolicOps(loss)

    def run():
        f = _formulas(field.field(x, ops, options), (1, loss.n), "value dx/dt", owner)
        guard = None if field.guard is None else \
            _flag(field.guard(x, guard_ops, options), "guard", owner)
        return f, guard
    (f, guard), constants = _traced(run, owner)
    return TracedField(tuple(constants.symbols), tuple(constants.values), f, guard,
                       dict(ops.calls), dict(guard_ops.calls))


def trace_coefficients(rule, options, t, owner="the momentum flow"):
    """A :class:`~flowsim.rules.SecondOrderField`'s friction and mass at the time symbol
    ``t`` as formulas: ``(c, m, constants, constant_values)``; the mass is NaN where it is
    not positive (outside the flow's domain), as the numpy engines take it."""
    def run():
        c, m = rule.coefficients(Traced(t), options, SymbolicNumpy())
        c, m = (_flag(v, "coefficient", owner) for v in (c, m))
        return c, sp.Piecewise((m, m > 0), (sp.nan, True))
    (c, m), constants = _traced(run, owner)
    return c, m, tuple(constants.symbols), tuple(constants.values)
