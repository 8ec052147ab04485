"""A flow's field compiled for the engine of :mod:`flowsim.compiled.engine`: the gradient
flow from the loss's own derivatives, a researcher's :class:`~flowsim.rules.VectorField`
traced to formulas (:func:`~flowsim.compiled.trace.trace_field`), each with what the stop
rules need (the Hessian for the stiffness watch, |grad L| for gtol, the field's guard).
Kept with the loss (``loss.memo``), so a loss compiles each once in a process."""
from __future__ import annotations

import numpy as np
import sympy as sp

from .codegen import attempt_of, scalar_function, vector_function
from .engine import engine_of
from .kernel import MAX_OUTPUTS, _jit, require

__all__ = ["CompiledField", "compiled_field", "compiled_vector_field"]


class CompiledField:
    """An autonomous field x' = f(x) on ``n`` variables, compiled with what the engine's
    stop rules need.

    Attributes
    ----------
    field, core : numba functions
        ``field(y, C, out)`` writes f(y); ``core(*y, *C)`` returns it as a tuple.
    matrix : numba function or None
        ``matrix(y, C, out)`` writes the n x n symmetric matrix whose spectral radius the
        stiffness watch measures (the Hessian), or None (no watch).
    stationarity : numba function or None
        ``stationarity(y, C)`` -> the measure tested against gtol (|grad L|); None: |f|.
    guard : numba function or None
        ``guard(y, C)`` -> True where the flow stops (failed).
    constants : ndarray
        The values of ``C``: the trace's constants and the loss's parameters.
    calls : dict
        Loss evaluations per evaluation of f, of the stationarity and of the guard.
    """

    def __init__(self, field, matrix, n, constants, calls, stationarity=None, guard=None):
        (self.field, self.core), self.n = field, n
        self.matrix = None if matrix is None else matrix[0]
        self.stationarity, self.guard = stationarity, guard
        self.constants, self.calls = constants, calls
        self.engines = {}

    def engine(self, tableau):
        """The compiled engine of ``tableau`` (a :class:`~flowsim.ensemble.explicit.Tableau`)."""
        if tableau.name not in self.engines:
            attempt = attempt_of(self.core, self.n, len(self.constants), tableau)
            self.engines[tableau.name] = engine_of(
                self.field, attempt, self.matrix or _no_matrix, self.stationarity or _none,
                self.guard or _none, self.n, tableau, self.matrix is not None,
                self.stationarity is not None, self.guard is not None)
        return self.engines[tableau.name]


@_jit
def _no_matrix(y, C, out):   # (compiled in place of an absent matrix, never called)
    pass


@_jit
def _none(y, C):   # (compiled in place of an absent test, never called)
    return 0.0


def _compiled(loss, field, extra, values, calls, matrix=None, stationarity=None, guard=None):
    """A :class:`CompiledField` from formulas of the loss's variables, the ``extra`` symbols
    (bound to ``values``) and the loss's parameters."""
    n = loss.n
    if loss.n_samples is not None:
        from ..backends import refuse
        refuse("a finite-sum loss (data bound) is not compiled; use backend='numpy' or 'jax'.")
    bound = loss.symbol_values()
    args = list(loss.variables) + list(extra) + list(bound)
    reads = [f"y[{j}]" for j in range(n)] + [f"C[{j}]" for j in range(len(extra) +
                                                                        len(bound))]
    constants = np.array(list(values) + [float(v) for v in bound.values()], dtype=float)
    return CompiledField(
        vector_function(args, list(field), reads),
        None if matrix is None else vector_function(args, list(matrix), reads), n, constants,
        calls, None if stationarity is None else
        scalar_function(args, list(stationarity), reads, norm=True),
        None if guard is None else scalar_function(args, guard, reads))


def compiled_field(loss, sign):
    """The gradient flow x' = sign grad L(x) of ``loss`` compiled (kept with the loss)."""
    require()
    kept = loss.memo("compiled_fields", dict)
    if sign not in kept:
        n = loss.n
        if n * n > MAX_OUTPUTS:
            from ..backends import refuse
            refuse(f"backend='numba' integrates gradient flows of up to "
                   f"{int(MAX_OUTPUTS ** 0.5)} variables (the Hessian's {n * n} entries are "
                   "compiled for the stiffness watch); use backend='numpy' or 'jax'.")
        s, H = sp.Integer(int(sign)), loss.hessian_expr
        kept[sign] = _compiled(loss, [s * g for g in loss.gradient_expr], (), (),
                               {"field": {"grad": 1}},
                               matrix=[H[i, j] for i in range(n) for j in range(n)])
    return kept[sign]


def compiled_vector_field(loss, field, options, owner):
    """A researcher's :class:`~flowsim.rules.VectorField` with ``options`` on ``loss``,
    traced (:func:`~flowsim.compiled.trace.trace_field`) and compiled, with |grad L| as its
    stationarity (kept with the loss)."""
    from .trace import trace_field
    require()
    kept = loss.memo("compiled_fields", dict)
    key = (field, tuple(sorted(options.items())))
    if key not in kept:
        traced = trace_field(loss, field, options, owner)
        if len(traced.field) > MAX_OUTPUTS:
            from ..backends import refuse
            refuse(f"{owner}: {loss.n} variables are more than the compiled engine takes "
                   f"({MAX_OUTPUTS}); use backend='numpy' or 'jax'.")
        kept[key] = _compiled(loss, traced.field, traced.constants, traced.constant_values,
                              {"field": traced.calls, "stationarity": {"grad": 1},
                               "guard": traced.guard_calls},
                              stationarity=list(loss.gradient_expr), guard=traced.guard)
    return kept[key]
