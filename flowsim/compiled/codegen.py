"""The generated code of the compiled flow engine (:mod:`flowsim.compiled.engine`), as text:
a formula's compiled function, a field that writes into an array, a scalar test (a guard, a
stationarity), and one step of an embedded Runge-Kutta pair over the engine's lanes as
straight-line code.

The formulas are printed by the audited lambdify (:func:`flowsim.loss._audit.lambdify_audited`)
and audited again once their dummy names are numbered (:func:`numbered`); the code around them
comes from fixed templates filled with integers and the tableau's floats (written by ``repr``,
which gives each float exactly): no text from a loss, a rule or a field reaches a module but
through the audit.
"""
from __future__ import annotations

import re

import numpy as np

from ..loss._audit import audit_text, lambdify_audited

__all__ = ["numbered", "core_text", "vector_text", "scalar_text", "attempt_source",
           "MODULE_HEADER", "parameters"]

#: The opening of every generated module: the names the printed formulas use (math's, and
#: numpy's sign, maximum and minimum, which keep NaN) and numba's decorators, with its cache.
MODULE_HEADER = """import math
from math import *
from numpy import maximum, minimum, sign

import numba
import numpy as np

_jit = numba.njit(error_model="numpy", cache=True)
_inline = numba.njit(error_model="numpy", cache=True, inline="always")
"""


def parameters(loss, extra, values):
    """What generated functions read from their array ``C``: the symbols (a trace's
    constants ``extra``, then the loss's parameters) and their values, shape (len,)."""
    bound = loss.symbol_values()
    return list(extra) + list(bound), \
        np.array(list(values) + [float(v) for v in bound.values()], dtype=float)


def numbered(source):
    """The generated function ``source`` with sympy's dummy names numbered in order of
    appearance (``_a0``, ``_a1``, ...): the same formulas give the same text in every
    process, so their file and numba's cache of it are found again."""
    names = {}
    return re.sub(r"\b_Dummy_\d+\b",
                  lambda m: names.setdefault(m.group(0), f"_a{len(names)}"), source)


def core_text(name, args, exprs):
    """The audited source of the formulas ``exprs`` of ``args`` as a function returning a
    tuple, compiled (inlined) under ``name``."""
    source = audit_text(numbered(lambdify_audited(args, exprs, ["math"],
                                                  as_tuple=True).source))
    return f"{source}\n{name} = _inline(_lambdifygenerated)\n"


def vector_text(name, core, reads, count):
    """``name(t, y, C, out)``: writes the ``count`` values of ``core`` at ``reads`` (of t,
    y and C) into out."""
    writes = "\n".join(f"    out[{j}] = r[{j}]" for j in range(count))
    return f"def {name}(t, y, C, out):\n    r = {core}({', '.join(reads)})\n{writes}\n"


def scalar_text(name, core, reads, count, norm=False):
    """``name(t, y, C)``: the one value of ``core`` at ``reads``, or with ``norm`` the
    Euclidean norm of its ``count`` values (in their order)."""
    value = ("(" + " + ".join(f"r[{j}] * r[{j}]" for j in range(count)) + ") ** 0.5"
             if norm else "r[0]")
    return f"def {name}(t, y, C):\n    r = {core}({', '.join(reads)})\n    return {value}\n"


def _sum(weights, name, j):
    """The source of sum_q w_q k{q}_{j}, in stage order (as the numpy engine's einsum sums),
    each weight written by ``repr`` (the float exactly)."""
    return " + ".join(f"{float(w)!r} * k{q}_{j}" for q, w in enumerate(weights)) or "0.0"


def attempt_source(n, n_constants, tableau):
    """The source of ``attempt(T, hs, Yv, Fv, C, rtol, atol, Yn, Fn, R)``: one step of
    ``tableau`` of size hs[l] in every lane l from the state Yv[:, l] at time T[l] with
    f = Fv[:, l] (stage i at T[l] + c_i hs[l], as the numpy engine takes it), every
    number a local variable; writes y_new and f(y_new) to Yn, Fn (n, LANES) and the sums of
    squared scaled errors (high, low order) and the sum of f(y_new) to R (3, LANES). Written
    from integers and the tableau's floats (``repr``, exact) only."""
    S = len(tableau.B)
    consts = "".join(f", C[{c}]" for c in range(n_constants))
    lines = ["def attempt(T, hs, Yv, Fv, C, rtol, atol, Yn, Fn, R):",
             "    for l in range(LANES):", "        h = hs[l]", "        tl = T[l]"]
    lines += [f"        y{j} = Yv[{j}, l]\n        k0_{j} = Fv[{j}, l]" for j in range(n)]

    def call(target, time, points):
        names = ", ".join(f"{target}_{j}" for j in range(n))
        lines.append(f"        {names}, = core_field({time}, {', '.join(points)}{consts})")
    for i in range(1, S):
        for j in range(n):
            lines.append(f"        s{j} = ({_sum(tableau.A[i], 'k', j)}) * h + y{j}")
        call(f"k{i}", f"tl + {float(tableau.C[i])!r} * h", [f"s{j}" for j in range(n)])
    for j in range(n):
        lines.append(f"        yn{j} = ({_sum(tableau.B, 'k', j)}) * h + y{j}")
    call(f"k{S}", "tl + h", [f"yn{j}" for j in range(n)])
    low = tableau.E_low if tableau.E_low is not None else ()
    for j in range(n):
        lines.append(f"        sc{j} = _nmax(abs(y{j}), abs(yn{j})) * rtol + atol")
        lines.append(f"        e{j} = ({_sum(tableau.E, 'k', j)}) * h / sc{j}")
        lines.append(f"        l{j} = ({_sum(low, 'k', j)}) * h / sc{j}")
        lines.append(f"        Yn[{j}, l] = yn{j}\n        Fn[{j}, l] = k{S}_{j}")
    lines.append("        R[0, l] = " + " + ".join(f"e{j} * e{j}" for j in range(n)))
    lines.append("        R[1, l] = " + " + ".join(f"l{j} * l{j}" for j in range(n)))
    lines.append("        R[2, l] = " + " + ".join(f"k{S}_{j}" for j in range(n)))
    return "\n".join(lines) + "\n"
