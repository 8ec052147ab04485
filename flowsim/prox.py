"""Proximal operators of non-smooth penalties g, for proximal gradient methods.

Each penalty is a frozen dataclass with ``value(x)`` and ``prox(v, eta)``, where

.. math:: \\operatorname{prox}_{\\eta g}(v) = \\arg\\min_y \\; g(y) + \\frac{1}{2\\eta}|y - v|^2 .

Both act on the last axis, so batches of points ``(..., n)`` work.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["L1"]


def _check_weight(value, name):
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return float(value)


def _check_eta(eta):
    if not np.isfinite(eta) or eta <= 0:
        raise ValueError(f"eta must be a finite positive step, got {eta}.")
    return float(eta)


@dataclass(frozen=True)
class L1:
    """g(x) = lam * sum_i |x_i|, whose prox is soft thresholding.

    Notes
    -----
    .. math:: \\operatorname{prox}_{\\eta g}(v)_i = \\operatorname{sign}(v_i)
              \\max(|v_i| - \\eta\\,\\mathrm{lam}, 0)

    Examples
    --------
    >>> L1(1.0).prox(np.array([3.0, -0.5]), eta=1.0)
    array([ 2., -0.])
    """

    lam: float

    def __post_init__(self):
        object.__setattr__(self, "lam", _check_weight(self.lam, "lam"))

    def value(self, x):
        """g(x), shape ``(...)`` for ``x`` of shape ``(..., n)``."""
        return self.lam * np.abs(np.asarray(x, dtype=float)).sum(axis=-1)

    def prox(self, v, eta):
        """prox_{eta g}(v), same shape as ``v``."""
        v = np.asarray(v, dtype=float)
        t = self.lam * _check_eta(eta)
        return np.sign(v) * np.maximum(np.abs(v) - t, 0.0)
