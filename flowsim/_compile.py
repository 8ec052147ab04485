"""Differentiate a loss and compile value, gradient and Hessian into batched numpy kernels.

Two backends do the work:

* **symengine** (sympy's C++ core) differentiates large smooth expressions in seconds where
  sympy takes minutes, and its LLVM ``Lambdify`` evaluates a whole batch of points in compiled
  code. It is used for smooth expressions when it is installed.
* **sympy** is the fallback that always works: non-smooth pieces (``Abs``, ``Max``, ``Min``,
  ``sign``), which symengine cannot differentiate, go through ``sympy.diff`` and
  ``sympy.lambdify`` (numpy printer, common-subexpression elimination on).

Derivatives are taken term by term: the gradient entry for ``x_j`` only differentiates the
terms of the sum that contain ``x_j``, and the Hessian is built only on the sparsity pattern
those terms imply, so a chained loss in 1000 variables yields ``3n - 2`` Hessian entries
rather than ``n**2`` symbolic ones. Every kernel maps inputs of shape ``(..., n_args)`` to
outputs of shape ``(..., k)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

try:  # symengine is a declared dependency, but sympy alone must keep working
    import symengine as se
except ImportError:  # pragma: no cover - exercised only where symengine is missing
    se = None

__all__ = ["Kernels", "compile_kernels", "NONSMOOTH", "symengine_available"]

#: sympy classes whose derivative has kinks; their presence selects the sympy backend.
NONSMOOTH = (sp.Abs, sp.Max, sp.Min, sp.sign, sp.Heaviside)


def symengine_available():
    """Whether the symengine backend can be used on this machine."""
    return se is not None


def _terms(expr):
    return expr.args if expr.is_Add else (expr,)


def _termwise_diff(expr, symbols, add, zero):
    """Derivatives of ``expr`` with respect to each of ``symbols``, summing per-term diffs."""
    index = {s: i for i, s in enumerate(symbols)}
    parts = [[] for _ in symbols]
    for term in _terms(expr):
        for s in term.free_symbols:
            i = index.get(s)
            if i is not None:
                parts[i].append(term.diff(s))
    return [add(*p) if p else zero for p in parts]


def _hessian_entries(gradient, symbols, add, zero):
    """Upper-triangle Hessian entries on the sparsity pattern implied by ``gradient``."""
    index = {s: i for i, s in enumerate(symbols)}
    rows, cols, entries = [], [], []
    for i, g in enumerate(gradient):
        js = sorted(index[s] for s in g.free_symbols if s in index and index[s] >= i)
        if not js:
            continue
        derivs = _termwise_diff(g, [symbols[j] for j in js], add, zero)
        for j, d in zip(js, derivs):
            if d != zero:
                rows.append(i)
                cols.append(j)
                entries.append(d)
    return np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp), entries


@dataclass(frozen=True)
class Kernels:
    """Compiled functions of one loss.

    Attributes
    ----------
    value, grad, hess_values : callable
        Map an array of shape ``(..., n_args)`` (variables, then params, then data symbols)
        to arrays of shape ``(..., 1)``, ``(..., n)`` and ``(..., nnz)``.
    hess_rows, hess_cols : ndarray of int, shape (nnz,)
        Upper-triangle positions (``row <= col``) of the Hessian entries.
    gradient, hessian : tuple
        The backend's symbolic derivative expressions, in the same order.
    backend : str
        ``"symengine"`` or ``"sympy"``.
    point_value, point_grad, point_hess_values : callable or None
        For few variables, the same functions for one point on plain Python floats (see
        :func:`_point_kernel`); ``None`` where the batched kernels are faster.
    """

    value: object
    grad: object
    hess_values: object
    hess_rows: np.ndarray
    hess_cols: np.ndarray
    gradient: tuple
    hessian: tuple
    backend: str
    point_value: object = None
    point_grad: object = None
    point_hess_values: object = None


def _is_smooth(expr):
    return not expr.has(*NONSMOOTH)


def _sympy_lambdify(args, exprs):
    """A kernel from sympy's lambdify: broadcasts constant outputs to the batch shape."""
    func = sp.lambdify(args, list(exprs), modules="numpy", cse=True)
    k = len(exprs)

    def kernel(inputs):
        inputs = np.asarray(inputs, dtype=float)
        with np.errstate(all="ignore"):
            outs = func(*np.moveaxis(inputs, -1, 0))
        out = np.empty(inputs.shape[:-1] + (k,))
        for i, o in enumerate(outs):
            out[..., i] = o
        return out

    return kernel


#: From this many arguments on, LLVM compiles without optimization passes: measured on the
#: chained Rosenbrock gradient at n = 1000, opt_level 0 compiles in 0.3 s instead of 1.2 s
#: and evaluates in 7.0 us instead of 4.4 us (scipy's rosen_der: 11 us).
LARGE_ARGS = 200


def _symengine_lambdify(args, exprs):
    opt_level = 0 if len(args) >= LARGE_ARGS else 3
    try:
        func = se.Lambdify(args, list(exprs), backend="llvm", cse=True, opt_level=opt_level)
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        func = se.Lambdify(args, list(exprs), backend="lambda", cse=True)
    if len(args) > 1:
        return func
    k = len(exprs)

    def kernel(inputs):
        # with one argument symengine reads the last axis as batch: restore (..., k)
        inputs = np.asarray(inputs, dtype=float)
        return np.reshape(func(inputs), inputs.shape[:-1] + (k,))

    return kernel


def _compile_symengine(expr, variables, args):
    s_expr = se.sympify(expr)
    s_vars = [se.Symbol(v.name) for v in variables]
    s_args = [se.Symbol(a.name) for a in args]
    zero = se.Integer(0)
    gradient = _termwise_diff(s_expr, s_vars, se.Add, zero)
    rows, cols, hessian = _hessian_entries(gradient, s_vars, se.Add, zero)
    derived = list(gradient) + list(hessian)
    if any(d.atoms(se.Derivative, se.Subs) for d in derived):
        raise NotImplementedError("symengine left an unevaluated derivative")
    value = _symengine_lambdify(s_args, [s_expr])
    grad = _symengine_lambdify(s_args, gradient)
    hess = _symengine_lambdify(s_args, hessian) if hessian else _empty_kernel()
    points = {}
    if len(variables) <= POINT_MAX:
        points = _point_kernels(len(variables), [sp.Symbol(a.name) for a in args],
                                sp.sympify(s_expr), [sp.sympify(g) for g in gradient],
                                [sp.sympify(h) for h in hessian])
    return Kernels(value, grad, hess, rows, cols, tuple(gradient), tuple(hessian), "symengine",
                   **points)


def _drop_delta(expr):
    # d/dx sign(x) = 2*DiracDelta(x): flowsim uses the almost-everywhere derivative, 0.
    return expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)


def _compile_sympy(expr, variables, args):
    zero = sp.S.Zero
    gradient = [_drop_delta(g) for g in _termwise_diff(expr, variables, sp.Add, zero)]
    rows, cols, hessian = _hessian_entries(gradient, variables, sp.Add, zero)
    hessian = [_drop_delta(h) for h in hessian]
    keep = [i for i, h in enumerate(hessian) if h != zero]
    rows, cols, hessian = rows[keep], cols[keep], [hessian[i] for i in keep]
    if any(d.has(sp.Derivative) for d in list(gradient) + hessian):
        raise ValueError("loss: sympy could not differentiate the expression (an undefined "
                         "function or an unsupported construct remains); rewrite it with the "
                         "whitelisted functions.")
    value = _sympy_lambdify(args, [expr])
    grad = _sympy_lambdify(args, gradient)
    hess = _sympy_lambdify(args, hessian) if hessian else _empty_kernel()
    points = _point_kernels(len(variables), args, expr, gradient, hessian)
    return Kernels(value, grad, hess, rows, cols, tuple(gradient), tuple(hessian), "sympy",
                   **points)


#: Up to this many variables, single points are evaluated by :func:`_point_kernel`.
#: Measured on the chained Rosenbrock gradient: at n = 2 a math-module lambdify call costs
#: 0.6 us against 2.3 us for symengine's LLVM kernel; at n = 10, 1.9 us against 2.5 us;
#: at n = 50, 7.6 us against 3 us.
POINT_MAX = 12

_MATH_EXTRAS = {
    "sign": lambda u: (u > 0) - (u < 0),
    "Heaviside": lambda u, h0=0.5: 1.0 if u > 0 else (0.0 if u < 0 else h0),
}


def _point_kernel(args, exprs):
    """A one-point kernel on Python floats: ``kernel(x, extra)`` -> ndarray (k,) or None.

    Python's ``math`` functions raise where numpy returns nan or inf (log of a negative
    number, overflow, division by zero) and powers of negative floats turn complex; the
    kernel then answers ``None`` and the caller uses the batched kernel, which gives the
    numpy answer.
    """
    func = sp.lambdify(args, list(exprs), modules=[_MATH_EXTRAS, "math"], cse=True)

    def kernel(x, extra=()):
        try:
            out = np.array(func(*x.tolist(), *extra), dtype=float)
        except (ValueError, OverflowError, ZeroDivisionError, TypeError):
            return None
        return out

    kernel.raw = func  # for loops on Python floats: func(*floats) -> list of floats
    return kernel


def _point_kernels(n_vars, args, value, gradient, hessian):
    """The three one-point kernels as Kernels fields, or nothing for many variables."""
    if n_vars > POINT_MAX:
        return {}
    return {"point_value": _point_kernel(args, [value]),
            "point_grad": _point_kernel(args, gradient),
            "point_hess_values": _point_kernel(args, hessian) if hessian else None}


def _empty_kernel():
    def kernel(inputs):
        return np.zeros(np.shape(inputs)[:-1] + (0,))
    return kernel


def compile_kernels(expr, variables, args, backend="auto"):
    """Differentiate ``expr`` and compile its kernels.

    Parameters
    ----------
    expr : sympy.Expr
        The loss, in real symbols.
    variables : sequence of sympy.Symbol, length n
        The symbols to differentiate with respect to.
    args : sequence of sympy.Symbol
        All kernel arguments in order: the variables first, then params and data symbols.
    backend : {"auto", "symengine", "sympy"}
        ``"auto"`` uses symengine for smooth expressions when it is installed and falls back
        to sympy for anything symengine cannot handle.

    Returns
    -------
    Kernels
    """
    if backend not in ("auto", "symengine", "sympy"):
        raise ValueError(f"backend must be 'auto', 'symengine' or 'sympy', got {backend!r}.")
    if backend == "symengine" and se is None:
        raise ValueError("backend='symengine' needs the symengine package; pip install "
                         "symengine or use backend='sympy'.")
    if backend == "symengine" or (backend == "auto" and se is not None and _is_smooth(expr)):
        try:
            return _compile_symengine(expr, variables, args)
        except (RuntimeError, TypeError, ValueError, NotImplementedError, AttributeError):
            if backend == "symengine":
                raise ValueError("backend='symengine' cannot compile this expression; use "
                                 "backend='sympy'.") from None
    return _compile_sympy(expr, variables, args)
