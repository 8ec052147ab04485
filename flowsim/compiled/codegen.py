"""The generated code of the compiled flow engine (:mod:`flowsim.compiled.engine`): a field
as a function that writes into an array, a scalar test (a guard, a stationarity), and one
step of an embedded Runge-Kutta pair over the engine's lanes as straight-line code.

The formulas are printed by the audited lambdify (:func:`flowsim.loss._audit.lambdify_audited`);
the code around them comes from fixed templates filled with integers and the tableau's floats
(written by ``repr``, which gives each float exactly): no text from a loss, a rule or a
field reaches ``exec``.
"""
from __future__ import annotations

from ..loss._audit import lambdify_audited
from .kernel import _jit, numba

__all__ = ["vector_function", "scalar_function", "attempt_of", "LANES"]

# small functions inlined into the engine at numba's level (LLVM does not always)
_inline = numba.njit(error_model="numpy", inline="always") if numba is not None else _jit

#: Starts advanced together by the engine, one per lane: the step loop over 16 lanes
#: vectorizes (Rosenbrock RK45: 14.7 us a start, against 23 with 8 lanes and 35 one by one).
LANES = 16

_FIELD_TEMPLATE = """def field(y, C, out):
    r = core({args})
{writes}
"""


def vector_function(args, exprs, reads):
    """A compiled ``field(y, C, out)`` writing the formulas ``exprs`` of ``args`` (read as
    ``reads`` from y and C) into ``out``, from a fixed template and integers only; and the
    formulas' own compiled function ``core(*args)`` -> tuple."""
    core = _inline(lambdify_audited(args, exprs, ["math"], as_tuple=True))
    writes = "\n".join(f"    out[{j}] = r[{j}]" for j in range(len(exprs)))
    namespace = {"core": core}
    exec(_FIELD_TEMPLATE.format(args=", ".join(reads), writes=writes), namespace)
    return _inline(namespace["field"]), core


def _sum(weights, name, j):
    """The source of sum_q w_q k{q}_{j}, in stage order (as the numpy engine's einsum sums),
    each weight written by ``repr`` (the float exactly)."""
    return " + ".join(f"{float(w)!r} * k{q}_{j}" for q, w in enumerate(weights)) or "0.0"


def _attempt_source(n, n_constants, tableau):
    """The source of ``attempt(hs, Yv, Fv, C, rtol, atol, Yn, Fn, R)``: one step of
    ``tableau`` of size hs[l] in every lane l from the state Yv[:, l] with f = Fv[:, l], every
    number a local variable; writes y_new and f(y_new) to Yn, Fn (n, LANES) and the sums of
    squared scaled errors (high, low order) and the sum of f(y_new) to R (3, LANES). Written
    from integers and the tableau's floats (``repr``, exact) only."""
    S = len(tableau.B)
    consts = "".join(f", C[{c}]" for c in range(n_constants))
    lines = ["def attempt(hs, Yv, Fv, C, rtol, atol, Yn, Fn, R):",
             f"    for l in range({LANES}):", "        h = hs[l]"]
    lines += [f"        y{j} = Yv[{j}, l]\n        k0_{j} = Fv[{j}, l]" for j in range(n)]

    def call(target, points):
        names = ", ".join(f"{target}_{j}" for j in range(n))
        lines.append(f"        {names}, = core({', '.join(points)}{consts})")
    for i in range(1, S):
        for j in range(n):
            lines.append(f"        s{j} = ({_sum(tableau.A[i], 'k', j)}) * h + y{j}")
        call(f"k{i}", [f"s{j}" for j in range(n)])
    for j in range(n):
        lines.append(f"        yn{j} = ({_sum(tableau.B, 'k', j)}) * h + y{j}")
    call(f"k{S}", [f"yn{j}" for j in range(n)])
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


@_inline
def _nmax(a, b):
    """numpy's maximum of two floats: NaN wins."""
    if a != a or b != b:
        return a + b
    return a if a > b else b


def attempt_of(core, n, n_constants, tableau):
    """The compiled ``attempt`` of :func:`_attempt_source` around the field's ``core``."""
    namespace = {"core": core, "_nmax": _nmax}
    # the template of _attempt_source: integers and the tableau's floats, no user text
    exec(_attempt_source(n, n_constants, tableau), namespace)
    return _inline(namespace["attempt"])



_SCALAR_TEMPLATE = """def scalar(y, C):
    r = core({args})
    return {value}
"""


def scalar_function(args, expr, reads, norm=False):
    """A compiled ``scalar(y, C)``: the formula ``expr`` of ``args`` (read as ``reads``), or
    with ``norm`` the Euclidean norm of the formulas ``expr`` (a list), in their order."""
    exprs = list(expr) if norm else [expr]
    core = _inline(lambdify_audited(args, exprs, ["math"], as_tuple=True))
    value = ("(" + " + ".join(f"r[{j}] * r[{j}]" for j in range(len(exprs))) + ") ** 0.5"
             if norm else "r[0]")
    namespace = {"core": core}
    exec(_SCALAR_TEMPLATE.format(args=", ".join(reads), value=value), namespace)
    return _inline(namespace["scalar"])
