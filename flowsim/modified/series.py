r"""Truncated power series in the step h, on which a scheme's one-step map is evaluated
symbolically, and the exact flow's coefficients (the Lie series) they are matched against.

A :class:`Jet` is ``c[0] + h c[1] + ... + h^m c[m]`` with vector coefficients (symengine
expressions in the loss's variables). A one-step map written for numbers (``x + h * f(x)``)
runs on jets unchanged: :class:`StepSymbol` is the h it sees, and :func:`field_on_jets` is the
field evaluated on a jet through its Taylor expansion.

Every derivation is metered (:class:`Meter`): the terms of each expansion are predicted
before it runs and the time is checked after every expression kept, so a large loss is
refused in one sentence instead of running for minutes.
"""
from __future__ import annotations

import math
import time

import symengine as se

__all__ = ["Jet", "StepSymbol", "Meter", "field_on_jets", "taylor", "flow_coefficient"]


class Meter:
    """The budget of a derivation: the terms an expansion in h would produce, predicted
    before it runs, and the time spent, checked after every expression kept.

    Parameters
    ----------
    max_terms : int
        Most terms one expansion may produce (a field of n components whose k-th derivative
        has C(n+k-1, k) monomials in the direction, each multiplied into m^k terms).
    time_limit : float
        Seconds the whole derivation may take.

    Raises
    ------
    ValueError
        From :meth:`predict` and :meth:`take` once a limit would be passed.
    """

    def __init__(self, max_terms, time_limit):
        self.max_terms, self.time_limit = max_terms, time_limit
        self.start = time.perf_counter()

    def predict(self, terms, what):
        if terms > self.max_terms:
            raise ValueError(f"modified equation is too large to derive: {what} would have "
                             f"{terms:,} terms, over max_terms = {self.max_terms:,}; lower "
                             "the order, use fewer variables, or raise max_terms=.")

    def take(self, exprs, what):
        spent = time.perf_counter() - self.start
        if spent > self.time_limit:
            raise ValueError(f"modified equation took over time_limit = {self.time_limit:g} s "
                             f"(at {what}); lower the order, simplify the loss, or raise "
                             "time_limit=.")
        return exprs


class Jet:
    """``c[0] + h c[1] + ... + h^m c[m]``: a truncated series with vector coefficients."""

    def __init__(self, coeffs, m):
        self.c, self.m = coeffs, m

    def _lift(self, other):
        if isinstance(other, Jet):
            return other
        zero = [0] * len(self.c[0])
        return Jet([list(other)] + [zero] * self.m, self.m)

    def __add__(self, other):
        other = self._lift(other)
        return Jet([[a + b for a, b in zip(p, q)] for p, q in zip(self.c, other.c)], self.m)

    __radd__ = __add__

    def __mul__(self, k):
        return Jet([[k * a for a in p] for p in self.c], self.m)

    __rmul__ = __mul__

    def __truediv__(self, k):
        return self * (se.Integer(1) / k)

    def is_point(self):
        """Whether the series is its constant term only."""
        return all(a == 0 for p in self.c[1:] for a in p)


class StepSymbol:
    """The step h as a one-step map sees it: ``(h * k) * jet`` shifts the series by one."""

    def __init__(self, k=1):
        self.k = k

    def __mul__(self, other):
        if isinstance(other, Jet):
            zero = [0] * len(other.c[0])
            return Jet([zero] + [[self.k * a for a in p] for p in other.c[:-1]], other.m)
        return StepSymbol(self.k * other)

    __rmul__ = __mul__

    def __truediv__(self, k):
        return StepSymbol(self.k * se.Integer(1) / k)


def field_on_jets(f_expr, xs, m, meter):
    """f(jet) for jets whose h^0 coefficient is the point x itself: the Taylor expansion
    f(x + d) = sum_k D^k f(x)[d, ..., d] / k!, with d = sum_{i>=1} h^i c_i.

    The table of D^k f as polynomials in the direction is built the first time a jet with
    higher terms arrives (an explicit one-step map such as Euler's never needs it).
    """
    n = len(xs)
    table = []

    def build():
        a = [se.Symbol(f"_a{j}") for j in range(n)]
        b = [[se.Symbol(f"_b{i}_{j}") for j in range(n)] for i in range(1, m + 1)]
        hs = se.Symbol("_h")
        put_a = {a[j]: sum(hs ** (i + 1) * b[i][j] for i in range(m)) for j in range(n)}
        rows = [[[0] * n for _ in range(m + 1)] for _ in range(m + 1)]  # [k][p][comp]
        G = list(f_expr)
        for k in range(1, m + 1):
            # a_j -> sum_i h^i b_ij multiplies each monomial into up to m^k terms
            meter.predict(n * math.comb(n + k - 1, k) * m ** k,
                          f"the expansion of D^{k} of the field in h")
            G = meter.take([sum(a[j] * se.diff(g, xs[j]) for j in range(n)) for g in G],
                           f"the derivative D^{k} of the field")
            for comp, g in enumerate(G):
                e = se.expand(g.subs(put_a) / math.factorial(k))
                for p in range(k, m + 1):
                    rows[k][p][comp] = e.coeff(hs, p)
            meter.take([rows[k][p][c] for p in range(k, m + 1) for c in range(n)],
                       f"the h-series of D^{k} of the field")
        table.append((b, rows))

    def f(jet):
        out = [list(f_expr)] + [[0] * n for _ in range(m)]
        if jet.is_point():
            return Jet(out, m)
        if not table:
            build()
        b, rows = table[0]
        put_b = {b[i][j]: jet.c[i + 1][j] for i in range(m) for j in range(n)}
        for k in range(1, m + 1):
            for p in range(k, m + 1):
                for comp in range(n):
                    if rows[k][p][comp] != 0:
                        out[p][comp] += rows[k][p][comp].subs(put_b)
        return Jet(out, m)
    return f


def taylor(one_step, f_expr, xs, order, meter):
    """Coefficients d_1..d_order (lists of symengine expressions) of the one-step map."""
    f = field_on_jets(f_expr, xs, order, meter)
    point = Jet([list(xs)] + [[0] * len(xs) for _ in range(order)], order)
    result = one_step(f, point, StepSymbol(), order)
    return [meter.take([se.expand(e) for e in result.c[j]], f"the h^{j} term of the step")
            for j in range(1, order + 1)]


def _lie(g_terms, F_terms, xs, order, meter):
    """D_F g for truncated h-series g = sum h^a g_a and F = sum h^b F_b (lists of vectors),
    truncated after h^order."""
    n = len(xs)
    out = [[0] * n for _ in range(order + 1)]
    for a_, g in enumerate(g_terms):
        J = [[se.diff(gi, x) for x in xs] for gi in g]
        for b_, F in enumerate(F_terms):
            if a_ + b_ <= order:
                for i in range(n):
                    out[a_ + b_][i] += sum(J[i][j] * F[j] for j in range(n))
    return [meter.take(t, "a Lie derivative of the field") for t in out]


def flow_coefficient(F_terms, xs, m, meter):
    """[h^m] of the exact time-h flow of F = sum h^b F_b (lists of vectors)."""
    n = len(xs)
    total = [0] * n
    term = list(F_terms) + [[0] * n] * (m - len(F_terms))   # D^0 F
    for k in range(1, m + 1):
        if m - k < len(term):
            total = [t + e / math.factorial(k) for t, e in zip(total, term[m - k])]
        if k < m:
            term = _lie(term, F_terms, xs, m, meter)
    return total
