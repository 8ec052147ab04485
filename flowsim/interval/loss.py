"""Enclosures of a :class:`~flowsim.Loss`: its value, gradient and Hessian over many boxes,
parameters bound and finite sums averaged (see :mod:`flowsim.interval`)."""
from __future__ import annotations

import numpy as np

from .arithmetic import _TINY, Bounds, Enclosure

__all__ = ["LossEnclosure", "enclose"]


def enclose(loss, bounds):
    """An enclosure of a loss's values over a box.

    Parameters
    ----------
    loss : Loss or str
        A loss without data (a finite-sum loss is enclosed sample by sample).
    bounds : (low, high) or n pairs, or array of shape (k, n, 2)
        One box, or k boxes.

    Returns
    -------
    lo, hi : ndarray, shape () or (k,)
        ``lo <= L(x) <= hi`` for every x in the box where L is defined.

    Examples
    --------
    >>> lo, hi = enclose("x**2 + y**2", (-1, 2))
    >>> bool(lo <= 0 <= hi and 8 <= hi < 8 + 1e-12)
    True
    """
    from .._validate import as_loss, check_bounds
    loss = as_loss(loss)
    B = np.asarray(bounds, dtype=float)
    boxes = B if B.ndim == 3 else check_bounds(bounds, loss.n)[None]
    b = LossEnclosure(loss)("value", boxes)
    lo, hi = b.lo, b.hi
    lo, hi = lo[:, 0], hi[:, 0]
    return (lo, hi) if B.ndim == 3 else (lo[0], hi[0])


class LossEnclosure:
    """Enclosures of a loss's value, gradient and Hessian over many boxes at once.

    Parameters
    ----------
    loss : Loss
        Parameters are bound as numbers; a finite-sum loss is enclosed per sample and
        averaged (boxes are then processed in chunks to bound memory).

    Each call takes ``boxes`` of shape (k, n, 2) (or points of shape (k, n)) and returns
    ``lo, hi`` of shape (k, m) and the ``partly, nowhere`` flags of shape (k, m), where m is
    1 (value), n (gradient) or n(n+1)/2 (Hessian, upper triangle row by row).
    """

    def __init__(self, loss):
        self.n = loss.n
        self.variables = loss.variables
        self._bound = loss.symbol_values()
        self._samples = next((len(v) for v in self._bound.values() if np.ndim(v)), None)
        rows, cols = np.triu_indices(self.n)
        self.hessian_index = (rows, cols)
        H = loss.hessian_expr
        self._exprs = {"value": [loss.expr], "gradient": list(loss.gradient_expr),
                       "hessian": [H[i, j] for i, j in zip(rows, cols)]}
        self._compiled = {}

    def _enclosure(self, which):
        if which not in self._compiled:
            self._compiled[which] = Enclosure(self._exprs[which],
                                              self.variables + tuple(self._bound))
        return self._compiled[which]

    def __call__(self, which, boxes):
        """:class:`Bounds` of ``which`` ("value", "gradient" or "hessian") on each box;
        ``boxes`` has shape (k, n, 2), or (k, n) for points."""
        boxes = np.asarray(boxes, dtype=float)
        if boxes.ndim == 2:
            boxes = np.stack([boxes, boxes], axis=-1)
        k = boxes.shape[0]
        chunk = max(k, 1) if self._samples is None else max(1, 2_000_000 // self._samples)
        parts = [self._chunk(which, boxes[i:i + chunk]) for i in range(0, max(k, 1), chunk)]
        return Bounds(*(np.concatenate([p[j] for p in parts]) for j in range(5)))

    def hessian_magnitudes(self, boxes):
        """The interval Hessian on each box (k, n, 2) as Gershgorin reads it:
        ``(M, diag_lo, bad)``, M (k, n, n) the largest |H_ij| over the box, diag_lo (k, n)
        the least H_ii, bad (k,) where the enclosure fails (a singularity, a jump, a point
        outside the domain)."""
        b = self("hessian", boxes)
        rows, cols = self.hessian_index
        size = np.maximum(np.abs(b.lo), np.abs(b.hi))
        M = np.zeros((len(b.lo), self.n, self.n))
        M[:, rows, cols] = size
        M[:, cols, rows] = size
        on = rows == cols
        diag_lo = np.zeros((len(b.lo), self.n))
        diag_lo[:, rows[on]] = b.lo[:, on]
        bad = np.any(b.partly | b.nowhere | b.jump, axis=1)
        return M, diag_lo, bad

    def _chunk(self, which, boxes):
        tail = (1,) if self._samples else ()
        values = {v: (boxes[:, i, 0].reshape(-1, *tail), boxes[:, i, 1].reshape(-1, *tail))
                  for i, v in enumerate(self.variables)}
        values.update(self._bound)
        b = self._enclosure(which)(values)
        b = Bounds(*(np.broadcast_to(a, (len(boxes),) + ((self._samples,) if self._samples
                                                          else ()) + a.shape[-1:]) for a in b))
        if not self._samples:
            return b
        # the mean over samples, widened for the summation's rounding
        lo, hi = b.lo.mean(axis=1), b.hi.mean(axis=1)
        slack = (np.abs(lo) + np.abs(hi)) * self._samples * np.finfo(float).eps + _TINY
        return Bounds(lo - slack, hi + slack, b.partly.any(axis=1), b.nowhere.any(axis=1),
                      b.jump.any(axis=1))
