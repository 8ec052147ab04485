r"""Geometry for mirror and natural-gradient methods: a potential psi, or a metric G(x).

A potential is a formula in the loss's variables, compiled through the same gate as a loss
(:class:`~flowsim.Loss`): its gradient is the mirror map :math:`\nabla\psi`, its Hessian the
metric of the mirror flow. The inverse mirror map :math:`(\nabla\psi)^{-1}` is taken in closed
form when psi is separable and sympy solves :math:`\partial_i\psi(x_i) = y_i` for one real
branch that passes the gate (``sum(x*log(x))`` gives :math:`x_i = e^{y_i - 1}`); otherwise it
is Newton's method on :math:`\nabla\psi(x) = y` with the exact Hessian, started at the
current iterate.

Named potential ``"simplex"`` (:class:`SimplexEntropy`): the negative entropy on the
probability simplex, any n. Its mirror step is exponentiated gradient,
:math:`x_{k+1} \propto x_k e^{-\eta\nabla L(x_k)}`, and its flow the replicator equation
:math:`\dot x = -(\mathrm{diag}(x) - x x^T)\nabla L(x)`; both stay on the simplex exactly
(the orthant entropy ``sum(x*log(x))`` has no normalization and leaves it).

Every geometry offers ``direction(X, G)``, the preconditioned gradient the flow follows
(:math:`\dot x = -\,\mathrm{direction}(x, \nabla L)`), and ``check_at(X)``, which refuses
starts where it is not defined.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from .loss._audit import lambdify_audited

__all__ = ["Potential", "Metric", "SimplexEntropy", "Euclidean", "NAMED_POTENTIALS",
           "potential_of"]


def _lowest_eigenvalues(M):
    """The lowest eigenvalue of each symmetric part of M (m, n, n); -inf where M is not
    finite."""
    M = np.asarray(M, dtype=float)
    ok = np.all(np.isfinite(M), axis=(-2, -1))
    lowest = np.full(len(M), -np.inf)
    if ok.any():
        lowest[ok] = np.linalg.eigvalsh((M[ok] + np.swapaxes(M[ok], -1, -2)) / 2)[:, 0]
    return lowest


def _solve_rows(M, G):
    """M^{-1} g per row for M (m, n, n) and G (m, n); rows where M is singular are NaN."""
    out = np.full(G.shape, np.nan)
    with np.errstate(all="ignore"):
        ok = np.all(np.isfinite(M), axis=(-2, -1)) & (np.abs(np.linalg.det(M)) > 0)
        if ok.any():
            out[ok] = np.linalg.solve(M[ok], G[ok][..., None])[..., 0]
    return out


class Potential:
    """A mirror potential psi over a loss's variables.

    ``direction``, ``check_at`` and ``local_rates`` are its geometry (see the module
    docstring); ``local_rates(x, H)`` are the eigenvalues of Hess psi(x)^{-1} H, the rates
    of the mirror flow near a critical point x.

    Parameters
    ----------
    loss : Loss
        Gives the variables (by name).
    formula : str or sympy.Expr
        psi, e.g. ``"x*log(x) + y*log(y)"`` (negative entropy) or ``"(x**2 + y**2)/2"``.
    """

    name = "mirror"
    spectrum = "eigenvalues of Hess(psi)^-1 H"
    descent_label = "mirror descent"

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
        self._inverse_exprs = self._jax = None
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
            inverse = lambdify_audited(ys, parts, "numpy")
        except ValueError:
            return None   # a branch the audit does not pass: Newton instead
        self._inverse_exprs = (ys, parts)
        return inverse

    def mirror_update(self, X, G, eta, xp=np):
        """The mirror step: x' with grad psi(x') = grad psi(X) - eta G. On numpy X, G are
        rows (m, n) (Newton where the inverse has no closed form; rows it cannot solve are
        nan); on JAX one point (n,), for a closed-form inverse only (the same formulas,
        printed to JAX and audited)."""
        if xp is np:
            return self.inverse(self.grad(X) - eta * G, X)
        grad_psi, inverse = self._jax_maps()
        Y = grad_psi(*[X[i] for i in range(self.n)])
        Y = [y - eta * G[i] for i, y in enumerate(Y)]
        return xp.stack([xp.asarray(c, dtype=xp.float64) + 0 * Y[i]
                         for i, c in enumerate(inverse(*Y))])

    def _jax_maps(self):
        """grad psi and its closed-form inverse as JAX functions of the coordinates."""
        if self._jax is None:
            ys, parts = self._inverse_exprs
            self._jax = (lambdify_audited(list(self.psi.variables),
                                          list(self.psi.gradient_expr), "jax"),
                         lambdify_audited(ys, parts, "jax"))
        return self._jax

    @property
    def closed_form(self):
        """Whether the inverse mirror map is in closed form (else Newton)."""
        return self._inverse is not None

    def check_at(self, X, what="x0"):
        """Refuse starts ``X`` (m, n) where psi's Hessian is not finite and positive definite
        (there the mirror map is not invertible: a constant or linear psi, for one)."""
        with np.errstate(all="ignore"):
            lowest = _lowest_eigenvalues(self.hess(np.atleast_2d(X)))
        if not np.all(lowest > 0):
            raise ValueError(f"potential: its Hessian is not positive definite at {what} "
                             f"(lowest eigenvalue {lowest.min():.3g}), so the mirror map "
                             "cannot be inverted there; use a strictly convex potential, e.g. "
                             "sum(x*log(x)) on x > 0 or |x|^2/2.")

    def direction(self, X, G):
        """Hess psi(X)^{-1} G for X, G (m, n): the mirror flow's direction."""
        return _solve_rows(self.hess(X), G)

    def local_rates(self, x, H):
        """Eigenvalues of Hess psi(x)^{-1} H, ascending (see :func:`local_rates`)."""
        return _generalized(H, self.hess(np.asarray(x, dtype=float)[None])[0])

    def bregman_step(self, loss, X, eta, iterations):
        """The implicit step grad psi(y) + eta grad L(y) = grad psi(x) by Newton's method
        with the Jacobian Hess psi + eta H, from x; ``(Y, solved)``, shape (m, n) and (m,)
        (solved: residual within 1e-10 relative)."""
        target = self.grad(X)
        Y = X.copy()
        with np.errstate(all="ignore"):
            for _ in range(iterations):
                R = self.grad(Y) + eta * loss.grad(Y) - target
                dY = np.linalg.solve(self.hess(Y) + eta * loss.hess(Y), R[..., None])[..., 0]
                Y = Y - dY
                if np.all(np.abs(dY) <= 1e-15 * (1 + np.abs(Y))):
                    break
            R = self.grad(Y) + eta * loss.grad(Y) - target
        return Y, np.all(np.abs(R) <= 1e-10 * (1 + np.abs(target)), axis=1)

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

    name = "natural gradient"
    spectrum = "eigenvalues of G^-1 H"

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
        self._jax = None

    def direction(self, X, G):
        """G(X)^{-1} grad for X, grad (m, n): the natural gradient."""
        return _solve_rows(self(X), G)

    def local_rates(self, x, H):
        """Eigenvalues of G(x)^{-1} H, ascending (see :func:`local_rates`)."""
        return _generalized(H, self(np.asarray(x, dtype=float)[None])[0])

    def check_at(self, X, what="x0"):
        """Refuse starts where G is not finite and positive definite."""
        with np.errstate(all="ignore"):
            lowest = _lowest_eigenvalues(self(np.atleast_2d(X)))
        if not np.all(lowest > 0):
            raise ValueError(f"{what}: the metric is not positive definite there; choose a "
                             "start where it is (inside the potential's domain).")

    def __call__(self, X):
        """G at X (m, n): shape (m, n, n)."""
        return np.stack([np.stack([e.value(X) * np.ones(X.shape[:-1]) for e in r], axis=-1)
                         for r in self.entries], axis=-2)

    def matrix(self, X, xp=np):
        """G at X over ``xp``: rows (m, n) -> (m, n, n) on numpy, one point (n,) -> (n, n) on
        JAX (the entries printed to JAX and audited)."""
        if xp is np:
            return self(X)
        if self._jax is None:
            variables = list(self.entries[0][0].variables)
            self._jax = lambdify_audited(variables, [e.expr for r in self.entries for e in r],
                                         "jax")
        flat = self._jax(*[X[i] for i in range(self.n)])
        return xp.stack([xp.asarray(v, dtype=xp.float64) + 0 * X[0]
                         for v in flat]).reshape(self.n, self.n)


def _generalized(H, G):
    """Eigenvalues mu of H v = mu G v for symmetric H and positive definite G, ascending (nan
    where G is not positive definite there)."""
    import scipy.linalg
    G = (np.asarray(G, dtype=float) + np.asarray(G, dtype=float).T) / 2
    try:
        return scipy.linalg.eigh((H + H.T) / 2, G, eigvals_only=True)
    except (np.linalg.LinAlgError, ValueError):
        return np.full(H.shape[0], np.nan)


class Euclidean:
    """The Euclidean geometry (psi = |x|^2/2, G = I): the direction is the gradient."""

    name = "gradient"
    spectrum = "Hessian eigenvalues"

    def __init__(self, n):
        self.n = n

    def direction(self, X, G):
        """G itself."""
        return G

    def check_at(self, X, what="x0"):
        """Every start is allowed."""

    def local_rates(self, x, H):
        """The Hessian's eigenvalues, ascending."""
        return np.linalg.eigvalsh(H)


class SimplexEntropy:
    r"""The negative entropy :math:`\psi(x) = \sum_i x_i \log x_i` on the probability simplex
    :math:`\{x : x_i > 0, \sum_i x_i = 1\}`, in any number of variables.

    Mirror descent with it is exponentiated gradient,

    .. math:: x_{k+1,i} = \frac{x_{k,i}\, e^{-\eta g_i}}{\sum_j x_{k,j}\, e^{-\eta g_j}},
              \qquad g = \nabla L(x_k),

    (computed in log space, so no underflow), and its flow the replicator equation
    :math:`\dot x_i = -x_i (g_i - x \cdot g)`. On a linear loss c.x both are in closed form:
    :math:`x \propto x_0 e^{-\eta k c}` and :math:`x(t) \propto x_0 e^{-c t}`.
    """

    name = "mirror (simplex entropy)"
    spectrum = "eigenvalues of (diag x - x x^T) H on the simplex"
    descent_label = "exponentiated gradient (simplex)"
    closed_form = True

    def __init__(self, loss):
        self.n = loss.n

    def check_at(self, X, what="x0"):
        """Refuse points off the simplex (a non-positive entry, or a sum not 1)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        sums = X.sum(axis=-1)
        if not np.all(X > 0):
            raise ValueError(f"{what}: potential='simplex' needs positive entries (a point "
                             "inside the probability simplex), got a zero or negative entry.")
        if not np.all(np.abs(sums - 1) <= 1e-12 * self.n):
            worst = float(sums[np.argmax(np.abs(sums - 1))])
            raise ValueError(f"{what}: potential='simplex' needs entries summing to 1, got "
                             f"{worst:.17g}; divide the start by its sum.")

    def grad(self, X):
        """The mirror map log x (up to the constant 1, which the simplex absorbs)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(X)

    def hess(self, X):
        """diag(1 / x), shape (..., n, n)."""
        with np.errstate(divide="ignore"):
            return np.eye(self.n) / np.asarray(X)[..., None, :]

    def inverse(self, Y, guess=None, xp=np):
        """The point of the simplex with log x = Y + c: softmax(Y) per row, over ``xp``."""
        with np.errstate(invalid="ignore", over="ignore"):
            Z = xp.exp(Y - xp.max(Y, axis=-1, keepdims=True))
            return Z / xp.sum(Z, axis=-1, keepdims=True)

    def mirror_update(self, X, G, eta, xp=np):
        """Exponentiated gradient X e^{-eta G} / sum, in log space, over ``xp`` (rows on
        numpy, one point on JAX)."""
        return self.inverse(xp.log(X) - eta * G, xp=xp)

    def local_rates(self, x, H):
        """Eigenvalues of (diag x - x x^T) H on the simplex's tangent space (n - 1 of
        them, ascending): with Q an orthonormal basis of {v : sum v = 0}, those of the pencil
        (Q^T H Q, (Q^T P Q)^{-1})."""
        x = np.asarray(x, dtype=float)
        n = x.size
        Q = np.linalg.qr(np.eye(n) - 1.0 / n)[0][:, :n - 1]   # spans {sum v = 0}
        P = np.diag(x) - np.outer(x, x)
        return _generalized(Q.T @ H @ Q, np.linalg.inv(Q.T @ P @ Q))

    def direction(self, X, G):
        """(diag(x) - x x^T) g: the replicator direction, tangent to the simplex."""
        return X * (G - np.sum(X * G, axis=-1, keepdims=True))

    def bregman_step(self, loss, X, eta, iterations):
        r"""The implicit step :math:`\log y + \eta\nabla L(y) = \log x + c`, sum y = 1 (c the
        multiplier of the constraint), by Newton's method on (y, c) with the bordered
        Jacobian [[diag(1/y) + eta H, -1], [1^T, 0]], kept inside the simplex; returns
        ``(Y, solved)``, shape (m, n) and (m,) (solved: residual within 1e-10)."""
        m, n = X.shape
        Y, c = X.copy(), np.zeros(m)
        target = np.log(X)
        ones = np.ones((m, n, 1))
        border = np.concatenate([np.ones((m, 1, n)), np.zeros((m, 1, 1))], axis=2)
        with np.errstate(all="ignore"):
            for _ in range(iterations):
                R = np.log(Y) + eta * loss.grad(Y) - target - c[:, None]
                J = np.concatenate([np.concatenate([self.hess(Y) + eta * loss.hess(Y), -ones],
                                                   axis=2), border], axis=1)
                rhs = np.concatenate([R, (Y.sum(axis=1) - 1)[:, None]], axis=1)
                d = _solve_rows(J, rhs)
                dY = d[:, :n]
                # fraction to the boundary: y stays positive
                shrink = np.where(dY > 0, 0.9 * Y / np.where(dY > 0, dY, 1), np.inf).min(axis=1)
                t = np.minimum(1.0, shrink)[:, None]
                Y, c = Y - t * dY, c - t[:, 0] * d[:, n]
                if np.all(np.abs(t * dY) <= 1e-15 * Y):
                    break
            R = np.log(Y) + eta * loss.grad(Y) - target - c[:, None]
            residual = np.abs(R).max(axis=1) + np.abs(Y.sum(axis=1) - 1)
        return Y, residual <= 1e-10


#: The potentials offered by name, and what each is.
NAMED_POTENTIALS = {
    "simplex": "negative entropy on the probability simplex, any n: exponentiated gradient "
               "and the replicator flow",
}


def potential_of(loss, potential):
    """The geometry of a mirror scheme's ``potential=``: a :class:`SimplexEntropy` for
    ``"simplex"``, a :class:`Potential` for a formula, and for None the Potential |x|^2/2
    (the schemes need its mirror map; flows take :class:`Euclidean` instead)."""
    if isinstance(potential, (Potential, SimplexEntropy)):
        return potential
    if isinstance(potential, str) and potential.strip() in NAMED_POTENTIALS:
        return SimplexEntropy(loss)
    if potential is None:
        return Potential(loss, " + ".join(f"{v.name}**2/2" for v in loss.variables))
    return Potential(loss, potential)
