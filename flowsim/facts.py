"""What is known about a loss: its critical points, minimum, and closed-form flow.

Named losses in :mod:`flowsim.losses` carry a :class:`LossFacts`; the diagnostics compare
what they find against it, and the tests check every fact against the compiled derivatives.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from ._validate import finite, real_array
from .results import Picklable

__all__ = ["PointKind", "KnownPoint", "LossFacts", "kind_of_spectrum", "ZERO_EIGENVALUE"]

#: Relative size below which a Hessian eigenvalue counts as zero: |lambda| <= ZERO_EIGENVALUE
#: * max(1, max |lambda|). Above the rounding of an eigensolver on a Hessian accurate to a
#: few ulps (about 1e-13 relative), below any curvature a loss of interest has.
ZERO_EIGENVALUE = 1e-8


class PointKind(str, enum.Enum):
    """Kind of a critical point, by the signs of the Hessian eigenvalues there."""

    MINIMUM = "minimum"
    MAXIMUM = "maximum"
    SADDLE = "saddle"
    DEGENERATE = "degenerate"

    def __str__(self):
        return self.value


def kind_of_spectrum(eigenvalues, tol=ZERO_EIGENVALUE):
    """The kind of a critical point from its Hessian eigenvalues: the one rule flowsim uses.

    Parameters
    ----------
    eigenvalues : array_like, shape (n,)
    tol : float
        An eigenvalue with |lambda| <= tol * max(1, max |lambda|) counts as zero.

    Returns
    -------
    PointKind
        ``DEGENERATE`` if any eigenvalue counts as zero, else ``MINIMUM`` (all positive),
        ``MAXIMUM`` (all negative) or ``SADDLE``.

    Examples
    --------
    >>> kind_of_spectrum([2.0, -1.0]).value, kind_of_spectrum([1.0, 1e-12]).value
    ('saddle', 'degenerate')
    """
    lam = np.asarray(eigenvalues, dtype=float)
    scale = max(1.0, float(np.max(np.abs(lam))))
    if np.any(np.abs(lam) <= tol * scale):
        return PointKind.DEGENERATE
    if np.all(lam > 0):
        return PointKind.MINIMUM
    return PointKind.MAXIMUM if np.all(lam < 0) else PointKind.SADDLE


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
        point = real_array(self.point, "point")
        if point.ndim != 1 or not np.all(np.isfinite(point)):
            raise ValueError(f"point must be a finite point of shape (n,), got shape "
                             f"{point.shape}.")
        object.__setattr__(self, "point", point)
        object.__setattr__(self, "kind", PointKind(self.kind))
        if not isinstance(self.is_global, (bool, np.bool_)):
            raise TypeError(f"is_global must be True or False, got {self.is_global!r}.")


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
        ``bounds`` where they are given).
    min_value : float or None
        The global minimum value L*, where known.
    bounds : tuple of (float, float), or None
        The usual search box per variable, where the list is complete only inside it.
    flow_solution : callable or None
        ``flow_solution(t, x0)`` -> the exact gradient-flow state, shape ``(n,)``, where a
        closed form exists.
    source : str
        Where the facts came from, said wherever a result uses them: ``"literature"`` (the
        named losses), ``"given"`` (by the user), or how :func:`flowsim.with_facts` derived
        them (``"critical_points on [...]: proven"``).
    """

    name: str
    critical_points: tuple = ()
    complete: bool = False
    min_value: float | None = None
    bounds: tuple | None = None
    flow_solution: object = field(default=None, repr=False, compare=False)
    source: str = "given"

    def summary(self):
        """One line: the name, L*, the known critical points by kind, where they came from."""
        kinds = {}
        for p in self.critical_points:
            kinds[p.kind.value] = kinds.get(p.kind.value, 0) + 1
        known = ", ".join(f"{v} {k}" for k, v in kinds.items()) or "no critical points"
        return (f"{self.name}: L* = {self.min_value}; {known}"
                f"{' (complete)' if self.complete else ''}; source: {self.source}")

    def __post_init__(self):
        if not isinstance(self.source, str):
            raise TypeError(f"source must be a str, got {type(self.source).__name__}.")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str (a label), got {type(self.name).__name__}.")
        points = tuple(self.critical_points)
        if not all(isinstance(p, KnownPoint) for p in points):
            raise TypeError("critical_points must be flowsim.KnownPoint records.")
        object.__setattr__(self, "critical_points", points)
        if not isinstance(self.complete, (bool, np.bool_)):
            raise TypeError(f"complete must be True or False, got {self.complete!r}.")
        if self.min_value is not None:
            object.__setattr__(self, "min_value", finite(self.min_value, "min_value"))
        if self.bounds is not None:
            box = real_array(self.bounds, "bounds")
            pairs = np.atleast_2d(box)
            if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.all(np.isfinite(pairs)) or \
                    np.any(pairs[:, 0] >= pairs[:, 1]):
                raise ValueError("bounds must be finite (low, high) pairs with low < high, "
                                 "one per variable (or one for all).")
            object.__setattr__(self, "bounds", tuple(box.tolist()) if box.ndim == 1 else
                               tuple(map(tuple, box.tolist())))

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
