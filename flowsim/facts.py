"""What is known about a loss: its critical points, minimum, and closed-form flow.

Named losses in :mod:`flowsim.losses` carry a :class:`LossFacts`; the diagnostics compare
what they find against it, and the tests check every fact against the compiled derivatives.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
from .trajectory import Picklable

__all__ = ["PointKind", "KnownPoint", "LossFacts"]


class PointKind(str, enum.Enum):
    """Kind of a critical point, by the signs of the Hessian eigenvalues there."""

    MINIMUM = "minimum"
    MAXIMUM = "maximum"
    SADDLE = "saddle"
    DEGENERATE = "degenerate"

    def __str__(self):
        return self.value


@dataclass(frozen=True)
class KnownPoint(Picklable):
    """A critical point given by the literature (or exactly, for a closed form).

    Attributes
    ----------
    point : ndarray, shape (n,)
    kind : PointKind
    is_global : bool
        For a minimum: whether it is a global minimizer.
    """

    point: np.ndarray
    kind: PointKind
    is_global: bool = False

    def __post_init__(self):
        object.__setattr__(self, "point", np.asarray(self.point, dtype=float))
        object.__setattr__(self, "kind", PointKind(self.kind))


@dataclass(frozen=True)
class LossFacts(Picklable):
    """Known facts about a named loss.

    Attributes
    ----------
    name : str
        Human name, e.g. ``"rosenbrock(2)"``.
    critical_points : tuple of KnownPoint
        Critical points from the literature or the closed form.
    complete : bool
        Whether ``critical_points`` lists every critical point (of the whole space, or of
        ``box`` where one is given).
    min_value : float or None
        The global minimum value L*, where known.
    box : tuple of (float, float), or None
        The usual search box per variable, where the list is complete only inside it.
    flow_solution : callable or None
        ``flow_solution(t, x0)`` -> the exact gradient-flow state, shape ``(n,)``, where a
        closed form exists.
    """

    name: str
    critical_points: tuple = ()
    complete: bool = False
    min_value: float | None = None
    box: tuple | None = None
    flow_solution: object = field(default=None, repr=False, compare=False)

    @property
    def minimizers(self):
        """Points of kind minimum, shape ``(k, n)``."""
        pts = [p.point for p in self.critical_points if p.kind is PointKind.MINIMUM]
        return np.array(pts) if pts else np.empty((0, 0))

    @property
    def global_minimizers(self):
        """Points of kind minimum marked global, shape ``(k, n)``."""
        pts = [p.point for p in self.critical_points
               if p.kind is PointKind.MINIMUM and p.is_global]
        return np.array(pts) if pts else np.empty((0, 0))
