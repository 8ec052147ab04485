"""The loss room: a formula in, counted value/gradient/Hessian kernels out.

``core`` holds :class:`Loss`; the text and sympy input passes ``_parse`` (the AST whitelist)
and ``_gate`` (the one check of every symbolic input) under a ``_budget``; ``_compile`` and
``_audit`` turn it into kernels; ``_construction`` checks the constructor's arguments and keeps
the compile cache; ``_evaluation`` runs numbers through the kernels and is the only place
that counts evaluations.
"""
from ._budget import Budget, BudgetError
from ._evaluation import SPARSE_FROM, EvalCounts
from .core import Loss

__all__ = ["Loss", "Budget", "BudgetError", "EvalCounts", "SPARSE_FROM"]
