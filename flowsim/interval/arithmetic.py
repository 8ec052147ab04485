"""The interval arithmetic: one vectorized rule per operation and function, and the
:class:`Enclosure` that compiles an expression DAG into them (see :mod:`flowsim.interval`)."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.special
import sympy as sp

from ..loss._audit import to_sympy

__all__ = ["Bounds", "Enclosure", "WIDEN"]

#: Relative outward widening applied after every operation (about 8 ulps).
WIDEN = 2.0 ** -49
_TINY = np.finfo(float).tiny
_TWO_PI = 2.0 * math.pi
_INCREASING = {sp.exp: np.exp, sp.sinh: np.sinh, sp.tanh: np.tanh, sp.atan: np.arctan,
               sp.erf: scipy.special.erf}


class _I:
    """One interval array and its flags (all broadcastable): undefined on part of the box,
    undefined on all of it, and discontinuous in it (a jump of ``sign`` or ``Heaviside``)."""

    __slots__ = ("lo", "hi", "partly", "nowhere", "jump")

    def __init__(self, lo, hi, partly=False, nowhere=False, jump=False):
        self.lo, self.hi, self.partly, self.nowhere, self.jump = lo, hi, partly, nowhere, jump


def _out(lo, hi, partly=False, nowhere=False, jump=False):
    """Widen outward; nan bounds (inf - inf, overflow) become infinite."""
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    lo = np.where(np.isnan(lo), -np.inf, lo - (np.abs(lo) * WIDEN + _TINY))
    hi = np.where(np.isnan(hi), np.inf, hi + (np.abs(hi) * WIDEN + _TINY))
    return _I(lo, hi, partly, nowhere, jump)


def _flags(args):
    partly = nowhere = jump = False
    for a in args:
        partly = partly | a.partly
        nowhere = nowhere | a.nowhere
        jump = jump | a.jump
    return partly, nowhere, jump


def _mul(a, b):
    with np.errstate(invalid="ignore", over="ignore"):
        p = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
    p = [np.where(np.isnan(q), 0.0, q) for q in p]  # 0 * inf = 0 on endpoints
    lo = np.minimum(np.minimum(p[0], p[1]), np.minimum(p[2], p[3]))
    hi = np.maximum(np.maximum(p[0], p[1]), np.maximum(p[2], p[3]))
    return _out(lo, hi, *_flags((a, b)))


def _reciprocal(a):
    lo, hi = a.lo, a.hi
    with np.errstate(divide="ignore"):
        r_lo, r_hi = 1.0 / hi, 1.0 / lo
    across = (lo <= 0) & (hi >= 0)
    pos_edge = across & (lo == 0) & (hi > 0)   # [0, b]: 1/x on (0, b] is [1/b, inf)
    neg_edge = across & (hi == 0) & (lo < 0)   # [a, 0]: (-inf, 1/a]
    out_lo = np.where(across, -np.inf, r_lo)
    out_hi = np.where(across, np.inf, r_hi)
    out_lo = np.where(pos_edge, r_lo, out_lo)
    out_hi = np.where(neg_edge, r_hi, out_hi)
    zero = (lo == 0) & (hi == 0)
    return _out(out_lo, out_hi, a.partly | across, a.nowhere | zero, a.jump)


def _int_power(a, k):
    if k == 0:
        return _I(np.ones_like(a.lo), np.ones_like(a.hi), a.partly, a.nowhere, a.jump)
    if k < 0:
        return _reciprocal(_int_power(a, -k))
    with np.errstate(over="ignore"):
        pl, ph = a.lo ** k, a.hi ** k
    if k % 2:
        return _out(pl, ph, a.partly, a.nowhere, a.jump)
    lo = np.where(a.lo >= 0, pl, np.where(a.hi <= 0, ph, 0.0))
    return _out(lo, np.maximum(pl, ph), a.partly, a.nowhere, a.jump)


def _clip_domain(a, low, high=np.inf, open_low=False):
    """Restrict ``a`` to [low, high] (or (low, high]); flags for the part outside."""
    outside_low = (a.lo <= low) if open_low else (a.lo < low)
    partly = a.partly | outside_low | (a.hi > high)
    nowhere = a.nowhere | ((a.hi <= low) if open_low else (a.hi < low)) | (a.lo > high)
    lo = np.clip(a.lo, low, high)
    hi = np.clip(a.hi, low, high)
    return lo, hi, partly, nowhere


def _real_power(a, r):
    lo, hi, partly, nowhere = _clip_domain(a, 0.0, open_low=r < 0)
    with np.errstate(divide="ignore", over="ignore"):
        pl, ph = lo ** r, hi ** r
    return _out(np.minimum(pl, ph), np.maximum(pl, ph), partly, nowhere, a.jump)


def _holds(lo, hi, phase, period):
    """Whether [lo, hi] holds a point phase + k * period (generous near the edges)."""
    slack = 1e-12 + 4e-16 * np.maximum(np.abs(lo), np.abs(hi)) / period
    with np.errstate(invalid="ignore"):
        first = np.ceil((lo - phase) / period - slack)
        last = np.floor((hi - phase) / period + slack)
    return ~(first > last)  # nan (an infinite bound) counts as holding


def _cos_like(a, f, top, bottom):
    """cos (top phase 0, bottom pi) or sin (pi/2, -pi/2) over a box."""
    fl, fh = f(a.lo), f(a.hi)
    lo, hi = np.minimum(fl, fh), np.maximum(fl, fh)
    hi = np.where(_holds(a.lo, a.hi, top, _TWO_PI), 1.0, hi)
    lo = np.where(_holds(a.lo, a.hi, bottom, _TWO_PI), -1.0, lo)
    wide = ~np.isfinite(a.hi - a.lo) | (a.hi - a.lo >= _TWO_PI)
    out = _out(np.where(wide, -1.0, lo), np.where(wide, 1.0, hi), a.partly, a.nowhere, a.jump)
    out.lo, out.hi = np.maximum(out.lo, -1.0), np.minimum(out.hi, 1.0)
    return out


def _tan(a):
    pole = _holds(a.lo, a.hi, math.pi / 2, math.pi) | ~np.isfinite(a.hi - a.lo) | \
        (a.hi - a.lo >= math.pi)
    lo = np.where(pole, -np.inf, np.tan(a.lo))
    hi = np.where(pole, np.inf, np.tan(a.hi))
    return _out(lo, hi, a.partly | pole, a.nowhere, a.jump)


def _atan2(y, x):
    corners = [np.arctan2(yy, xx) for yy in (y.lo, y.hi) for xx in (x.lo, x.hi)]
    lo = np.minimum(np.minimum(corners[0], corners[1]), np.minimum(corners[2], corners[3]))
    hi = np.maximum(np.maximum(corners[0], corners[1]), np.maximum(corners[2], corners[3]))
    cut = (x.lo <= 0) & (y.lo <= 0) & (y.hi >= 0)   # the branch cut or the origin
    out = _out(np.where(cut, -math.pi, lo), np.where(cut, math.pi, hi), *_flags((y, x)))
    out.lo, out.hi = np.maximum(out.lo, -math.pi), np.minimum(out.hi, math.pi)
    return out


def _log(a):
    lo, hi, partly, nowhere = _clip_domain(a, 0.0, open_low=True)
    with np.errstate(divide="ignore"):
        return _out(np.log(lo), np.log(hi), partly, nowhere, a.jump)


def _function(e, args):
    kind = type(e)
    a = args[0]
    if kind in _INCREASING:
        with np.errstate(over="ignore"):
            f = _INCREASING[kind]
            return _out(f(a.lo), f(a.hi), a.partly, a.nowhere, a.jump)
    if kind is sp.log:
        return _log(a)
    if kind in (sp.asin, sp.acos):
        lo, hi, partly, nowhere = _clip_domain(a, -1.0, 1.0)
        if kind is sp.asin:
            return _out(np.arcsin(lo), np.arcsin(hi), partly, nowhere, a.jump)
        return _out(np.arccos(hi), np.arccos(lo), partly, nowhere, a.jump)
    if kind is sp.cos:
        return _cos_like(a, np.cos, 0.0, math.pi)
    if kind is sp.sin:
        return _cos_like(a, np.sin, math.pi / 2, -math.pi / 2)
    if kind is sp.tan:
        return _tan(a)
    if kind is sp.cosh:
        with np.errstate(over="ignore"):
            cl, ch = np.cosh(a.lo), np.cosh(a.hi)
        across = (a.lo < 0) & (a.hi > 0)
        return _out(np.where(across, 1.0, np.minimum(cl, ch)), np.maximum(cl, ch),
                    a.partly, a.nowhere, a.jump)
    if kind is sp.Abs:
        across = (a.lo < 0) & (a.hi > 0)
        al, ah = np.abs(a.lo), np.abs(a.hi)
        return _I(np.where(across, 0.0, np.minimum(al, ah)), np.maximum(al, ah),
                  a.partly, a.nowhere, a.jump)
    if kind is sp.sign:
        return _I(np.sign(a.lo), np.sign(a.hi), a.partly, a.nowhere,
                  a.jump | ((a.lo <= 0) & (a.hi >= 0)))
    if kind is sp.Heaviside:  # whatever its value at 0, it lies in [0, 1]
        return _I(np.where(a.lo > 0, 1.0, 0.0), np.where(a.hi < 0, 0.0, 1.0),
                  a.partly, a.nowhere, a.jump | ((a.lo <= 0) & (a.hi >= 0)))
    if kind in (sp.Min, sp.Max):
        pick = np.minimum if kind is sp.Min else np.maximum
        lo, hi = args[0].lo, args[0].hi
        for b in args[1:]:
            lo, hi = pick(lo, b.lo), pick(hi, b.hi)
        return _I(lo, hi, *_flags(args))
    if kind is sp.atan2:
        return _atan2(args[0], args[1])
    if kind is sp.DiracDelta:  # not left by the compiler; 0 almost everywhere
        return _I(np.zeros_like(a.lo), np.zeros_like(a.hi), a.partly, a.nowhere, a.jump)
    raise ValueError(f"no interval rule for {kind.__name__}; the loss gate should have "
                     "refused it.")


def _constant(e):
    value = float(e)
    if e.is_Integer and abs(value) < 2.0 ** 53:
        return _I(np.float64(value), np.float64(value))
    return _out(value, value)


def _node(e, args):
    if e.is_Add:
        lo = sum(a.lo for a in args)
        hi = sum(a.hi for a in args)
        return _out(lo, hi, *_flags(args))
    if e.is_Mul:
        out = args[0]
        for b in args[1:]:
            out = _mul(out, b)
        return out
    if e.is_Pow:
        base, power = e.args
        if power.is_Integer and abs(int(power)) <= 10 ** 6:
            return _int_power(args[0], int(power))
        if power.is_Number:
            return _real_power(args[0], float(power))
        t = _mul(args[1], _log(args[0]))   # b**e = exp(e log b)
        with np.errstate(over="ignore"):
            return _out(np.exp(t.lo), np.exp(t.hi), t.partly, t.nowhere, t.jump)
    return _function(e, args)


class Bounds(NamedTuple):
    """Enclosures and flags of several expressions over boxes (arrays of one shape)."""

    lo: np.ndarray
    hi: np.ndarray
    partly: np.ndarray
    nowhere: np.ndarray
    jump: np.ndarray


class Enclosure:
    """Compiled interval evaluation of several expressions that share sub-expressions.

    Parameters
    ----------
    exprs : sequence of sympy.Expr
        Gate-checked expressions (a loss, its gradient or Hessian entries).
    symbols : sequence of sympy.Symbol
        The symbols that will receive intervals or numbers; any other free symbol is an
        error.

    Examples
    --------
    >>> x = sp.Symbol("x", real=True)
    >>> b = Enclosure([x**2 - 2*x], [x])({x: (np.array([0.0]), np.array([3.0]))})
    >>> bool(b.lo[0, 0] <= -6.0 and b.hi[0, 0] >= 9.0)
    True
    """

    def __init__(self, exprs, symbols):
        self.exprs = [to_sympy(e) for e in exprs]
        self.symbols = tuple(symbols)
        free = set().union(*(e.free_symbols for e in self.exprs)) if self.exprs else set()
        missing = free - set(self.symbols)
        if missing:
            raise ValueError(f"the expressions use symbols {sorted(map(str, missing))} that "
                             "receive no interval; pass them in symbols.")
        order, seen = [], set()
        for root in self.exprs:
            stack = [(root, False)]
            while stack:
                e, done = stack.pop()
                if done:
                    order.append(e)
                    continue
                if e in seen:
                    continue
                seen.add(e)
                stack.append((e, True))
                stack.extend((a, False) for a in reversed(e.args))
        self._order = order

    def __call__(self, values):
        """Enclose every expression.

        Parameters
        ----------
        values : dict
            symbol -> ``(lo, hi)`` arrays (or one number/array for a point), all
            broadcastable to one shape ``S``.

        Returns
        -------
        Bounds
            ``lo``, ``hi`` and the flags ``partly``, ``nowhere``, ``jump``, each an array of
            shape ``S + (len(exprs),)``.
        """
        memo = {}
        for s in self.symbols:
            v = values[s]
            lo, hi = (v if isinstance(v, tuple) else (v, v))
            memo[s] = _I(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
        with np.errstate(invalid="ignore", over="ignore"):
            for e in self._order:
                if e in memo:
                    continue
                if e.is_Number or e in (sp.pi, sp.E):
                    memo[e] = _constant(e)
                else:
                    memo[e] = _node(e, [memo[a] for a in e.args])
        shape = np.broadcast_shapes(*(np.shape(memo[s].lo) for s in self.symbols)) \
            if self.symbols else ()
        out = [memo[e] for e in self.exprs]
        return Bounds(*(np.stack([np.broadcast_to(getattr(o, f), shape) for o in out], axis=-1)
                        for f in Bounds._fields))
