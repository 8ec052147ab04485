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
        relative to the largest magnitude).
    morse_index : int
        Number of negative eigenvalues.
    tol : float
        The relative tolerance the kind was decided with.
    """

    point: np.ndarray
    value: float
    grad_norm: float
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    kind: PointKind
    morse_index: int
    tol: float

    def summary(self):
        """One line: kind, point, L, |grad L| and the eigenvalues."""
        return (f"{self.kind.value} at {np.round(self.point, 8).tolist()}: L = {self.value:.10g}, "
                f"|grad L| = {self.grad_norm:.2g}, eigenvalues "
                f"{np.round(self.eigenvalues, 6).tolist()} (Morse index {self.morse_index})")

    def __repr__(self):
        return (f"CriticalPoint({self.kind.value}, point={np.round(self.point, 8).tolist()}, "
                f"value={self.value:.8g}, eigenvalues={np.round(self.eigenvalues, 6).tolist()})")


def classify(loss, x, tol=ZERO_EIGENVALUE):
    """Classify ``x`` by the eigenvalues of the Hessian there.

    Parameters
    ----------
    loss : Loss or str
    x : array_like, shape (n,)
    tol : float
        An eigenvalue with |lambda| <= tol * max(1, max |lambda|) counts as zero, making
        the point degenerate.

    Returns
    -------
    CriticalPoint
        ``grad_norm`` says whether x is actually critical.

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
                         int(np.sum(lam < -tol * scale)), tol)


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


def _newton_candidates(loss, B, n_starts, seed, iterations=60):
    """Batched Newton iterations on grad L = 0 from random starts in the box."""
    rng = np.random.default_rng(seed)
    lo, hi = B[:, 0], B[:, 1]
    X = lo + (hi - lo) * rng.random((n_starts, loss.n))
    width = np.max(hi - lo)
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            G = loss.grad(X)
            H = loss.hess(X)
            # a start outside the loss's domain (non-finite G or H) is drawn again instead of
            # reaching the SVD of pinv, which fails on non-finite input
            bad = ~(np.isfinite(G).all(axis=1) & np.isfinite(H).all(axis=(1, 2)))
            if bad.any():
                X[bad] = lo + (hi - lo) * rng.random((int(bad.sum()), loss.n))
                G[bad], H[bad] = 0.0, np.eye(loss.n)
            step = np.einsum("mij,mj->mi", np.linalg.pinv(H), G)
            size = np.linalg.norm(step, axis=1, keepdims=True)
            step *= np.minimum(1.0, 0.25 * width / np.maximum(size, 1e-300))  # damped far out
            X = X - step
            X = np.where(np.isfinite(X), X, lo + (hi - lo) * rng.random(X.shape))
    return X


def critical_points(loss, bounds, *, method="auto", n_starts=400, seed=0, tol=ZERO_EIGENVALUE,
                    margin=1e-9):
    """Find the critical points of ``loss`` in a box, classified.

    Parameters
    ----------
    loss : Loss or str
    bounds : (low, high) or sequence of n pairs
        The box.
    method : {"auto", "symbolic", "newton"}
        ``symbolic``: a lex Groebner basis of the gradient system (polynomial losses in two
        variables); ``newton``: batched Newton's method on grad L = 0 from ``n_starts``
        random starts, using the compiled Hessian. ``auto`` tries symbolic, then adds
        Newton's candidates.
    n_starts, seed
        Starts of the numerical search.
    tol : float
        Relative eigenvalue tolerance for degenerate points (see :func:`classify`).
    margin : float
        Points within ``margin`` times the box width outside the box still count.

    Returns
    -------
    tuple of CriticalPoint
        Each polished by :func:`scipy.optimize.root` to |grad L| near machine precision,
        verified, de-duplicated, sorted by value.

    Examples
    --------
    >>> pts = critical_points("(x**2 - 1)**2 + y**2", (-2, 2))
    >>> [p.kind.value for p in pts]
    ['minimum', 'minimum', 'saddle']
    """
    loss = as_loss(loss)
    B = check_bounds(bounds, loss.n)
    if method not in ("auto", "symbolic", "newton"):
        raise ValueError(f"method must be 'auto', 'symbolic' or 'newton', got {method!r}.")
    n_starts = int_between(n_starts, "n_starts", 1, 1_000_000)
    seed = seed_value(seed)
    positive(tol, "tol")
    positive(margin, "margin")
    candidates = []
    if method in ("auto", "symbolic"):
        symbolic = _symbolic_candidates(loss)
        if symbolic is None and method == "symbolic":
            raise ValueError("method='symbolic' needs a polynomial loss in two variables with "
                             "finitely many critical points; use method='newton'.")
        if symbolic is not None:
            candidates.append(symbolic)
    if method == "newton" or (method == "auto"):
        candidates.append(_newton_candidates(loss, B, n_starts, seed))
    width = B[:, 1] - B[:, 0]
    found = []
    scale = 1 + np.abs(B).max()
    for x in np.concatenate(candidates):
        if not np.all(np.isfinite(x)):
            continue
        if np.any(x < B[:, 0] - 1e-3 * width) or np.any(x > B[:, 1] + 1e-3 * width):
            continue
        if any(np.linalg.norm(x - p) < 1e-7 * scale for p in found):
            continue
        with np.errstate(all="ignore"):
            sol = scipy.optimize.root(loss.grad, x, jac=loss.hess, method="hybr",
                                      options={"xtol": 1e-15})
            g = np.linalg.norm(loss.grad(sol.x))
            h = np.abs(loss.hess(sol.x)).max()
        if not np.isfinite(g) or g > 1e-9 * (1 + h * (1 + np.abs(sol.x).max())):
            continue
        y = sol.x
        if np.any(y < B[:, 0] - margin * width) or np.any(y > B[:, 1] + margin * width):
            continue
        if any(np.linalg.norm(y - p) < 1e-6 * scale for p in found):
            continue
        found.append(y)
    points = [classify(loss, p, tol) for p in found]
    return tuple(sorted(points, key=lambda c: (c.value, tuple(c.point))))
