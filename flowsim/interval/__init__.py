r"""Interval enclosures of loss expressions: vectorized over boxes, rounded outward.

An :class:`Enclosure` is compiled once from sympy expressions that passed the loss gate (the
whitelisted functions, plus ``Heaviside`` from differentiating ``Max``/``Min``) and evaluated
on many boxes at once: every variable is an interval ``[lo, hi]`` held in numpy arrays, each
node of the expression DAG is one vectorized interval operation, and every result is
widened outward by :data:`WIDEN` relative plus the smallest normal number, which covers the
rounding of numpy's arithmetic (0.5 ulp) and of its libm functions (a few ulps). The
enclosures are therefore rigorous up to the accuracy of the platform's libm; for a proof that
does not rely on libm, check a result again with ``mpmath.iv``.

For every box and every expression the evaluator also says where the expression is not
defined (``log`` of a non-positive number, ``sqrt`` of a negative one, division by zero,
``asin`` outside [-1, 1], a pole of ``tan``):

* ``partly``: undefined somewhere in the box; the enclosure holds the values on the part of
  the box where it is defined (so a box whose enclosure excludes 0 holds no zero there);
* ``nowhere``: undefined on the whole box.

Rules (``x = [a, b]``): monotone functions map endpoints (``exp``, ``log``, ``sinh``,
``tanh``, ``atan``, ``asin``, ``erf``, ``acos`` decreasing); ``cos``, ``sin`` and ``cosh``
add their extrema when the box holds one; ``x**k`` for integer k is exact on sign-definite
boxes and ``[0, max]`` across 0; ``1/x`` is ``[-inf, inf]`` across 0; ``x**r`` for
non-integer r is defined for x >= 0 (as numpy evaluates it); ``atan2`` takes its corners
unless the box meets the branch cut or the origin; products use the extended-real rule
0 * inf = 0 on endpoints (IEEE 1788).
"""
from .arithmetic import WIDEN, Bounds, Enclosure
from .loss import LossEnclosure, enclose

__all__ = ["Bounds", "Enclosure", "LossEnclosure", "enclose", "WIDEN"]
