r"""Geometry for mirror and natural-gradient methods: a potential psi, or a metric G(x).

A potential is a formula in the loss's variables, compiled through the same gate as a loss
(:class:`~flowsim.Loss`): its gradient is the mirror map :math:`\nabla\psi`, its Hessian the
metric of the mirror flow. The inverse mirror map :math:`(\nabla\psi)^{-1}` is taken in closed
form when psi is separable and sympy solves :math:`\partial_i\psi(x_i) = y_i` for one real
branch that passes the gate (``sum(x*log(x))`` gives :math:`x_i = e^{y_i - 1}`); otherwise it
is Newton's method on :math:`\nabla\psi(x) = y` with the exact Hessian, started at the
current iterate.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from .loss._audit import lambdify_audited

__all__ = ["Potential", "Metric"]


class Potential:
    """A mirror potential psi over a loss's variables.

    Parameters
    ----------
    loss : Loss
        Gives the variables (by name).
    formula : str or sympy.Expr
        psi, e.g. ``"x*log(x) + y*log(y)"`` (negative entropy) or ``"(x**2 + y**2)/2"``.
    """

    def __init__(self, loss, formula):
        from .loss import Loss
        if isinstance(formula, Potential):
            formula = formula.psi.expr
        if not isinstance(formula, (str, sp.Expr)):
            raise TypeError("potential must be a formula string or a sympy expression in the "
                            f"loss's variables, got {type(formula).__name__}.")
        names = [v.name for v in loss.variables]
        self.psi = Loss(formula, names)
        self.n = loss.n
        self._inverse = self._closed_form_inverse()

    def _closed_form_inverse(self):
        xs = list(self.psi.variables)
        grads = list(self.psi.gradient_expr)
        ys = [sp.Symbol(f"y{i}", real=True) for i in range(self.n)]
        parts = []
        for i, (x, g) in enumerate(zip(xs, grads)):
            if g.free_symbols - {x}:
                return None   # not separable
            try:
                sols = sp.solve(sp.Eq(g, ys[i]), x)
            except (NotImplementedError, ValueError, TypeError):
                return None
            real = [s for s in sols if not s.has(sp.I, sp.LambertW)]
            if len(real) != 1:
                return None
            parts.append(real[0])
        try:
            return lambdify_audited(ys, parts, "numpy")
        except ValueError:
            return None   # a branch the audit does not pass: Newton instead

    @property
    def closed_form(self):
        """Whether the inverse mirror map is in closed form (else Newton)."""
        return self._inverse is not None

    def check_at(self, X, what="x0"):
        """Refuse starts ``X`` (m, n) where psi's Hessian is not finite and positive definite
        (there the mirror map is not invertible: a constant or linear psi, for one)."""
        with np.errstate(all="ignore"):
            H = np.asarray(self.hess(np.atleast_2d(X)), dtype=float)
        ok = np.all(np.isfinite(H), axis=(-2, -1))
        lowest = np.full(len(H), -np.inf)
        if ok.any():
            lowest[ok] = np.linalg.eigvalsh(H[ok])[:, 0]
        if not np.all(lowest > 0):
            raise ValueError(f"potential: its Hessian is not positive definite at {what} "
                             f"(lowest eigenvalue {lowest.min():.3g}), so the mirror map "
                             "cannot be inverted there; use a strictly convex potential, e.g. "
                             "sum(x*log(x)) on x > 0 or |x|^2/2.")

    def grad(self, X):
        """The mirror map grad psi at X (..., n)."""
        return self.psi.grad(X)

    def hess(self, X):
        """Hess psi at X (..., n, n)."""
        return self.psi.hess(X)

    def inverse(self, Y, guess, iterations=50):
        """x with grad psi(x) = Y, for Y and the starting guess of shape (m, n); rows where
        no solution was found are nan."""
        if self._inverse is not None:
            with np.errstate(all="ignore"):
                cols = self._inverse(*np.moveaxis(Y, -1, 0))
            return np.stack([np.broadcast_to(np.asarray(c, dtype=float), Y.shape[:-1])
                             for c in cols], axis=-1)
        X = guess.copy()
        with np.errstate(all="ignore"):
            for _ in range(iterations):
                R = self.psi.grad(X) - Y
                try:
                    step = np.linalg.solve(self.psi.hess(X), R[..., None])[..., 0]
                except np.linalg.LinAlgError:   # a singular Hessian at some row
                    step = np.einsum("...ij,...j->...i",
                                     np.linalg.pinv(self.psi.hess(X)), R)
                X = X - step
                if np.all(np.abs(step) <= 1e-15 * (1 + np.abs(X))):
                    break
            bad = ~np.all(np.abs(self.psi.grad(X) - Y) <= 1e-10 * (1 + np.abs(Y)), axis=-1)
        X[bad] = np.nan
        return X


class Metric:
    """A Riemannian metric G(x) given as an n x n matrix of formulas (symmetric positive
    definite where it is used), each entry gated like a loss."""

    def __init__(self, loss, matrix):
        from .loss import Loss
        rows = [list(r) for r in matrix] if not isinstance(matrix, str) else None
        if rows is None or len(rows) != loss.n or any(len(r) != loss.n for r in rows):
            raise ValueError(f"metric must be an {loss.n} x {loss.n} matrix of formulas, e.g. "
                             "[['1 + x**2', '0'], ['0', '1']].")
        names = [v.name for v in loss.variables]
        self.n = loss.n
        self.entries = [[Loss(str(e) if not isinstance(e, sp.Expr) else e, names)
                         for e in r] for r in rows]

    def __call__(self, X):
        """G at X (m, n): shape (m, n, n)."""
        return np.stack([np.stack([e.value(X) * np.ones(X.shape[:-1]) for e in r], axis=-1)
                         for r in self.entries], axis=-2)
