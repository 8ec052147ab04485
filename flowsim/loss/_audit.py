"""The audit of the Python code sympy generates for a loss, before it is ever called.

The gate (:mod:`flowsim.loss._gate`) decides what may reach a code printer; this module checks
what came out: the source of every function ``sympy.lambdify`` writes is parsed, and only
arguments, common sub-expressions, the printer's own names and plain arithmetic may occur.
"""
from __future__ import annotations

import ast
import inspect

import sympy as sp

__all__ = ["PRINTER_NAMES", "audit_source", "lambdify_audited"]


#: Every bare name sympy's printers may write for the whitelisted functions, their
#: derivatives and numpy's piecewise helpers (measured by printing each one, see the tests).
PRINTER_NAMES = frozenset({
    "abs", "arccos", "arcsin", "arctan", "arctan2", "cos", "cosh", "equal", "erf", "exp",
    "greater", "less", "log", "maximum", "minimum", "nan", "pi", "e", "inf", "reduce",
    "select", "sign", "sin", "sinh", "sqrt", "tan", "tanh", "Heaviside", "acos", "asin",
    "atan", "atan2", "copysign", "max", "min", "True", "False", "amax", "amin",
    "greater_equal", "less_equal", "logical_and", "logical_or", "logical_not", "where",
    "heaviside"})
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
    source = inspect.getsource(func)
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


def lambdify_audited(args, exprs, modules):
    """``sympy.lambdify`` with dummy arguments and cse, its source audited."""
    func = sp.lambdify(args, list(exprs), modules=modules, cse=True, dummify=True)
    audit_source(func)
    return func
