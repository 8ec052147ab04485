"""Critical points: found in a box, polished, de-duplicated, verified and classified."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize
import sympy as sp

from .._validate import (as_loss, check_bounds, hessian_at, int_between, positive, seed_value)
from ..facts import ZERO_EIGENVALUE, PointKind, kind_of_spectrum
from ..results import Report

__all__ = ["CriticalPoint", "classify", "critical_points"]


@dataclass(frozen=True)
class CriticalPoint(Report):
    """A point classified by its Hessian.

    Attributes
    ----------
    point : ndarray, shape (n,)
    value : float
        L(point).
    grad_norm : float
        |grad L(point)| (near machine precision for a found critical point).
    eigenvalues : ndarray, shape (n,)
        Hessian eigenvalues, ascending.
    eigenvectors : ndarray, shape (n, n)
        Column i belongs to eigenvalue i.
    kind : PointKind
        minimum, maximum, saddle, or degenerate (some eigenvalue within ``tol`` of zero,
        relative to the largest magnitude): the curvature's kind, which names a critical
        point only where :attr:`is_critical`.
    morse_index : int
        Number of negative eigenvalues.
    tol : float
        The relative tolerance the kind was decided with.
    proven : bool
        Whether the point was proven to be the only critical point in ``enclosure`` (by an
        interval Krawczyk test; see :func:`critical_points`).
    enclosure : ndarray, shape (n, 2), or None
        A box holding exactly one critical point when ``proven``; for an unproven point
        found in an undecided region, that region's hull.
    """

    point: np.ndarray
    value: float
    grad_norm: float
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    kind: PointKind
    morse_index: int
    tol: float
    proven: bool = False
    enclosure: np.ndarray = None

    @property
    def is_critical(self):
        """Whether grad L vanishes here, up to rounding: |grad L| <= 1e-6 max(1, |lambda|max,
        |lambda|max |x|) (a found critical point sits near machine precision)."""
        lam = float(np.max(np.abs(self.eigenvalues))) if self.eigenvalues.size else 0.0
        scale = max(1.0, lam, lam * float(np.max(np.abs(self.point))))
        return bool(self.grad_norm <= 1e-6 * scale)

    def summary(self):
        """One line: kind, point, L, |grad L| and the eigenvalues; a point that is not
        critical says so first."""
        head = "" if self.is_critical else \
            f"NOT a critical point (|grad L| = {self.grad_norm:.3g}); its curvature is that of a "
        return (f"{head}{self.kind.value} at {np.round(self.point, 8).tolist()}: L = "
                f"{self.value:.10g}, |grad L| = {self.grad_norm:.2g}, eigenvalues "
                f"{np.round(self.eigenvalues, 6).tolist()} (Morse index {self.morse_index})"
                + (", proven" if self.proven else ""))

    def __repr__(self):
        note = "" if self.is_critical else f", NOT critical: |grad L|={self.grad_norm:.3g}"
        return (f"CriticalPoint({self.kind.value}, point={np.round(self.point, 8).tolist()}, "
                f"value={self.value:.8g}, eigenvalues={np.round(self.eigenvalues, 6).tolist()}"
                f"{note})")


def classify(loss, x, tol=ZERO_EIGENVALUE, *, proven=False, enclosure=None):
    """Classify ``x`` by the eigenvalues of the Hessian there.

    Parameters
    ----------
    loss : Loss or str
    x : array_like, shape (n,)
    tol : float
        An eigenvalue with |lambda| <= tol * max(1, max |lambda|) counts as zero, making
        the point degenerate.
    proven, enclosure
        Carried into the result (set by :func:`critical_points`).

    Returns
    -------
    CriticalPoint
        ``is_critical`` (and ``grad_norm``) says whether x is actually critical; the summary
        of a point that is not says so first.

    Raises
    ------
    ValueError
        For a point of the wrong dimension, or a Hessian that is not finite at ``x``.

    Examples
    --------
    >>> classify("x**2 - y**2", [0.0, 0.0]).kind.value
    'saddle'
    """
    loss, x, H = hessian_at(loss, x)
    tol = positive(tol, "tol")
    with np.errstate(all="ignore"):
        g = loss.grad(x)
    lam, vecs = np.linalg.eigh(H)
    kind = kind_of_spectrum(lam, tol)
    scale = max(1.0, np.abs(lam).max())
    return CriticalPoint(x, float(loss.value(x)), float(np.linalg.norm(g)), lam, vecs, kind,
                         int(np.sum(lam < -tol * scale)), tol, bool(proven), enclosure)


def _symbolic_candidates(loss, max_degree=40):
    """Real solutions of grad L = 0 for a polynomial loss in two variables, by a lex
    Groebner basis (last element univariate); None when that does not apply."""
    if loss.n != 2 or loss.params:
        return None
    x, y = loss.variables
    grads = list(loss.gradient_expr)
    try:
        if not all(g.is_polynomial(x, y) for g in grads):
            return None
        if any(sp.Poly(g, x, y).total_degree() > 6 for g in grads if g != 0):
            return None
        basis = sp.groebner([g for g in grads if g != 0], y, x, order="lex")
        if not basis.is_zero_dimensional:
            return None
        last = sp.Poly(basis.exprs[-1], x)
        if last.degree() > max_degree or last.free_symbols - {x}:
            return None
        xs = np.roots(np.array(last.all_coeffs(), dtype=float))
    except (sp.PolificationFailed, sp.GeneratorsNeeded, TypeError, ValueError):
        return None
    points = []
    for xr in xs[np.abs(xs.imag) < 1e-6 * (1 + np.abs(xs))].real:
        for e in basis.exprs[:-1]:
            py = sp.Poly(e.subs(x, float(xr)), y)
            if py.degree() >= 1:
                ys = np.roots(np.array(py.all_coeffs(), dtype=float))
                points += [(xr, yr) for yr in ys[np.abs(ys.imag) < 1e-6 * (1 + np.abs(ys))].real]
                break
    return np.array(points, dtype=float).reshape(-1, 2)


def _newton_candidates(loss, B, n_starts, seed, iterations=60, starts=None, time_limit=None):
    """Batched Newton iterations on grad L = 0 from random starts in the box (or from
    ``starts``); also the number of starts drawn again because L is undefined there. The
    iterations stop early once ``time_limit`` seconds are spent."""
    import time
    begin = time.perf_counter()
    rng = np.random.default_rng(seed)
    lo, hi = B[:, 0], B[:, 1]
    X = lo + (hi - lo) * rng.random((n_starts, loss.n)) if starts is None else starts.copy()
    redrawn = 0
    width = np.max(hi - lo)
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            if time_limit is not None and time.perf_counter() - begin > time_limit:
                break
            G = loss.grad(X)
            H = loss.hess(X)
            # a start outside the loss's domain (non-finite G or H) is drawn again instead of
            # reaching the SVD of pinv, which fails on non-finite input
            bad = ~(np.isfinite(G).all(axis=1) & np.isfinite(H).all(axis=(1, 2)))
            if bad.any():
                redrawn += int(bad.sum())
                X[bad] = lo + (hi - lo) * rng.random((int(bad.sum()), loss.n))
                G[bad], H[bad] = 0.0, np.eye(loss.n)
            step = np.einsum("mij,mj->mi", np.linalg.pinv(H), G)
            size = np.linalg.norm(step, axis=1, keepdims=True)
            step *= np.minimum(1.0, 0.25 * width / np.maximum(size, 1e-300))  # damped far out
            X = X - step
            X = np.where(np.isfinite(X), X, lo + (hi - lo) * rng.random(X.shape))
    return X, redrawn


def polished(loss, candidates, B, found=(), margin=1e-9):
    """Candidates polished by :func:`scipy.optimize.root` to |grad L| near machine
    precision, kept when critical, inside the box (up to ``margin`` of its width) and not
    within 1e-6 (relative) of a point in ``found`` or of each other; a list of points."""
    from scipy.spatial import cKDTree
    width = B[:, 1] - B[:, 0]
    scale = 1 + np.abs(B).max()
    tree = cKDTree(np.reshape(found, (-1, B.shape[0]))) if len(found) else None
    new = []

    def seen(y, radius):
        return (tree is not None and tree.query_ball_point(y, radius)) or \
            (new and np.min(np.linalg.norm(np.array(new) - y, axis=1)) < radius)

    for x in candidates:
        if not np.all(np.isfinite(x)):
            continue
        if np.any(x < B[:, 0] - 1e-3 * width) or np.any(x > B[:, 1] + 1e-3 * width):
            continue
        if seen(x, 1e-7 * scale):
            continue
        with np.errstate(all="ignore"):
            sol = scipy.optimize.root(loss.grad, x, jac=loss.hess, method="hybr",
                                      options={"xtol": 1e-15})
            g = np.linalg.norm(loss.grad(sol.x))
            h = np.abs(loss.hess(sol.x)).max()
        if not np.isfinite(g) or not np.isfinite(h) or \
                g > 1e-9 * (1 + h * (1 + np.abs(sol.x).max())):
            continue
        y = sol.x
        if np.any(y < B[:, 0] - margin * width) or np.any(y > B[:, 1] + margin * width):
            continue
        if seen(y, 1e-6 * scale):
            continue
        new.append(y)
    return new



KINDS = ("minimum", "maximum", "saddle", "degenerate")


def critical_points(loss, bounds, *, method="auto", kinds=None, global_only=False,
                    max_boxes=200_000, time_limit=60.0, resolution=1e-3, n_starts=400,
                    seed=0, tol=ZERO_EIGENVALUE, margin=1e-9):
    r"""Find the critical points of ``loss`` in a box, classified, saying what was proven.

    Parameters
    ----------
    loss : Loss or str
    bounds : (low, high) or sequence of n pairs
        The box.
    method : {"auto", "interval", "symbolic", "newton", "convex"}
        ``interval``: the complete search (:mod:`flowsim.diagnostics._box_search`): the box
        is subdivided, boxes where an interval enclosure of grad L excludes 0 are dropped,
        and each critical point is proven unique in a small box by the Krawczyk test
        :math:`K(X) = c - Y \nabla L(c) + (I - Y H(X))(X - c) \subset \mathrm{int}\,X`,
        with Y the inverse Hessian at the centre c. ``symbolic``: a lex Groebner basis of
        the gradient system (polynomial losses in two variables; exact, so complete), each
        point then proven by one Krawczyk test. ``newton``: batched Newton's method from
        ``n_starts`` random starts, a quick look (status ``"sampled"``), within
        ``time_limit``. ``convex``: a certificate that L is strictly convex on the box (the
        interval Hessian, by Gershgorin's theorem, positive definite on it), then its one
        critical point by Newton's method and a Krawczyk proof (status ``"proven"``; refused
        where the certificate fails). ``auto``: ``interval`` up to 3 variables; beyond,
        ``convex`` where the certificate holds, else ``newton``.
    kinds : sequence of {"minimum", "maximum", "saddle", "degenerate"}, optional
        Keep only these kinds; the interval search also prunes boxes whose Hessian diagonal
        rules them out (a minimum needs H_ii >= 0 somewhere in the box).
    global_only : bool
        Only the global minimizers: branch and bound, pruning every box whose lower bound of
        L exceeds the best value seen (implies ``kinds=("minimum", "degenerate")``).
    max_boxes : int
        Budget of the interval search in boxes examined; reaching it is reported (status
        ``"budget"``), never silent.
    time_limit : float or None
        Budget in seconds (checked between batches of boxes).
    resolution : float
        Boxes whose sides are all below ``resolution`` times the search box's are not split
        further unless the Krawczyk operator is still contracting; what is left there is
        reported as undecided (a degenerate point, a non-isolated set, a domain boundary,
        a kink).
    n_starts, seed
        Starts of the Newton search (and of the unproven candidates sought in the part of
        the box a budget left unexamined).
    tol : float
        Relative eigenvalue tolerance for degenerate points (see :func:`classify`).
    margin : float
        Points within ``margin`` times the box width outside the box still count.

    Returns
    -------
    CriticalPointSet
        A sequence of :class:`CriticalPoint` sorted by value, with ``status`` (``"proven"``:
        all points listed and proven; ``"complete"``: all listed or inside an undecided
        region; ``"budget"``; ``"sampled"``), ``message``, ``undecided`` regions, and the
        counts of boxes examined and skipped (where L is undefined: never an error).

    Examples
    --------
    >>> pts = critical_points("(x**2 - 1)**2 + y**2", (-2, 2))
    >>> [p.kind.value for p in pts], pts.status
    (['minimum', 'minimum', 'saddle'], 'proven')
    """
    from .critical_search import run_search
    loss = as_loss(loss)
    B = check_bounds(bounds, loss.n)
    if method not in ("auto", "interval", "symbolic", "newton", "convex"):
        raise ValueError("method must be 'auto', 'interval', 'symbolic', 'newton' or 'convex', "
                         f"got "
                         f"{method!r}.")
    if kinds is not None:
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        unknown = [k for k in kinds if str(getattr(k, "value", k)) not in KINDS]
        if unknown or not kinds:
            raise ValueError(f"kinds must name some of {KINDS}, got {unknown or kinds!r}.")
        kinds = tuple(str(getattr(k, "value", k)) for k in kinds)
    if global_only:
        kinds = ("minimum", "degenerate")
    max_boxes = int_between(max_boxes, "max_boxes", 1, 10 ** 9)
    if time_limit is not None:
        time_limit = positive(time_limit, "time_limit")
    resolution = positive(resolution, "resolution")
    if resolution >= 1:
        raise ValueError(f"resolution must be below 1 (a share of the box), got {resolution}.")
    n_starts = int_between(n_starts, "n_starts", 1, 1_000_000)
    seed = seed_value(seed)
    positive(tol, "tol")
    positive(margin, "margin")
    if method == "auto":
        from .critical_search import strictly_convex
        method = "interval" if loss.n <= 3 else (
            "convex" if not global_only and strictly_convex(loss, B) else "newton")
    with np.errstate(all="ignore"):   # a huge box overflows distances: no warnings, a result
        return run_search(loss, B, method, kinds=kinds, global_only=bool(global_only),
                          max_boxes=max_boxes, time_limit=time_limit, resolution=resolution,
                          n_starts=n_starts, seed=seed, tol=tol, margin=margin)
