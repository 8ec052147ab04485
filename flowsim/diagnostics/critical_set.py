"""What a critical-point search returns: the points, what was proven, and what was not."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..facts import PointKind
from ..results import Report, _table

__all__ = ["CriticalPointSet", "UndecidedRegion", "STATUSES"]

#: The statuses of a search, from strongest to weakest.
STATUSES = {
    "proven": "every critical point in the box is listed, each proven unique in its "
              "enclosure",
    "complete": "the whole box was examined; every critical point is listed or lies in an "
                "undecided region",
    "budget": "the budget was spent before the whole box was examined",
    "sampled": "a quick look from random starts; points may be missing",
}


@dataclass(frozen=True)
class UndecidedRegion(Report):
    """Connected boxes the search could not decide, with the reason.

    Attributes
    ----------
    bounds : ndarray, shape (n, 2)
        The hull of the boxes.
    n_boxes : int
    reason : str
        ``"degenerate point"`` (a small cluster around a critical point whose Hessian is
        singular), ``"non-isolated"`` (a curve or surface of critical points, or several
        points closer than the resolution), ``"domain"`` (the loss is undefined on part of
        the boxes), ``"nonsmooth"`` (the gradient jumps there: a kink) or ``"budget"``
        (not examined).
    point : ndarray, shape (n,), or None
        For a non-isolated set: a representative critical point on it (the smallest
        |grad L| reached by least squares on the gradient from the region's best box).
    value : float or None
        L at ``point``; for a curve of minima, the minimum value along it.
    eigenvalues : ndarray, shape (n,), or None
        The Hessian's eigenvalues at ``point`` (a zero one along the set; the signs of the
        others say whether the set is of minima, maxima or saddles).
    """

    bounds: np.ndarray
    n_boxes: int
    reason: str
    point: np.ndarray | None = None
    value: float | None = None
    eigenvalues: np.ndarray | None = None

    def summary(self):
        """One line: reason, box count and hull (and the representative point)."""
        hull = ", ".join(f"[{lo:.6g}, {hi:.6g}]" for lo, hi in self.bounds)
        text = f"{self.reason}: {self.n_boxes} boxes in {hull}"
        if self.point is not None:
            where = ", ".join(f"{v:.6g}" for v in self.point)
            lam = ", ".join(f"{v:.4g}" for v in self.eigenvalues)
            text += (f"; representative point [{where}] with L = {self.value:.10g}, "
                     f"Hessian eigenvalues [{lam}]")
        return text


@dataclass(frozen=True)
class CriticalPointSet(Report):
    """The critical points found in a box, and how far the search got.

    Behaves as a sequence of :class:`~flowsim.diagnostics.critical.CriticalPoint` sorted by
    value (``len``, iteration, indexing), so ``for p in critical_points(...)`` works.

    Attributes
    ----------
    points : tuple of CriticalPoint
        Sorted by value; ``point.proven`` says whether existence and uniqueness in
        ``point.enclosure`` were proven.
    bounds : ndarray, shape (n, 2)
        The search box.
    method : str
        ``"interval"``, ``"symbolic"`` or ``"newton"``.
    status : str
        One of :data:`STATUSES`: ``"proven"``, ``"complete"``, ``"budget"``, ``"sampled"``.
    message : str
        What happened, and how to go further when the search is not complete.
    undecided : tuple of UndecidedRegion
    n_boxes : int
        Boxes examined (interval search) or starts (Newton).
    n_skipped : int
        Boxes (on all of which L is undefined) or Newton starts (drawn again because L is
        undefined there): skipped, never an error.
    undefined_fraction : float
        Share of the box where L is not finite, estimated on 4096 scrambled Sobol points.
    elapsed : float
        Seconds.
    """

    points: tuple
    bounds: np.ndarray
    method: str
    status: str
    message: str
    undecided: tuple = ()
    n_boxes: int = 0
    n_skipped: int = 0
    undefined_fraction: float = 0.0
    elapsed: float = 0.0

    def __iter__(self):
        return iter(self.points)

    def __len__(self):
        return len(self.points)

    def __getitem__(self, i):
        return self.points[i]

    @property
    def complete(self):
        """True when the whole box was examined (status ``proven`` or ``complete``)."""
        return self.status in ("proven", "complete")

    def of_kind(self, kind):
        """The points of one kind (a :class:`PointKind` or its name), as a tuple."""
        kind = PointKind(kind)
        return tuple(p for p in self.points if p.kind is kind)

    def summary(self):
        """Several lines: status, counts by kind, the points and the undecided regions."""
        kinds = {}
        for p in self.points:
            kinds[p.kind.value] = kinds.get(p.kind.value, 0) + 1
        counts = ", ".join(f"{v} {k}" for k, v in kinds.items()) or "none"
        proven = sum(p.proven for p in self.points)
        lines = [f"{len(self.points)} critical points ({counts}; {proven} proven) by "
                 f"{self.method}, status {self.status}: {self.message}"]
        lines += ["  " + p.summary() for p in self.points[:50]]
        if len(self.points) > 50:
            lines.append(f"  ... {len(self.points) - 50} more (see to_frame())")
        lines += ["  undecided " + u.summary() for u in self.undecided[:20]]
        return "\n".join(lines)

    def to_frame(self):
        """One row per point: kind, value, grad_norm, proven, morse_index, x_1..x_n; the
        status, message and counts in ``.attrs``."""
        n = self.bounds.shape[0]
        P = np.array([p.point for p in self.points]).reshape(-1, n)
        columns = {"kind": [p.kind.value for p in self.points],
                   "value": [p.value for p in self.points],
                   "grad_norm": [p.grad_norm for p in self.points],
                   "proven": [p.proven for p in self.points],
                   "morse_index": [p.morse_index for p in self.points]}
        columns.update({f"x_{i + 1}": P[:, i] for i in range(n)})
        frame = _table(columns)
        frame.attrs.update(self._scalars())
        frame.attrs["n_undecided"] = len(self.undecided)
        return frame

    def __repr__(self):
        return (f"CriticalPointSet({len(self.points)} points, status={self.status!r}, "
                f"method={self.method!r}, undecided={len(self.undecided)})")
