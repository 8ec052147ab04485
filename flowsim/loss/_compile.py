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
import scipy.special
import sympy as sp

from ._audit import lambdify_audited, to_symengine, to_sympy
from ._budget import Budget, BudgetError, derivative_bound, postorder, same

try:  # symengine is a declared dependency, but sympy alone must keep working
    import symengine as se
except ImportError:  # pragma: no cover - exercised only where symengine is missing
    se = None

__all__ = ["Kernels", "compile_kernels", "compile_vector", "NONSMOOTH", "symengine_available"]

#: sympy classes whose derivative has kinks; their presence selects the sympy backend.
NONSMOOTH = (sp.Abs, sp.Max, sp.Min, sp.sign, sp.Heaviside)


def symengine_available():
    """Whether the symengine backend can be used on this machine."""
    return se is not None


def _terms(expr):
    return expr.args if expr.is_Add else (expr,)


class _Meter:
    """Counts the operations of derivatives as they are built, against the budget.

    What the compilers pay for is unique structure (both run common-subexpression
    elimination) and outputs, so each new node counts its arguments once, however many
    derivatives share it, and each derivative counts one more. Before a derivative is
    taken, :func:`flowsim.loss._budget.derivative_bound` predicts its (tree) size; a prediction
    over what is left refuses the loss before the work is done (one product of 200 factors would
    otherwise take minutes).

    Parameters
    ----------
    budget : Budget
    key : callable
        Structural key of a node (the node itself for symengine; ``id`` for sympy, whose
        derivatives reuse their sub-expressions' objects).
    cost : int
        How many operations of the budget one operation of this backend costs.
    """

    def __init__(self, budget, key, cost=1):
        self.budget = budget
        self.key = key
        self.limit = budget.derivative_ops // cost
        self.note = "" if cost == 1 else f" (the sympy backend of non-smooth losses allows " \
                                         f"1/{cost} of the budget, {self.limit:,})"
        self.spent = 0
        self.memo = {}
        self.seen = set()
        self.unevaluated = False  # a Derivative or Subs the backend could not resolve

    def over(self, size, what):
        self.budget.exceeded("derivative_ops", size, what + self.note)

    def predict(self, expr):
        bound = derivative_bound(expr, self.memo)
        if self.spent + bound > self.limit:
            self.over(self.spent + bound, "the predicted size of the derivatives in operations")

    def take(self, expr):
        for e in postorder(expr, self.seen, key=self.key):
            self.seen.add(self.key(e))
            self.spent += len(e.args) + NODE_COST
            if type(e).__name__ in ("Derivative", "Subs"):
                self.unevaluated = True
        self.spent += 1
        if self.spent > self.limit:
            self.over(self.spent, "the size of the derivatives in operations")


def _termwise_diff(expr, symbols, add, zero, meter):
    """Derivatives of ``expr`` with respect to each of ``symbols``, summing per-term diffs."""
    index = {s: i for i, s in enumerate(symbols)}
    parts = [[] for _ in symbols]
    for term in _terms(expr):
        mine = [s for s in term.free_symbols if s in index]
        if mine:
            meter.predict(term)
        for s in mine:
            d = term.diff(s)
            meter.take(d)
            parts[index[s]].append(d)
    return [add(*p) if p else zero for p in parts]


def _hessian_entries(gradient, symbols, add, zero, meter):
    """Upper-triangle Hessian entries on the sparsity pattern implied by ``gradient``."""
    index = {s: i for i, s in enumerate(symbols)}
    pattern = [sorted(index[s] for s in g.free_symbols if s in index and index[s] >= i)
               for i, g in enumerate(gradient)]
    nnz = sum(len(js) for js in pattern)
    if nnz > meter.budget.hessian_entries:
        meter.budget.exceeded("hessian_entries", nnz, "the number of Hessian entries")
    rows, cols, entries = [], [], []
    for i, (g, js) in enumerate(zip(gradient, pattern)):
        if not js:
            continue
        derivs = _termwise_diff(g, [symbols[j] for j in js], add, zero, meter)
        for j, d in zip(js, derivs):
            if d != zero:
                rows.append(i)
                cols.append(j)
                entries.append(d)
    return np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp), entries


#: Operations one distinct node costs besides its arguments: cse hashes and counts each node
#: and LLVM emits one for each (measured: the Hessian of 50 sigmoids in 20 weights has 97,000
#: arguments in 28,000 small nodes and takes 4.7 s to compile; a product of 60 variables has
#: 103,000 arguments in 1,800 nodes and takes 0.9 s).
NODE_COST = 3

#: One operation of sympy's pure-Python differentiation and cse costs about as much time as
#: this many of symengine's (measured: the Hessian of a 30-factor product takes 8.8 s in
#: sympy.diff, against 0.01 s in symengine; LLVM compiles 100,000 operations in about 2 s).
SYMPY_COST = 25


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


#: numpy has no erf; sympy's printer writes a bare ``erf`` that must work on arrays.
_NUMPY_MODULES = [{"erf": scipy.special.erf}, "numpy"]


def _numpy_kernel(args, exprs):
    """A kernel from sympy's lambdify: broadcasts constant outputs to the batch shape."""
    func = lambdify_audited(args, exprs, _NUMPY_MODULES)
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
#: ... and from this many derivative operations on (see _Meter): LLVM's optimizer is
#: superlinear in the size of a kernel (measured: 50 sigmoid terms in 20 weights, 9.7 s at
#: opt_level 3, 1.1 s at 0; 5050 outputs of 2*x_i*x_j, 3.3 s against 0.46 s).
LARGE_OPS = 5_000


#: A term with at most this many variables is "local" (see :func:`_wide_and_local`).
LOCAL_TERM = 16


def _wide_and_local(args, exprs):
    """Whether a kernel is wide (LARGE_ARGS arguments or more) and each of its outputs is a
    sum of local terms (at most LOCAL_TERM variables each), like the chained Rosenbrock
    function and its derivatives: common-subexpression elimination then finds little to
    share and costs most of the compile (n = 5,000: 6.8 s of 7.6 s for the gradient, the
    evaluation as fast without it), so it is left out. Dense expressions (a network's
    shared activations) keep it."""
    if len(args) < LARGE_ARGS:
        return False
    for e in exprs:
        terms = e.args if isinstance(e, se.Add) else (e,)
        if any(len(t.free_symbols) > LOCAL_TERM for t in terms):
            return False
    return True


def _llvm_kernel(args, exprs, large=False):
    opt_level = 0 if large or len(args) >= LARGE_ARGS else 3
    cse = not _wide_and_local(args, exprs)
    try:
        func = se.Lambdify(args, list(exprs), backend="llvm", cse=cse, opt_level=opt_level)
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


def _compile_symengine(expr, variables, args, budget):
    s_expr = to_symengine(expr)
    s_vars = [se.Symbol(v.name) for v in variables]
    s_args = [se.Symbol(a.name) for a in args]
    zero = se.Integer(0)
    meter = _Meter(budget, same)
    gradient = _termwise_diff(s_expr, s_vars, se.Add, zero, meter)
    rows, cols, hessian = _hessian_entries(gradient, s_vars, se.Add, zero, meter)
    if meter.unevaluated:
        raise NotImplementedError("symengine left an unevaluated derivative")
    large = meter.spent > LARGE_OPS
    value = _llvm_kernel(s_args, [s_expr], large)
    grad = _llvm_kernel(s_args, gradient, large)
    hess = _llvm_kernel(s_args, hessian, large) if hessian else _empty_kernel()
    points = {}
    if len(variables) <= POINT_MAX and meter.spent <= POINT_MAX_OPS:
        points = _point_kernels(len(variables), [sp.Symbol(a.name) for a in args],
                                to_sympy(s_expr), [to_sympy(g) for g in gradient],
                                [to_sympy(h) for h in hessian])
    return Kernels(value, grad, hess, rows, cols, tuple(gradient), tuple(hessian), "symengine",
                   **points)


def _drop_delta(expr):
    # d/dx sign(x) = 2*DiracDelta(x): flowsim uses the almost-everywhere derivative, 0.
    return expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)


def _compile_sympy(expr, variables, args, budget):
    zero = sp.S.Zero
    meter = _Meter(budget, id, SYMPY_COST)
    gradient = [_drop_delta(g) for g in _termwise_diff(expr, variables, sp.Add, zero, meter)]
    rows, cols, hessian = _hessian_entries(gradient, variables, sp.Add, zero, meter)
    hessian = [_drop_delta(h) for h in hessian]
    keep = [i for i, h in enumerate(hessian) if h != zero]
    rows, cols, hessian = rows[keep], cols[keep], [hessian[i] for i in keep]
    if any(d.has(sp.Derivative) for d in list(gradient) + hessian):
        raise ValueError("loss: sympy could not differentiate the expression (an undefined "
                         "function or an unsupported construct remains); rewrite it with the "
                         "whitelisted functions.")
    value = _numpy_kernel(args, [expr])
    grad = _numpy_kernel(args, gradient)
    hess = _numpy_kernel(args, hessian) if hessian else _empty_kernel()
    points = _point_kernels(len(variables), args, expr, gradient, hessian) \
        if meter.spent <= POINT_MAX_OPS else {}
    return Kernels(value, grad, hess, rows, cols, tuple(gradient), tuple(hessian), "sympy",
                   **points)


#: Up to this many variables, single points are evaluated by :func:`_point_kernel`.
#: Measured on the chained Rosenbrock gradient: at n = 2 a math-module lambdify call costs
#: 0.6 us against 2.3 us for symengine's LLVM kernel; at n = 10, 1.9 us against 2.5 us;
#: at n = 50, 7.6 us against 3 us.
POINT_MAX = 12
#: ... and only while their derivatives are small: the math-module kernels are built by
#: sympy's (pure Python) common-subexpression elimination, which is slow on large trees.
POINT_MAX_OPS = 3000

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
    func = lambdify_audited(args, exprs, [_MATH_EXTRAS, "math"])

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


def compile_vector(exprs, args):
    """One kernel for several smooth expressions: inputs (..., len(args)) -> (..., k).

    symengine's LLVM where available, else sympy's audited lambdify (no derivatives taken).
    """
    if se is not None:
        return _llvm_kernel([se.Symbol(a.name) for a in args],
                                   [to_symengine(e) for e in exprs])
    return _numpy_kernel(args, exprs)


def _empty_kernel():
    def kernel(inputs):
        return np.zeros(np.shape(inputs)[:-1] + (0,))
    return kernel


def compile_kernels(expr, variables, args, backend="auto", budget=None):
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
    budget : Budget, optional
        Limits on the number of Hessian entries and the size of the derivatives (see
        :class:`flowsim.Budget`); exceeding one raises ``ValueError`` naming it.

    Returns
    -------
    Kernels
    """
    if backend not in ("auto", "symengine", "sympy"):
        raise ValueError(f"backend must be 'auto', 'symengine' or 'sympy', got {backend!r}.")
    if backend == "symengine" and se is None:
        raise ValueError("backend='symengine' needs the symengine package; pip install "
                         "symengine or use backend='sympy'.")
    budget = budget or Budget()
    if backend == "symengine" or (backend == "auto" and se is not None and _is_smooth(expr)):
        try:
            return _compile_symengine(expr, variables, args, budget)
        except BudgetError:
            raise
        except (RuntimeError, TypeError, ValueError, NotImplementedError, AttributeError):
            if backend == "symengine":
                raise ValueError("backend='symengine' cannot compile this expression; use "
                                 "backend='sympy'.") from None
    return _compile_sympy(expr, variables, args, budget)
