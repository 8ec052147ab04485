"""The size budget of a loss: limits checked before and during symbolic work.

:class:`Budget` bounds what the gate (:mod:`flowsim.loss._gate`) measures on the input and what
the compiler (:mod:`flowsim.loss._compile`) measures while it differentiates; with the defaults no
formula under 10,000 characters takes more than a few seconds to compile or to be refused.
:func:`derivative_bound` predicts the size of a derivative before it is taken.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

__all__ = ["Budget", "BudgetError", "as_budget", "derivative_bound", "postorder",
           "digits_of", "same"]


class BudgetError(ValueError):
    """A :class:`Budget` limit was exceeded (a ``ValueError`` that names the limit)."""


@dataclass(frozen=True)
class Budget:
    """Limits on the size of a loss, checked before and during symbolic work.

    Every limit guards the time and memory of building a :class:`~flowsim.Loss`: with the
    defaults no formula under 10,000 characters takes more than a few seconds to compile or to
    be refused. Raise a limit with ``Loss(..., budget={"derivative_ops": 10**6})``.

    Attributes
    ----------
    nodes : int
        Largest number of nodes of the expression tree (shared sub-trees counted each time
        they occur, as the compilers see them).
    depth : int
        Deepest nesting of operations and function calls.
    digits : int
        Most decimal digits of an integer or of a rational's numerator or denominator.
    exponent : int
        Largest magnitude of a numeric exponent.
    hessian_entries : int
        Most structurally nonzero Hessian entries (upper triangle), predicted from the
        gradient before any second derivative is taken.
    derivative_ops : int
        Most operations in the gradient and Hessian together: each distinct sub-expression
        counts its arguments plus three, once (the compilers share common sub-expressions),
        and each entry one more. Measured as they are built; a derivative predicted to
        exceed what is left is refused before it is taken. Non-smooth losses, differentiated
        by sympy, get 1/25 of it.
    """

    nodes: int = 100_000
    depth: int = 100
    digits: int = 100
    exponent: int = 1000
    hessian_entries: int = 20_000
    derivative_ops: int = 150_000

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"budget: {f.name} must be an integer >= 1, got {value!r}.")

    def exceeded(self, limit, size, what):
        """Raise the ValueError that names ``limit``, the measured ``size`` and the fix."""
        raise BudgetError(f"loss is too large to compile: {what} is {size:,}, over the "
                         f"budget's {limit} = {getattr(self, limit):,}; simplify the formula "
                         f"or raise the limit with budget={{'{limit}': ...}}.")


def as_budget(budget):
    """``budget`` as a :class:`Budget`: ``None`` (defaults), a Budget, or a dict of limits."""
    if budget is None:
        return Budget()
    if isinstance(budget, Budget):
        return budget
    if isinstance(budget, dict):
        known = {f.name for f in fields(Budget)}
        unknown = sorted(set(budget) - known)
        if unknown:
            raise ValueError(f"budget: unknown limit {unknown[0]!r}; the limits are "
                             f"{', '.join(sorted(known))}.")
        return replace(Budget(), **budget)
    raise TypeError(f"budget must be None, a dict of limits or a flowsim.Budget, got "
                    f"{type(budget).__name__}.")


def digits_of(n):
    """Decimal digits of the int ``n`` (an upper bound, without converting it to text)."""
    return int(abs(int(n)).bit_length() * 0.30103) + 1


def postorder(root, seen=(), key=id, enter=None):
    """Each node of ``root``'s DAG once, children before parents, without recursion.

    Nodes whose ``key`` is in ``seen`` are skipped with their subtrees. ``enter(e)``, if
    given, is called on each node when it is first reached, before its children (so a check
    can name a parent before its parts are looked at). ``key=id`` suits
    sympy (whose ``args`` are stored objects; the caller keeps ``root`` alive, so ids stay
    unique); symengine builds new wrappers on every ``args`` access and needs a structural
    key (the object itself).
    """
    visited = set()
    stack = [(root, False)]
    while stack:
        e, done = stack.pop()
        if done:
            yield e
            continue
        k = key(e)
        if k in visited or k in seen:
            continue
        visited.add(k)
        if enter is not None:
            enter(e)
        stack.append((e, True))
        stack.extend((a, False) for a in e.args)


def derivative_bound(expr, memo=None):
    """An upper bound on the size of d(expr)/dx for any one variable x, in operations.

    Works on sympy and symengine expressions alike (both have ``args``, ``is_Add``,
    ``is_Mul``, ``is_Pow``, ``free_symbols``). It follows the product and chain rules on the
    expression's DAG, counting the tree that differentiation would write: a product of k
    factors that each hold the variable gives k copies of the product; a function f(u) adds
    f'(u), a few times the size of f(u).

    Parameters
    ----------
    expr : sympy.Expr or symengine.Basic
    memo : dict, optional
        Reused across calls on expressions that share sub-expressions.

    Returns
    -------
    int
        The bound; 0 for a constant.
    """
    sizes = {} if memo is None else memo
    for e in postorder(expr, sizes, key=same):
        args = e.args
        size = 1 + sum(sizes[a][0] for a in args)
        if not args:
            d = 1 if e.free_symbols else 0
        else:
            parts = [sizes[a] for a in args]
            if e.is_Add:
                d = sum(p[1] for p in parts) + len(args)
            elif e.is_Mul:
                d = sum(p[1] + size - p[0] + 1 for p in parts if p[1])
            elif e.is_Pow:
                d = parts[0][1] + 3 * size + (3 * size + parts[1][1] if parts[1][1] else 0)
            else:
                d = sum(p[1] + 3 * size + 3 for p in parts if p[1])
        sizes[e] = (size, d)
    return sizes[expr][1]


def same(e):
    """The node itself, as the structural key of :func:`postorder` (symengine)."""
    return e
