"""Batched ODE engines: many starts at once, each with its own step size.

``explicit`` (embedded Runge-Kutta pairs BS3 and DP5), ``rosenbrock`` (the stiff
RODAS4 Rosenbrock method of order 4), ``state`` (per-start bookkeeping shared by both) and
``run`` (the flows' batched path on top of them).
"""
from .explicit import BS3, DP5, TABLEAUS, explicit
from .rosenbrock import rosenbrock

__all__ = ["explicit", "rosenbrock", "BS3", "DP5", "TABLEAUS"]
