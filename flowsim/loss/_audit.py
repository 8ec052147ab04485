"""The one door between flowsim and sympy's parsers and code printers.

Text that reaches ``sympify``, ``nsimplify``, ``parse_expr`` or a code printer is run as
Python by sympy, so nothing outside this module (and the formula parser and gate) calls them.
What passes here is checked for what it must be:

* :func:`to_sympy` and :func:`to_symengine` convert between the two symbolic libraries and
  take only symbolic objects (never a string);
* :func:`exact_real` turns a number given as an option (a momentum, a step) into an exact
  sympy number, after checking it is a finite real number;
* :func:`lambdify_audited` prints gate-checked expressions to Python and audits the source
  before it is ever called: only arguments, common sub-expressions, the printer's own names
  and plain arithmetic may occur.

The gate (:mod:`flowsim.loss._gate`) decides what may reach a code printer; the audit checks
what came out.
"""
from __future__ import annotations

import ast
import inspect
import numbers

import numpy as np
import sympy as sp

try:  # symengine is a declared dependency, but sympy alone must keep working
    import symengine as se
except ImportError:  # pragma: no cover - exercised only where symengine is missing
    se = None

__all__ = ["PRINTER_NAMES", "audit_source", "audit_text", "lambdify_audited", "to_sympy",
           "to_symengine", "exact_real"]


#: Every bare name sympy's printers may write for the whitelisted functions, their
#: derivatives and numpy's piecewise helpers (measured by printing each one, see the tests).
PRINTER_NAMES = frozenset({
    "abs", "arccos", "arcsin", "arctan", "arctan2", "cos", "cosh", "equal", "erf", "exp",
    "greater", "less", "log", "maximum", "minimum", "nan", "pi", "e", "inf", "reduce",
    "select", "sign", "sin", "sinh", "sqrt", "tan", "tanh", "Heaviside", "acos", "asin",
    "atan", "atan2", "copysign", "max", "min", "True", "False", "amax", "amin",
    "greater_equal", "less_equal", "logical_and", "logical_or", "logical_not", "where",
    "heaviside", "isfinite"})
_SAFE_NODES = (ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Return, ast.Assign,
               ast.Name, ast.Load, ast.Store, ast.BinOp, ast.UnaryOp, ast.Call, ast.Constant,
               ast.List, ast.Tuple, ast.keyword, ast.operator, ast.unaryop, ast.IfExp,
               ast.Compare, ast.cmpop, ast.BoolOp, ast.boolop)


def audit_source(func):
    """Check the Python source that sympy generated for ``func``; return the source.

    Every name must be an argument, a common subexpression assigned in the function, or one
    of :data:`PRINTER_NAMES`; only plain arithmetic, comparisons, calls of those names,
    lists and constants may occur (no subscripts, lambdas or imports, and no attribute but
    ``.reduce`` of a whitelisted ufunc). Arguments are
    dummies (``dummify=True``), so no user-chosen name is ever written into the code.

    Raises
    ------
    ValueError
        If anything else appears (it would mean a symbolic input slipped past the gate).
    """
    return audit_text(inspect.getsource(func))


def audit_text(source):
    """:func:`audit_source` on the text of a generated function; returns the text."""
    tree = ast.parse(source)
    defined = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "reduce" and \
                isinstance(node.value, ast.Name) and node.value.id in PRINTER_NAMES:
            continue  # numpy's printer writes logical_or.reduce(...) for piecewise pieces
        if not isinstance(node, _SAFE_NODES):
            raise ValueError(f"loss: the generated code holds a {type(node).__name__}; this "
                             "input is not supported.")
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and \
                node.id not in defined and node.id not in PRINTER_NAMES:
            raise ValueError(f"loss: the generated code refers to {node.id!r}, which is not "
                             "a whitelisted function; this input is not supported.")
    return source


def _symbolic_only(items, where):
    """Refuse anything that is not a sympy or symengine object or a plain number (text above
    all); lists and tuples are looked into."""
    kinds = (sp.Basic, numbers.Number) if se is None else (sp.Basic, se.Basic, numbers.Number)
    for item in items:
        if isinstance(item, (list, tuple)):
            _symbolic_only(item, where)
        elif isinstance(item, bool) or not isinstance(item, kinds):
            raise TypeError(f"{where}: expected a symbolic expression, got "
                            f"{type(item).__name__}; text never reaches sympy here.")


def to_sympy(expr):
    """A sympy expression from a sympy or symengine one (never from text)."""
    _symbolic_only([expr], "to_sympy")
    return expr if isinstance(expr, sp.Basic) else sp.sympify(expr)


def to_symengine(expr):
    """A symengine expression from a sympy or symengine one (never from text)."""
    _symbolic_only([expr], "to_symengine")
    return se.sympify(expr)


def exact_real(value, name, low=-np.inf, high=np.inf, *, open_high=False):
    """The number ``value``, checked to be a finite real in [low, high] (or [low, high)),
    as an exact sympy number: a rational where a short one equals the float, else a Float.

    Raises
    ------
    ValueError
        For text, a bool, a complex or non-finite number, or one outside the range.
    """
    inside = isinstance(value, numbers.Real) and not isinstance(value, bool) and \
        np.isfinite(float(value)) and low <= float(value) and \
        (float(value) < high if open_high else float(value) <= high)
    if not inside:
        span = f"[{low:g}, {high:g}{')' if open_high else ']'}"
        raise ValueError(f"{name} must be a real number in {span}, got {value!r}.")
    number = float(value)
    exact = sp.Rational(number).limit_denominator(10 ** 6)
    return exact if float(exact) == number else sp.Float(number)


def lambdify_audited(args, exprs, modules, as_tuple=False):
    """``sympy.lambdify`` with dummy arguments and cse, its source audited; it returns a
    list of the values (a tuple with ``as_tuple``, which compiled code needs). The audited
    text is ``func.source``."""
    _symbolic_only(list(args) + list(exprs), "lambdify_audited")
    exprs = tuple(exprs) if as_tuple else list(exprs)
    func = sp.lambdify(args, exprs, modules=modules, cse=True, dummify=True)
    func.source = audit_source(func)
    return func
