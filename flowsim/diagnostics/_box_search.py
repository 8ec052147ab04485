r"""The complete search for critical points in a box: branch and prune with a Krawczyk test.

Boxes are examined best first (lowest lower bound of L first, so the global minimizer is
proven early even when the budget runs out). For each box X with centre c and radius r:

1. **Exclude** it when the interval enclosure of some component of grad L excludes 0, or
   when L is undefined on all of it (counted as skipped). With ``global_only`` also when the
   lower bound of L exceeds the best value seen; with ``kinds`` restricted, when the Hessian
   diagonal proves that no point of a requested kind lies in it.
2. **Krawczyk test** on X' (X inflated by 1/16 of its largest side, so a zero on a face between two
   boxes is still proven): with Y = (mid H(X'))^{-1},

   .. math:: K(X') = c - Y\,\nabla L(c) + (I - Y\,H(X'))\,(X' - c).

   K(X') inside the interior of X' proves exactly one critical point in X' (the point is
   polished by Newton's method inside it, and the enclosure tightened by iterating
   X' <- K(X') \cap X'); K(X') disjoint from X' proves none; otherwise X \cap K(X') is kept.
   The test is skipped where the gradient jumps (a kink) or the Hessian is undefined.
3. **Bisect** the rest along its widest side (relative to the search box) until every side is
   at most ``resolution`` times the search box's; such a box is *undecided*, with a reason:
   ``"degenerate"`` (the Hessian is singular somewhere near: a degenerate or non-isolated
   critical point, or two points closer than the resolution), ``"domain"`` (L is undefined
   on part of it), ``"nonsmooth"`` (the gradient jumps in it). Boxes left when the budget is
   spent are undecided with reason ``"budget"``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..interval import LossEnclosure

__all__ = ["BoxSearch", "box_search", "verify_points", "clusters"]

_EPS = np.finfo(float).eps
_BATCH = 4096


@dataclass
class BoxSearch:
    """Raw outcome of :func:`box_search` (assembled into a result by ``critical_points``)."""

    proven: list = field(default_factory=list)      # (point, enclosure, region), each (n, 2)
    undecided: dict = field(default_factory=dict)   # reason -> list of boxes (n, 2)
    examined: int = 0
    skipped: int = 0
    best: float = np.inf
    best_point: np.ndarray = None
    stopped: str = ""                               # "", "max_boxes" or "time_limit"


def _krawczyk(center, radius, gc, H):
    """Krawczyk enclosures ``(lo, hi)`` of shape (k, n) for boxes c +- r, from the enclosure
    of grad L at c (``gc``, Bounds of shape (k, n)) and of the Hessian on the box (``H``,
    lo/hi of shape (k, n, n)); rows whose Hessian mid-point is singular get nan. Also the
    contraction factor q = max_i sum_j |I - Y H|_ij (k,): below 1 the operator contracts,
    and for a non-degenerate zero q shrinks in proportion to the box."""
    n = center.shape[1]
    with np.errstate(all="ignore"):
        Hmid = 0.5 * (H[0] + H[1])
        Hrad = 0.5 * (H[1] - H[0])
    ok = np.isfinite(Hmid).all(axis=(1, 2)) & np.isfinite(Hrad).all(axis=(1, 2))
    Y = np.full_like(Hmid, np.nan)
    if ok.any():  # the inverse by an SVD, for mid-points not singular to 1e-13
        U, sv, Vt = np.linalg.svd(Hmid[ok])
        good = (sv[:, -1] > 1e-13 * sv[:, 0]) & (sv[:, -1] > 1e-250)
        inv = np.einsum("kji,kj,klj->kil", Vt[good], 1.0 / sv[good], U[good])
        Y[np.flatnonzero(ok)[good]] = inv
    absY = np.abs(Y)
    with np.errstate(all="ignore"):
        gmid = 0.5 * (gc.lo + gc.hi)
        grad_rad = 0.5 * (gc.hi - gc.lo)
        step = np.einsum("kij,kj->ki", Y, gmid)
        M = np.eye(n) - np.einsum("kij,kjl->kil", Y, Hmid)
        Mabs = np.abs(M) + np.einsum("kij,kjl->kil", absY, Hrad)
        rad = (np.einsum("kij,kj->ki", absY, grad_rad) + np.einsum("kij,kj->ki", Mabs, radius))
        # rounding of the float products above, generously
        rad += (n + 4) * 4 * _EPS * (np.abs(center) + np.einsum("kij,kj->ki", absY,
                                                                   np.abs(gmid))
                                     + np.einsum("kij,kj->ki", np.abs(M) + 1, radius)) \
            + np.finfo(float).tiny
        mid = center - step
        q = Mabs.sum(axis=2).max(axis=1)
    return mid - rad, mid + rad, np.where(np.isfinite(q), q, np.inf)


def _bisect(boxes, scale):
    """Split each box (k, n, 2) in two along its widest side relative to ``scale`` (n,)."""
    axis = np.argmax((boxes[:, :, 1] - boxes[:, :, 0]) / scale, axis=1)
    rows = np.arange(len(boxes))
    cut = 0.5 * (boxes[rows, axis, 0] + boxes[rows, axis, 1])
    left, right = boxes.copy(), boxes.copy()
    left[rows, axis, 1] = cut
    right[rows, axis, 0] = cut
    return np.concatenate([left, right])


def _polish(loss, X, boxes, iterations=30):
    """Newton's method on grad L = 0 from each row of X (k, n), kept inside its box."""
    X = X.copy()
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            G, H = loss.grad(X), loss.hess(X)
            ok = np.isfinite(G).all(axis=1) & np.isfinite(H).all(axis=(1, 2))
            ok &= np.abs(np.linalg.det(np.where(ok[:, None, None], H, np.eye(X.shape[1])))) > 0
            if not ok.any():
                break
            step = np.linalg.solve(H[ok], G[ok][:, :, None])[:, :, 0]
            Y = np.clip(X[ok] - step, boxes[ok, :, 0], boxes[ok, :, 1])
            moved = np.isfinite(Y).all(axis=1)
            rows = np.flatnonzero(ok)[moved]
            if not len(rows) or np.array_equal(X[rows], Y[moved]):
                break
            X[rows] = Y[moved]
    return X


class _Search:
    def __init__(self, loss, B, *, max_boxes, time_limit, resolution, kinds, global_only):
        self.loss, self.B = loss, B
        self.enc = LossEnclosure(loss)
        self.scale = B[:, 1] - B[:, 0]
        self.max_boxes, self.time_limit = max_boxes, time_limit
        self.resolution, self.kinds, self.global_only = resolution, kinds, global_only
        self.out = BoxSearch(undecided={"degenerate": [], "domain": [], "nonsmooth": [],
                                        "budget": []})
        self.widest = 0.0   # the widest enclosure of a proven point so far (for de-duplication)
        rows, cols = self.enc.hessian_index
        self._diag = np.flatnonzero(rows == cols)
        self._hess_index = (rows, cols)

    def _hessian(self, boxes):
        b = self.enc("hessian", boxes)
        n, k = self.loss.n, len(boxes)
        lo, hi = np.empty((k, n, n)), np.empty((k, n, n))
        rows, cols = self._hess_index
        lo[:, rows, cols] = lo[:, cols, rows] = b.lo
        hi[:, rows, cols] = hi[:, cols, rows] = b.hi
        return lo, hi, b.partly.any(axis=1) | b.jump.any(axis=1), b

    def _kind_possible(self, hb):
        """Whether the Hessian diagonal allows a point of one of the requested kinds."""
        if self.kinds is None or "degenerate" in self.kinds or "saddle" in self.kinds:
            return np.ones(len(hb.lo), bool)
        dlo, dhi = hb.lo[:, self._diag], hb.hi[:, self._diag]
        ok = np.zeros(len(dlo), bool)
        if "minimum" in self.kinds:
            ok |= np.all(dhi >= 0, axis=1)
        if "maximum" in self.kinds:
            ok |= np.all(dlo <= 0, axis=1)
        return ok

    def run(self):
        out = self.out
        # per box: priority (lower bound of L) and state (the parent's q, and how many
        # splits in a row below the resolution made no progress)
        active, prio, qs = self.B[None].copy(), np.array([-np.inf]), np.array([[np.inf, 0.0]])
        start = time.perf_counter()
        while len(active):
            if out.examined >= self.max_boxes:
                out.stopped = "max_boxes"
                break
            if self.time_limit is not None and time.perf_counter() - start > self.time_limit:
                out.stopped = "time_limit"
                break
            # the best quarter of the queue (at least 32, at most _BATCH): deep enough
            # that the lowest boxes are refined first, wide enough to stay vectorized
            take = min(len(active), _BATCH, max(32, len(active) // 4),
                       self.max_boxes - out.examined)
            order = np.argsort(prio, kind="stable")
            now, rest = order[:take], order[take:]
            X, q_parent = active[now], qs[now]
            active, prio, qs = active[rest], prio[rest], qs[rest]
            out.examined += take
            with np.errstate(all="ignore"):  # infinite enclosures are expected
                children, child_prio, child_q = self._examine(X, q_parent)
            active = np.concatenate([active, children])
            prio = np.concatenate([prio, child_prio])
            qs = np.concatenate([qs, child_q])
        out.undecided["budget"].extend(active)
        # undecided boxes inside a region where a unique zero was proven are accounted for
        if out.proven:
            from scipy.spatial import cKDTree
            R = np.array([r for _, _, r in out.proven])
            tree = cKDTree(R.mean(axis=2))
            reach = float(np.linalg.norm(0.5 * (R[:, :, 1] - R[:, :, 0]), axis=1).max())
            for reason, boxes in out.undecided.items():
                out.undecided[reason] = [b for b in boxes if not any(
                    np.all((R[j, :, 0] <= b[:, 0]) & (b[:, 1] <= R[j, :, 1]))
                    for j in tree.query_ball_point(b.mean(axis=1), reach * (1 + 1e-9)))]
        return out

    def _examine(self, X, q_parent):
        out, loss = self.out, self.loss
        n = loss.n
        g = self.enc("gradient", X)
        v = self.enc("value", X)
        nowhere = g.nowhere.any(axis=1) | v.nowhere[:, 0]
        out.skipped += int(nowhere.sum())
        alive = ~nowhere & ~np.any((g.lo > 0) | (g.hi < 0), axis=1)
        center = X.mean(axis=2)
        with np.errstate(all="ignore"):
            fc = loss.value(center)
        finite = np.isfinite(fc)
        if finite.any():
            i = int(np.argmin(np.where(finite, fc, np.inf)))
            if fc[i] < out.best:
                out.best, out.best_point = float(fc[i]), center[i].copy()
        if self.global_only:
            alive &= v.lo[:, 0] <= out.best + 1e-12 * (1 + abs(out.best))
        X, center, g, vlo = X[alive], center[alive], _rows(g, alive), v.lo[alive, 0]
        q_parent = q_parent[alive]
        if not len(X):
            return np.empty((0, n, 2)), np.empty(0), np.empty((0, 2))
        radius = 0.5 * (X[:, :, 1] - X[:, :, 0])
        # inflate by 1/16 of the box's largest relative side in every direction, so that a
        # zero on a face (or a thin box after contraction) still lies well inside
        rel = np.max(radius / self.scale, axis=1, keepdims=True)
        inflated = radius + rel * self.scale / 16 + 4 * _EPS * np.abs(center)
        Xi = np.stack([center - inflated, center + inflated], axis=-1)
        Hlo, Hhi, hbad, hb = self._hessian(Xi)
        keep = self._kind_possible(hb)
        X, center, inflated, Xi, Hlo, Hhi, hbad, vlo, q_parent = (
            a[keep] for a in (X, center, inflated, Xi, Hlo, Hhi, hbad, vlo, q_parent))
        g = _rows(g, keep)
        gc = self.enc("gradient", center)
        usable = ~hbad & ~g.jump.any(axis=1) & ~gc.partly.any(axis=1)
        klo, khi, q = _krawczyk(center, inflated, gc, (Hlo, Hhi))
        klo[~usable], khi[~usable], q[~usable] = np.nan, np.nan, np.inf
        inside = np.all((klo > Xi[:, :, 0]) & (khi < Xi[:, :, 1]), axis=1)
        disjoint = np.any((klo > Xi[:, :, 1]) | (khi < Xi[:, :, 0]), axis=1)
        if inside.any():
            self.prove(Xi[inside], klo[inside], khi[inside])
        rest = ~inside & ~disjoint
        # the gradient at the centre is far from 0 compared with its enclosure's width: the
        # box holds no zero, and smaller boxes will show it
        lead = np.any(np.abs(0.5 * (gc.lo + gc.hi)) > 0.25 * (g.hi - g.lo), axis=1)
        X, vlo, g, hbad, q, lead = (X[rest], vlo[rest], _rows(g, rest), hbad[rest], q[rest],
                                    lead[rest])
        q_parent = q_parent[rest]
        lo, hi = klo[rest], khi[rest]
        before = np.max((X[:, :, 1] - X[:, :, 0]) / self.scale, axis=1)
        shrunk = np.where(np.isfinite(lo), np.maximum(X[:, :, 0], lo), X[:, :, 0])
        X = np.stack([shrunk, np.where(np.isfinite(hi), np.minimum(X[:, :, 1], hi),
                                       X[:, :, 1])], axis=-1)
        width = np.max((X[:, :, 1] - X[:, :, 0]) / self.scale, axis=1)
        # a box that K shrank by a tenth or more is examined again as it is
        again = width < 0.9 * before
        redo, redo_vlo, redo_q = X[again], vlo[again], q_parent[again]
        X, vlo, g, hbad, q, q_parent, width, lead = (
            X[~again], vlo[~again], _rows(g, ~again), hbad[~again], q[~again],
            q_parent[~again], width[~again], lead[~again])
        # below the resolution boxes are split on, down to resolution / 1000, while they make
        # progress: q falling with the width (a well-conditioned zero that needs a smaller
        # box; at a degenerate zero q stays put), or a gradient far from 0 (the state keeps
        # a count of splits without progress, for a more patient rule)
        progress = (np.isfinite(q) & (q <= 0.9 * q_parent[:, 0])) | lead
        stuck = np.where(progress, 0.0, q_parent[:, 1] + 1)
        small = (width <= self.resolution) & ((stuck > 0) | (width <= self.resolution * 1e-3))
        if small.any():  # a last look at the boxes K shrank: does grad L now exclude 0?
            last = self.enc("gradient", X[small])
            clear = np.zeros(len(X), bool)
            clear[small] = np.any((last.lo > 0) | (last.hi < 0), axis=1)
            X, vlo, q, g, hbad, small, stuck = (
                X[~clear], vlo[~clear], q[~clear], _rows(g, ~clear), hbad[~clear],
                small[~clear], stuck[~clear])
        for i in np.flatnonzero(small):
            if g.jump[i].any():
                reason = "nonsmooth"
            elif g.partly[i].any() or hbad[i]:
                reason = "domain"
            else:
                reason = "degenerate"
            out.undecided[reason].append(X[i])
        X, vlo = X[~small], vlo[~small]
        state = np.column_stack([q[~small], stuck[~small]])
        return (np.concatenate([_bisect(X, self.scale), redo]),
                np.concatenate([vlo, vlo, redo_vlo]), np.concatenate([state, state, redo_q]))

    def prove(self, boxes, lo, hi):
        """Record the unique critical point in each of ``boxes`` (k, n, 2), proven because
        its Krawczyk image [lo, hi] (k, n) lies inside it: the enclosures are tightened by
        X <- K(X) cap X, the points polished by Newton's method inside them, and points
        already recorded (a zero on a face, proven from both sides) dropped."""
        regions = boxes.copy()
        for _ in range(6):
            boxes = np.stack([np.maximum(boxes[:, :, 0], lo), np.minimum(boxes[:, :, 1], hi)],
                             axis=-1)
            c = boxes.mean(axis=2)
            r = 0.5 * (boxes[:, :, 1] - boxes[:, :, 0])
            Hlo, Hhi, bad, _ = self._hessian(boxes)
            nlo, nhi, _ = _krawczyk(c, r, self.enc("gradient", c), (Hlo, Hhi))
            ok = ~bad & np.all((nlo >= boxes[:, :, 0]) & (nhi <= boxes[:, :, 1]), axis=1)
            lo, hi = np.where(ok[:, None], nlo, lo), np.where(ok[:, None], nhi, hi)
        boxes = np.stack([np.maximum(boxes[:, :, 0], lo), np.minimum(boxes[:, :, 1], hi)],
                         axis=-1)
        points = _polish(self.loss, boxes.mean(axis=2), boxes)
        # a point inside another's enclosure (or holding another in its own) is that point
        from scipy.spatial import cKDTree
        known = [p for p, _, _ in self.out.proven]
        width = max([float(np.max(b[:, 1] - b[:, 0])) for b in boxes] +
                    [float(np.max(e[:, 1] - e[:, 0])) for _, e, _ in self.out.proven[-1:]])
        self.widest = max(self.widest, width)
        radius = 2 * self.widest + 1e-300
        tree = cKDTree(np.array(known)) if known else None
        twins = {}
        for i, j in cKDTree(points).query_pairs(radius):
            twins.setdefault(j, []).append(i)
        fresh, kept = [], set()
        for k, (x, box, region) in enumerate(zip(points, boxes, regions)):
            near = [self.out.proven[j] for j in tree.query_ball_point(x, radius)] if tree \
                else []
            near += [(points[i], boxes[i], None) for i in twins.get(k, ()) if i in kept]
            if any(np.all((e[:, 0] <= x) & (x <= e[:, 1])) or
                   np.all((box[:, 0] <= p) & (p <= box[:, 1])) for p, e, _ in near):
                continue
            kept.add(k)
            fresh.append((x, box, region))
        self.out.proven.extend(fresh)

    def verify(self, x, relative=1e-6):
        """Prove a candidate ``x`` (n,) with one Krawczyk test on a small box around it;
        True when it was proven (and recorded)."""
        r = relative * self.scale + 1e-9 * np.abs(x)
        box = np.stack([x - r, x + r], axis=-1)
        Hlo, Hhi, bad, _ = self._hessian(box[None])
        gc = self.enc("gradient", x[None])
        if bad[0] or gc.partly.any() or gc.jump.any():
            return False
        lo, hi, _ = _krawczyk(x[None], r[None], gc, (Hlo, Hhi))
        if np.all((lo[0] > box[:, 0]) & (hi[0] < box[:, 1])):
            self.prove(box[None], lo, hi)
            return True
        return False


def _rows(b, keep):
    return type(b)(*(a[keep] for a in b))


def box_search(loss, B, *, max_boxes=200_000, time_limit=60.0, resolution=1e-3, kinds=None,
               global_only=False):
    """Run the complete search on the box ``B`` (n, 2); see the module docstring."""
    return _Search(loss, B, max_boxes=max_boxes, time_limit=time_limit,
                   resolution=resolution, kinds=kinds, global_only=global_only).run()


def verify_points(loss, B, points):
    """Prove each candidate of ``points`` (k, n) by a Krawczyk test on a small box; the
    :class:`BoxSearch` holds those proven (a search of nothing else)."""
    search = _Search(loss, B, max_boxes=0, time_limit=None, resolution=1e-4, kinds=None,
                     global_only=False)
    for x in points:
        with np.errstate(all="ignore"):
            search.verify(np.asarray(x, dtype=float))
    return search.out


def clusters(boxes):
    """Group touching boxes: labels (k,) of the connected components of boxes (k, n, 2)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree
    boxes = np.asarray(boxes, dtype=float)
    k = len(boxes)
    if k < 2:
        return np.zeros(k, int)
    centers = boxes.mean(axis=2)
    half = 0.5 * (boxes[:, :, 1] - boxes[:, :, 0])
    reach = 2.0 * float(np.linalg.norm(half, axis=1).max()) * (1 + 1e-9)
    pairs = cKDTree(centers).query_pairs(reach, output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        slack = 1e-9 * (np.abs(boxes[i]).max(axis=(1, 2)) + 1)[:, None]
        touch = np.all((boxes[i, :, 0] <= boxes[j, :, 1] + slack) &
                       (boxes[j, :, 0] <= boxes[i, :, 1] + slack), axis=1)
        i, j = i[touch], j[touch]
    else:
        i = j = np.empty(0, int)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(k, k))
    return connected_components(graph, directed=False)[1]
