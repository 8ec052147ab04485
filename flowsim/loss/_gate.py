"""The one gate every symbolic input passes: whitelisted nodes, real finite constants, a budget.

A loss reaches the compilers either as text (parsed by :mod:`flowsim.loss._parse`) or as a sympy
expression built by the user. Both are checked here, in one walk over the expression's DAG
(shared sub-expressions are visited once, so an exponentially large tree costs linear work):

* **Whitelist.** Only real symbols with plain names, finite real numbers, ``pi`` and ``E``,
  ``+ * **`` and the functions of :data:`ALLOWED_FUNCTIONS` may occur. Undefined functions,
  ``Integral``, ``Sum``, ``Derivative``, ``Piecewise``, relations, ``I``, ``oo``, ``zoo`` and
  ``nan`` are refused, so nothing reaches a code printer that this module did not allow.
* **Real constants.** Every constant sub-expression that is not a plain number is evaluated
  in float64 complex arithmetic (bounded work, never mpmath's adaptive precision) and must be
  real and finite: ``asin(2)``, ``(-8)**(1/3)`` and ``exp(1000)`` are refused; a negative
  constant raised to a variable power is refused.
* **Budget.** The tree size, nesting depth, integer digits and exponents are bounded by a
  :class:`Budget` before any differentiation; the derivative sizes are bounded by the same
  budget while they are built (:mod:`flowsim.loss._compile`).
"""
from __future__ import annotations

import cmath
import keyword
import math
import re

import sympy as sp

from ._budget import Budget, digits_of, postorder

__all__ = ["check_expression", "check_name", "RESERVED_NAMES", "ALLOWED_FUNCTIONS"]

#: sympy function classes a loss may contain (the images of the formula whitelist).
ALLOWED_FUNCTIONS = frozenset({sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.asin, sp.acos,
                               sp.atan, sp.atan2, sp.sinh, sp.cosh, sp.tanh, sp.erf, sp.Abs,
                               sp.sign, sp.Min, sp.Max})

#: Names a variable, parameter or data column may not take: the formula language's
#: functions and constants, sympy's special values, and Python's keywords.
RESERVED_NAMES = frozenset({
    "exp", "log", "ln", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh",
    "cosh", "tanh", "erf", "abs", "Abs", "sign", "min", "Min", "max", "Max", "relu",
    "sigmoid", "softplus", "pi", "E", "I", "oo", "zoo", "nan", "inf", "Heaviside",
    "DiracDelta"} | set(keyword.kwlist) | set(keyword.softkwlist))

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def check_name(name, what):
    """``name`` if it can name a variable, parameter or data column; else ValueError."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"{what}: {name!r} is not a valid name; use ASCII names that start "
                         "with a letter, such as 'x', 'y', 'w1'.")
    if name in RESERVED_NAMES:
        raise ValueError(f"{what}: {name!r} is the name of a function, constant or keyword; "
                         "choose another name, such as 'x' or 'w1'.")
    return name


def _numeric(e, memo):
    """Value of a constant expression in complex float64; nan where it is undefined."""
    got = memo.get(id(e))
    if got is not None:
        return got
    try:
        if e.is_Integer or e.is_Rational:
            value = complex(int(e.p) / int(e.q))
        elif e.is_Float:
            value = complex(float(e))
        elif e is sp.pi:
            value = complex(math.pi)
        elif e is sp.E:
            value = complex(math.e)
        else:
            args = [_numeric(a, memo) for a in e.args]
            value = _apply(e, args)
    except (OverflowError, ZeroDivisionError, ValueError, TypeError):
        value = complex(math.nan, 0.0)
    memo[id(e)] = value
    return value


_CMATH = {sp.exp: cmath.exp, sp.log: cmath.log, sp.sin: cmath.sin, sp.cos: cmath.cos,
          sp.tan: cmath.tan, sp.asin: cmath.asin, sp.acos: cmath.acos, sp.atan: cmath.atan,
          sp.sinh: cmath.sinh, sp.cosh: cmath.cosh, sp.tanh: cmath.tanh}


def _real_args(e, args):
    if any(abs(a.imag) > 0 for a in args):
        raise ValueError(f"{type(e).__name__} of a non-real value")
    return [a.real for a in args]


def _apply(e, args):
    if e.is_Add:
        return sum(args, 0j)
    if e.is_Mul:
        out = 1 + 0j
        for a in args:
            out *= a
        return out
    if e.is_Pow:
        base, power = args
        if power.imag == 0 and float(power.real).is_integer() and abs(power.real) <= 1e4:
            return base ** int(power.real)
        return base ** power
    kind = type(e)
    if kind in _CMATH:
        return _CMATH[kind](args[0])
    reals = _real_args(e, args)
    if kind is sp.atan2:
        return complex(math.atan2(*reals))
    if kind is sp.erf:
        return complex(math.erf(reals[0]))
    if kind is sp.Abs:
        return complex(abs(reals[0]))
    if kind is sp.sign:
        return complex((reals[0] > 0) - (reals[0] < 0))
    if kind is sp.Min:
        return complex(min(reals))
    if kind is sp.Max:
        return complex(max(reals))
    raise ValueError(f"cannot evaluate {kind.__name__}")


def _describe(e):
    text = str(e)
    return text if len(text) <= 60 else text[:57] + "..."


def _refuse(what, fix):
    raise ValueError(f"loss: {what}; {fix}")


class _Walk:
    """One pass over the DAG: sizes, depth, whitelist and constants."""

    def __init__(self, budget):
        self.budget = budget
        self.size = {}      # id -> tree size
        self.symbols = {}   # id -> has free symbols
        self.values = {}    # constants already evaluated
        self.height = {}    # id -> longest path to a leaf

    def run(self, root):
        # parents are checked when first reached (so an Integral is named as such, not by
        # its parts); sizes and heights are summed on the way back up
        for e in postorder(root, enter=self.check_node):
            self.finish(e)
        return self.size[id(root)]

    def check_node(self, e):
        if isinstance(e, sp.Symbol):
            if type(e) is not sp.Symbol:
                _refuse(f"the symbol {e!s} is a {type(e).__name__}",
                        "use plain sympy.Symbol objects for variables.")
            check_name(e.name, "symbol name")
            return
        if e in (sp.zoo, sp.nan, sp.oo, sp.S.NegativeInfinity):
            _refuse(f"the constant {e} is not finite (a division by zero or an infinity)",
                    "give finite numbers.")
        if e.is_Number:
            self.check_number(e)
            return
        if e in (sp.pi, sp.E):
            return
        if e is sp.I:
            _refuse("the imaginary unit I occurs", "flowsim losses are real.")
        if isinstance(e, sp.NumberSymbol):
            _refuse(f"the constant {_describe(e)} is not supported", "use pi, E or a number.")
        if e.is_Add or e.is_Mul:
            return
        if e.is_Pow:
            return
        if type(e) in ALLOWED_FUNCTIONS:
            return
        if isinstance(e, sp.core.function.AppliedUndef):
            _refuse(f"the undefined function {type(e).__name__}(...) cannot be "
                    "differentiated or compiled", "write the loss with the whitelisted "
                    "functions (exp, log, sin, ...).")
        name = type(e).__name__
        _refuse(f"{name} ({_describe(e)}) is not supported",
                "write the loss with numbers, symbols, + - * / ** and the functions "
                f"{', '.join(sorted(f.__name__ for f in ALLOWED_FUNCTIONS))}.")

    def check_number(self, e):
        if e is sp.I:
            _refuse("the imaginary unit I occurs", "flowsim losses are real.")
        if e.is_finite is not True:
            _refuse(f"the constant {e} is not finite", "give finite numbers.")
        if e.is_Rational:
            digits = max(digits_of(e.p), digits_of(e.q))
            if digits > self.budget.digits:
                self.budget.exceeded("digits", digits, "the number of digits of a constant")
            if abs(int(e.p)) > int(1.7976931348623157e308) * abs(int(e.q)):
                _refuse(f"a constant with {digits} digits overflows float64",
                        "rescale the loss.")
        elif e.is_Float:
            if not math.isfinite(float(e)):
                _refuse(f"the constant {e} overflows float64", "rescale the loss.")

    def finish(self, e):
        args = e.args
        self.size[id(e)] = 1 + sum(self.size[id(a)] for a in args)
        self.height[id(e)] = 1 + max((self.height[id(a)] for a in args), default=-1)
        if self.height[id(e)] > self.budget.depth:
            self.budget.exceeded("depth", self.height[id(e)], "the nesting depth")
        self.symbols[id(e)] = isinstance(e, sp.Symbol) or \
            any(self.symbols[id(a)] for a in args)
        if self.size[id(e)] > self.budget.nodes:
            self.budget.exceeded("nodes", self.size[id(e)], "the expression's size in nodes")
        if e.is_Pow:
            self.check_power(e)

    def check_power(self, e):
        base, power = e.args
        if power.is_Number and abs(power) > self.budget.exponent:
            self.budget.exceeded("exponent", int(abs(power)), "a numeric exponent")
        if not self.symbols[id(base)] and self.symbols[id(power)]:
            value = _numeric(base, self.values)
            if not (value.imag == 0 and value.real > 0):
                _refuse(f"{_describe(e)} raises a non-positive constant to a variable power, "
                        "which is not real", "use a positive base, e.g. exp(x*log(2)).")

    def check_constants(self, root):
        """Every maximal constant sub-expression must be real and finite in float64."""
        stack, seen = [root], set()
        while stack:
            e = stack.pop()
            if id(e) in seen:
                continue
            seen.add(id(e))
            if self.symbols[id(e)]:
                stack.extend(e.args)
                continue
            if e.is_Number or e in (sp.pi, sp.E):
                continue
            value = _numeric(e, self.values)
            if not (cmath.isfinite(value)):
                _refuse(f"the constant {_describe(e)} is undefined or overflows float64",
                        "remove it or rewrite it.")
            if abs(value.imag) > 1e-12 * max(1.0, abs(value.real)):
                _refuse(f"the constant {_describe(e)} is not real (it is {value:.6g})",
                        "flowsim losses are real; for a real root of a negative number write "
                        "-(8)**(1/3) instead of (-8)**(1/3).")


def check_expression(expr, budget=None, where="loss"):
    """Check a sympy expression at the gate; return its tree size.

    Parameters
    ----------
    expr : sympy.Expr
        The loss, a parameter-free or parametrized scalar expression.
    budget : Budget, optional
        The limits (defaults if None).

    Returns
    -------
    int
        The expression's tree size in nodes.

    Raises
    ------
    ValueError
        With one sentence naming the construct and the fix, for anything outside the
        whitelist, any constant that is not real and finite, and any exceeded limit.

    Examples
    --------
    >>> x = sp.Symbol("x", real=True)
    >>> check_expression(x**2 + sp.exp(-x))
    8
    >>> check_expression(x + sp.asin(2))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: loss: the constant asin(2) is not real (it is 1.5708+1.31696j); ...
    """
    budget = budget or Budget()
    if not isinstance(expr, sp.Expr):
        raise TypeError(f"{where} must be a scalar sympy expression, got "
                        f"{type(expr).__name__}.")
    walk = _Walk(budget)
    size = walk.run(expr)
    walk.check_constants(expr)
    return size
