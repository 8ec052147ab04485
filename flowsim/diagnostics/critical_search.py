"""The three strategies of :func:`critical_points`, each ending in a CriticalPointSet."""
from __future__ import annotations

import time

import numpy as np

from ._box_search import _bisect, box_search, clusters, verify_points
from ..facts import kind_of_spectrum
from .critical import CriticalPoint, _newton_candidates, _symbolic_candidates, polished
from .critical_set import CriticalPointSet, UndecidedRegion

__all__ = ["run_search"]

#: A cluster of undecided "degenerate" boxes at most this many boxes across (in every
#: direction) is taken for one degenerate critical point; a larger one is a non-isolated set.
POINT_CLUSTER = 8


def _classified(loss, points, tol, proven=False, enclosures=None):
    """CriticalPoints for ``points`` (k, n), classified in one batch (as :func:`classify`);
    points where the Hessian is not finite are left out."""
    if not len(points):
        return []
    X = np.asarray(points, dtype=float).reshape(len(points), loss.n)
    with np.errstate(all="ignore"):
        H, G, V = loss.hess(X), loss.grad(X), loss.value(X)
    ok = np.flatnonzero(np.isfinite(H).all(axis=(1, 2)))
    lam, vecs = np.linalg.eigh(H[ok])
    out = []
    for row, i in enumerate(ok):
        scale = max(1.0, float(np.abs(lam[row]).max()))
        out.append(CriticalPoint(X[i].copy(), float(V[i]), float(np.linalg.norm(G[i])),
                                 lam[row], vecs[row], kind_of_spectrum(lam[row], tol),
                                 int(np.sum(lam[row] < -tol * scale)), tol, bool(proven),
                                 None if enclosures is None else enclosures[i]))
    return out


def _regions(boxes, reason, B):
    """Undecided boxes grouped into connected regions: (UndecidedRegion, boxes, small)
    triples; ``small``: at most POINT_CLUSTER boxes across, so one point stands for it."""
    if not len(boxes):
        return []
    boxes = np.asarray(boxes)
    # unexamined boxes come in every size: one region, their hull
    labels = np.zeros(len(boxes), int) if reason == "budget" else clusters(boxes)
    out = []
    for label in np.unique(labels):
        group = boxes[labels == label]
        hull = np.stack([group[:, :, 0].min(axis=0), group[:, :, 1].max(axis=0)], axis=-1)
        side = (group[:, :, 1] - group[:, :, 0]).max(axis=0)
        small = np.all((hull[:, 1] - hull[:, 0]) / np.maximum(side, 1e-300) <= POINT_CLUSTER)
        name = reason
        if reason == "degenerate":
            name = "degenerate point" if small else "non-isolated"
        out.append((UndecidedRegion(hull, len(group), name), group, small))
    return out


def _with_representative(loss, region, group):
    """``region`` (a non-isolated set) with a representative critical point, its value and
    Hessian eigenvalues: least squares on grad L from the box centre of smallest |grad L|,
    kept inside the region's hull."""
    import dataclasses

    import scipy.optimize
    centres = group.mean(axis=2)
    with np.errstate(all="ignore"), loss.uncounted():
        norms = np.linalg.norm(loss.grad(centres), axis=1)
        if not np.isfinite(norms).any():
            return region
        x = centres[np.nanargmin(np.where(np.isfinite(norms), norms, np.nan))]
        lo, hi = region.bounds[:, 0], region.bounds[:, 1]
        fit = scipy.optimize.least_squares(
            loss.grad, x, jac=loss.hess, bounds=(lo, hi + (hi <= lo) * 1e-300),
            xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=200)
        if np.linalg.norm(loss.grad(fit.x)) < np.linalg.norm(loss.grad(x)):
            x = fit.x
        value, lam = float(loss.value(x)), np.linalg.eigvalsh(loss.hess(x))
    return dataclasses.replace(region, point=x, value=value, eigenvalues=lam)


def _lowest(loss, x0, hull):
    """The lowest point of L in ``hull`` near x0 (Nelder-Mead: L may have a kink there)."""
    import scipy.optimize

    def f(x):
        with np.errstate(all="ignore"):
            v = float(loss.value(x))
        return v if np.isfinite(v) else np.inf
    res = scipy.optimize.minimize(f, x0, method="Nelder-Mead", bounds=hull,
                                  options={"xatol": 1e-13, "fatol": 1e-15, "maxiter": 4000})
    return res.x if f(res.x) <= f(x0) else x0


def _message(status, search, regions, n_points):
    if status == "budget":
        left = sum(r.n_boxes for r in regions if r.reason == "budget")
        why = "max_boxes" if search.stopped == "max_boxes" else "time_limit"
        return (f"the budget ({why}) was spent after {search.examined} boxes with {left} "
                "boxes unexamined; the points listed are those found so far (unproven ones "
                "from Newton's method in the unexamined part); raise max_boxes= or "
                "time_limit=, or narrow the box.")
    counts = {}
    for r in regions:
        counts[r.reason] = counts.get(r.reason, 0) + 1
    if status == "proven":
        text = f"the whole box was examined ({search.examined} boxes); all {n_points} points "\
               "are proven unique in their enclosures"
    else:
        parts = ", ".join(f"{v} {k}" for k, v in counts.items())
        text = (f"the whole box was examined ({search.examined} boxes); undecided regions "
                f"({parts}) are listed in .undecided")
    return text + "."


def _interval(loss, B, kinds, global_only, max_boxes, time_limit, resolution, n_starts,
              seed, tol, margin):
    search = box_search(loss, B, max_boxes=max_boxes, time_limit=time_limit,
                        resolution=resolution, kinds=kinds, global_only=global_only)
    points = _classified(loss, [x for x, _, _ in search.proven], tol, True,
                         [box for _, box, _ in search.proven])
    found = [p.point for p in points]
    regions = []
    small_clusters = len(search.undecided["degenerate"])  # at most this many clusters
    for reason, boxes in search.undecided.items():
        for region, group, small in _regions(boxes, reason, B):
            if region.reason == "non-isolated":
                region = _with_representative(loss, region, group)
            regions.append(region)
            if not small or reason == "budget":
                continue
            if reason == "degenerate" and small_clusters <= 200:
                # a second, local search of the small cluster resolves most: a zero that
                # needed smaller boxes than the resolution (an ill-conditioned Hessian)
                hull = np.clip(region.bounds + np.outer(region.bounds[:, 1] -
                                                        region.bounds[:, 0], [-1, 1]),
                               B[:, :1], B[:, 1:])
                sub = box_search(loss, hull, max_boxes=5000, time_limit=time_limit,
                                 resolution=resolution, kinds=kinds)
                if not sub.stopped and not any(sub.undecided.values()):
                    regions.pop()
                    # points proven twice (the hull reaches past the cluster) are one
                    keep = [(x, e) for x, e, _ in sub.proven
                            if not any(np.all((e[:, 0] <= f) & (f <= e[:, 1])) for f in found)]
                    points += _classified(loss, [x for x, _ in keep], tol, True,
                                          [e for _, e in keep])
                    found += [x for x, _ in keep]
                    continue
            if reason == "degenerate":
                new = polished(loss, [group.mean(axis=(0, 2))], B, found, margin)
            else:  # a kink or a domain edge: the lowest centre stands for it, unproven
                with np.errstate(all="ignore"):
                    values = loss.value(group.mean(axis=2))
                finite = np.isfinite(values)
                new = [_lowest(loss, group[np.argmin(np.where(finite, values, np.inf))]
                               .mean(axis=1), region.bounds)] if finite.any() else []
            points += _classified(loss, new, tol, False, [region.bounds] * len(new))
            found += list(new)
    if search.stopped:
        budget = np.array(search.undecided["budget"])
        rng = np.random.default_rng(seed)
        pick = rng.permutation(len(budget))[:n_starts]
        starts = budget[pick].mean(axis=2)
        if search.best_point is not None:
            starts = np.vstack([starts, search.best_point])
        X, _ = _newton_candidates(loss, B, len(starts), seed, starts=starts)
        points += _classified(loss, polished(loss, X, B, found, margin), tol)
    if search.stopped:
        status = "budget"
    else:
        status = "complete" if regions else "proven"
    return points, regions, status, _message(status, search, regions, len(points)), search


#: Most sub-boxes the convexity certificate splits the box into before it gives up.
CONVEX_BOXES = 64


def strictly_convex(loss, B, max_boxes=CONVEX_BOXES):
    """Whether the interval Hessian proves L strictly convex on the box ``B`` (n, 2).

    Gershgorin's theorem on the enclosure [H] of the Hessian over a box: every symmetric H in
    it has lambda_min >= min_i (lo(H_ii) - sum_{j != i} max |H_ij|); where that is > 0 on every
    sub-box (the box is halved along its widest side while it is not, up to ``max_boxes``
    boxes), the Hessian is positive definite on all of B, so L is strictly convex there and
    has at most one critical point in it: its minimizer.
    """
    from ..interval import LossEnclosure
    if loss.n_samples is not None and loss.n_samples * loss.n ** 2 > 2_000_000:
        return False
    enclosure = LossEnclosure(loss)
    boxes = np.asarray(B, dtype=float)[None]
    while len(boxes) <= max_boxes:
        M, diag_lo, bad = enclosure.hessian_magnitudes(boxes)
        if np.any(bad):
            return False
        margin = diag_lo - (M.sum(axis=2) - np.diagonal(M, axis1=1, axis2=2))
        undecided = ~np.all(margin > 0, axis=1)
        if not undecided.any():
            return True
        boxes = _bisect(boxes[undecided], np.ones(loss.n))   # along the widest side
    return False


def _convex_minimizer(loss, B, tol, margin, time_limit):
    """The one critical point of a loss proven strictly convex on ``B``: Newton's method with
    a backtracking line search from the box's centre, then a Krawczyk proof; ``([points],
    status, message)``."""
    x = B.mean(axis=1)
    start = time.perf_counter()
    with np.errstate(all="ignore"):
        for _ in range(200):
            g = loss.grad(x)
            if np.linalg.norm(g) <= 1e-14 * (1 + np.linalg.norm(x)) or \
                    time.perf_counter() - start > time_limit:
                break
            step = np.linalg.solve(loss.hess(x), g)
            t, f0 = 1.0, loss.value(x)
            while t > 1e-12 and not loss.value(x - t * step) <= f0:
                t /= 2
            x = x - t * step
    inside = polished(loss, [x], B, (), margin)
    if not inside:
        return [], "proven", ("the loss is strictly convex on the box (interval Hessian, "
                              "Gershgorin), so it has at most one critical point there, and it "
                              "has none: its minimum over the box lies on the boundary.")
    proof = verify_points(loss, B, inside)
    proven = [p for p, _, _ in proof.proven]
    points = _classified(loss, proven or inside, tol, bool(proven),
                         [e for _, e, _ in proof.proven] if proven else None)
    status = "proven" if proven else "complete"
    return points, status, ("the loss is strictly convex on the box (interval Hessian, "
                            "Gershgorin): its one critical point is the minimizer, " +
                            ("proven unique by a Krawczyk test." if proven else
                             "found by Newton's method (the Krawczyk test did not close)."))


def undefined_fraction(loss, B, seed, n=4096):
    """Share of the box where L is not finite, estimated on a scrambled Sobol sample."""
    from scipy.stats import qmc
    sample = qmc.Sobol(loss.n, scramble=True, seed=seed).random(n)
    with np.errstate(all="ignore"):
        values = loss.value(B[:, 0] + (B[:, 1] - B[:, 0]) * sample)
    return float(np.mean(~np.isfinite(values)))


def run_search(loss, B, method, *, kinds, global_only, max_boxes, time_limit, resolution,
               n_starts, seed, tol, margin):
    """Run ``method`` ("interval", "symbolic" or "newton") and assemble the result."""
    start = time.perf_counter()
    regions, examined, skipped = [], 0, 0
    if method == "convex" and not strictly_convex(loss, B):
        raise ValueError("method='convex': the interval Hessian does not prove the loss "
                         "strictly convex on this box; use method='newton' or 'interval'.")
    if method == "convex":
        points, status, message = _convex_minimizer(loss, B, tol, margin,
                                                    time_limit or np.inf)
        examined = 1
    elif method == "interval":
        points, regions, status, message, search = _interval(
            loss, B, kinds, global_only, max_boxes, time_limit, resolution, n_starts, seed,
            tol, margin)
        examined, skipped = search.examined, search.skipped
    elif method == "symbolic":
        candidates = _symbolic_candidates(loss)
        if candidates is None:
            raise ValueError("method='symbolic' needs a polynomial loss in two variables with "
                             "finitely many critical points; use method='interval'.")
        inside = polished(loss, candidates, B, (), margin)
        proof = verify_points(loss, B, inside)
        proven = [x for x, _, _ in proof.proven]
        points = _classified(loss, proven, tol, True, [b for _, b, _ in proof.proven])
        rest = polished(loss, inside, B, proven, margin)
        points += _classified(loss, rest, tol)
        status = "complete" if rest else "proven"
        message = (f"all real solutions of the gradient system (a lex Groebner basis); "
                   f"{len(proven)} of {len(inside)} proven unique by a Krawczyk test.")
    else:
        X, skipped = _newton_candidates(loss, B, n_starts, seed, time_limit=time_limit)
        examined = n_starts
        points = _classified(loss, polished(loss, X, B, (), margin), tol)
        status = "sampled"
        message = (f"Newton's method from {n_starts} random starts ({skipped} drawn again "
                   "where the loss is undefined); points may be missing: use "
                   "method='interval' for a complete search.")
    fraction = undefined_fraction(loss, B, seed)
    if fraction > 0:
        message += (f" The loss is undefined on about {100 * fraction:.3g}% of the box "
                    "(skipped).")
    # the search proves points on a slightly enlarged box: keep those in the box asked for
    # (to the rounding of its bounds), so a global minimum outside it is never reported
    slack = 1e-12 * np.maximum(1.0, np.abs(B).max(axis=1))
    inside = [bool(np.all(p.point >= B[:, 0] - slack) and np.all(p.point <= B[:, 1] + slack))
              for p in points]
    outside = [p for p, ok in zip(points, inside) if not ok]
    if outside:
        points = [p for p, ok in zip(points, inside) if ok]
        message += (f" {len(outside)} point(s) found just outside the box (at "
                    f"{'; '.join(str(np.round(p.point, 6).tolist()) for p in outside[:3])}) "
                    "left out.")
    if kinds is not None:
        points = [p for p in points if p.kind.value in kinds]
    if global_only and points:
        best = min(p.value for p in points)
        points = [p for p in points if p.value <= best + 1e-9 * (1 + abs(best))]
    points = tuple(sorted(points, key=lambda c: (c.value, tuple(c.point))))
    return CriticalPointSet(points, B, method, status, message, tuple(regions), examined,
                            skipped, float(fraction), time.perf_counter() - start)
