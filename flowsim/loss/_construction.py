"""Building a :class:`~flowsim.Loss`: checked inputs, the compile cache, unpickling.

Every way into a Loss (a formula, a sympy expression, ``from_samples``, a pickle) passes
here: names and parameters are checked, the expression goes through the gate
(:mod:`flowsim.loss._gate`), and compiled kernels are shared by a per-process cache keyed by the
expression, so a loss that arrives in a worker process is compiled once there.
"""
from __future__ import annotations

import collections
import numbers
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ._budget import Budget
from ._compile import compile_kernels
from ._gate import check_expression, check_name
from ._parse import parse_formula, real_symbol

__all__ = ["as_symbol_names", "to_expr", "check_params", "check_backend", "real_column",
           "sample_index", "build_compiled", "rebuild_loss", "Compiled"]


@dataclass(frozen=True)
class Compiled:
    """Everything derived from the expression once; shared by ``with_params`` copies."""

    expr: sp.Expr
    variables: tuple
    param_symbols: tuple
    data_symbols: tuple
    kernels: object
    full_rows: np.ndarray      # symmetric Hessian pattern, shape (nnz_full,)
    full_cols: np.ndarray
    full_take: np.ndarray      # index into the upper-triangle values for each full entry
    csr_indices: np.ndarray    # the same pattern in CSR order: column indices,
    csr_indptr: np.ndarray     # row pointers,
    csr_take: np.ndarray       # and the upper-triangle value feeding each stored entry
    budget: Budget = Budget()  # the limits it was accepted under (they travel with a pickle)


def as_symbol_names(items, what):
    if isinstance(items, str):
        items = [p.strip() for p in items.replace(",", " ").split()]
    elif isinstance(items, sp.Symbol) or not isinstance(items, collections.abc.Iterable):
        raise TypeError(f"{what} must be a sequence of names or sympy Symbols, got "
                        f"{type(items).__name__}.")
    elif isinstance(items, (set, frozenset, dict)):
        raise TypeError(f"{what} must be an ordered sequence (a list or tuple): a "
                        f"{type(items).__name__} has no order, and the order is the order of "
                        "the components of x.")
    names = []
    for item in items:
        name = item.name if isinstance(item, sp.Symbol) else item
        names.append(check_name(name, what))
    if len(set(names)) != len(names):
        raise ValueError(f"{what} lists a name twice: {names}; give each name once.")
    return names


def to_expr(formula, budget):
    """Any accepted input as a sympy expression in real symbols, checked at the gate."""
    if isinstance(formula, str):
        expr = parse_formula(formula, budget)[0]
    elif isinstance(formula, numbers.Real) and not isinstance(formula, (bool, sp.Basic)):
        raise TypeError("formula must be a str or a sympy expression in the variables, got "
                        f"the number {formula!r}; a constant loss has no variables.")
    elif isinstance(formula, sp.Basic):
        if not isinstance(formula, sp.Expr) or isinstance(formula, sp.MatrixBase):
            raise TypeError("formula must be a scalar sympy expression, got "
                            f"{type(formula).__name__}.")
        expr = formula
    else:
        raise TypeError("formula must be a str or a sympy expression, got "
                        f"{type(formula).__name__}.")
    check_expression(expr, budget)  # the one gate, for text and sympy alike
    real = {s: real_symbol(s.name) for s in expr.free_symbols if s != real_symbol(s.name)}
    if real:
        expr = expr.xreplace(real)
    wide = {f: sp.Float(float(f)) for f in expr.atoms(sp.Float) if f._prec > 53}
    return expr.xreplace(wide) if wide else expr  # the kernels compute in float64


def check_params(params, where):
    if params is None:
        return {}
    if not isinstance(params, collections.abc.Mapping):
        raise TypeError(f"{where} must be a dict of name -> number, got "
                        f"{type(params).__name__}.")
    out = {}
    for name, value in params.items():
        check_name(name, where)
        if isinstance(value, (bool, complex, np.complexfloating)) or \
                not isinstance(value, (numbers.Real, np.number)) and not \
                (isinstance(value, sp.Basic) and value.is_Number):
            raise TypeError(f"{where}: the value of {name!r} must be a real number, "
                            f"got {value!r}.")
        try:
            value = float(value)
        except OverflowError:
            raise ValueError(f"{where}: the value of {name!r} is too large for float64.") \
                from None
        if not np.isfinite(value):
            raise ValueError(f"{where}: the value of {name!r} is {value}; give a finite number.")
        out[name] = value
    return out


def check_backend(backend):
    if backend not in ("auto", "symengine", "sympy"):
        raise ValueError(f"backend must be 'auto', 'symengine' or 'sympy', got {backend!r}.")


def real_column(values, name):
    """One data column as a finite float array of shape (N,)."""
    try:
        col = np.asarray(values)
    except (TypeError, ValueError):
        col = None
    if col is None or col.dtype.kind not in "biuf" or col.dtype == bool:
        raise TypeError(f"data[{name!r}] must be an array of real numbers, one per sample.")
    col = col.astype(float)
    if col.ndim != 1 or col.size == 0:
        raise ValueError(f"data[{name!r}] must be a non-empty 1-D array (one value per "
                         f"sample), got shape {col.shape}.")
    return col


def sample_index(indices, n_samples):
    """``indices`` checked as sample indices or a boolean mask over ``n_samples`` samples."""
    try:
        idx = np.asarray(indices)
    except (TypeError, ValueError):
        idx = None
    if idx is None or idx.ndim != 1 or idx.size == 0:
        raise ValueError("indices must be a non-empty 1-D array of sample indices or a "
                         f"boolean mask of length {n_samples}.")
    if idx.dtype == bool:
        if idx.size != n_samples:
            raise ValueError(f"indices: a boolean mask must have length {n_samples} (one "
                             f"entry per sample), got {idx.size}.")
        if not idx.any():
            raise ValueError("indices: the mask selects no sample; select at least one.")
        return idx
    if idx.dtype.kind not in "iu":
        raise ValueError(f"indices must be integers (or a boolean mask), got dtype "
                         f"{idx.dtype}; round them explicitly if that is meant.")
    if idx.min() < -n_samples or idx.max() >= n_samples:
        raise ValueError(f"indices must lie in [-{n_samples}, {n_samples}), the loss has "
                         f"{n_samples} samples.")
    return idx


#: Compiled kernels by (expression, names, backend): a Loss that arrives by pickle, or is
#: built again from the same formula, is compiled once per process.
_COMPILED = collections.OrderedDict()
_CACHE_SIZE = 64


def rebuild_loss(expr, var_names, param_names, data_names, params, data, facts, backend,
                  counts, budget=None):
    """Unpickle a Loss: the expression passes the gate again (under the budget it was
    accepted with), kernels come from the cache."""
    budget = budget if isinstance(budget, Budget) else Budget()
    check_expression(expr, budget)
    compiled = build_compiled(expr, list(var_names), list(param_names), list(data_names),
                               backend, budget)
    from .core import Loss
    loss = Loss._from_parts(compiled, params, data, facts)
    loss._counter.value, loss._counter.grad, loss._counter.hess = counts
    return loss


def build_compiled(expr, var_names, param_names, data_names, backend, budget):
    # sympy expressions hash structurally (and cache their hash): the expression is the key
    key = (expr, tuple(var_names), tuple(param_names), tuple(data_names), backend)
    cached = _COMPILED.get(key)
    if cached is not None:
        _COMPILED.move_to_end(key)
        return cached
    compiled = compile_parts(expr, var_names, param_names, data_names, backend, budget)
    _COMPILED[key] = _COMPILED[key[:-1] + (compiled.kernels.backend,)] = compiled
    while len(_COMPILED) > _CACHE_SIZE:
        _COMPILED.popitem(last=False)
    return compiled


def compile_parts(expr, var_names, param_names, data_names, backend, budget):
    variables = tuple(real_symbol(v) for v in var_names)
    param_symbols = tuple(real_symbol(p) for p in param_names)
    data_symbols = tuple(real_symbol(d) for d in data_names)
    kernels = compile_kernels(expr, variables, variables + param_symbols + data_symbols,
                              backend, budget)
    rows, cols = kernels.hess_rows, kernels.hess_cols
    off = np.flatnonzero(rows != cols)
    full_rows = np.concatenate([rows, cols[off]])
    full_cols = np.concatenate([cols, rows[off]])
    full_take = np.concatenate([np.arange(rows.size), off])
    order = np.lexsort((full_cols, full_rows))
    indptr = np.searchsorted(full_rows[order], np.arange(len(variables) + 1))
    return Compiled(expr, variables, param_symbols, data_symbols, kernels,
                     full_rows, full_cols, full_take,
                     full_cols[order], indptr, full_take[order], budget or Budget())
