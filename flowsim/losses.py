"""Named test losses, each a :class:`~flowsim.Loss` carrying what is known about it.

Every loss's ``facts`` (:class:`~flowsim.facts.LossFacts`) lists critical points with their
kind, the minimum value where known, the usual search bounds, and a closed-form gradient flow
where one exists. Critical points quoted in the literature to a few digits are polished to
machine precision with :func:`scipy.optimize.root` on the compiled gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
import sympy as sp

from .loss._parse import real_symbol
from ._validate import finite, int_between, nonnegative, positive, real_array
from ._catalog import NAMED_LOSSES
from .facts import KnownPoint, LossFacts, PointKind, kind_of_spectrum
from .loss import Loss
from .prox import L1, Composite

__all__ = ["quadratic", "ill_conditioned_quadratic", "rosenbrock", "himmelblau",
           "six_hump_camel", "beale", "monkey_saddle", "saddle", "double_well",
           "least_squares", "logistic_regression", "lasso", "Composite", "NAMED",
           "QuadraticFlow"]

#: Largest n of the losses built from a dense matrix (quadratic, ill-conditioned quadratic).
MAX_DENSE = 2000

MIN, MAX, SADDLE, DEGEN = (PointKind.MINIMUM, PointKind.MAXIMUM, PointKind.SADDLE,
                           PointKind.DEGENERATE)


#: From this many variables on, a known point is polished by Newton's method on the sparse
#: Hessian (MINPACK's hybrj works on a dense Jacobian: 97 s per point at n = 5,000).
SPARSE_POLISH = 200


def _polish(loss, point):
    """The critical point near ``point``, to rounding (hybrj; sparse Newton when large)."""
    x = np.asarray(point, dtype=float)
    if loss.n < SPARSE_POLISH:
        x = scipy.optimize.root(loss.grad, x, jac=loss.hess, method="hybr",
                                options={"xtol": 1e-15}).x
    else:
        from scipy.sparse.linalg import spsolve
        for _ in range(50):
            g = loss.grad(x)
            if np.linalg.norm(g) <= 1e-13 * (1 + np.linalg.norm(x)):
                break
            x = x - spsolve(loss.hess(x, sparse=True).tocsc(), g)
    if np.linalg.norm(loss.grad(x)) > 1e-8:  # pragma: no cover - guards the tables below
        raise RuntimeError(f"could not polish the critical point near {point}")
    loss.reset_counts()
    return x


def _with_facts(loss, name, points, *, complete, min_value=None, bounds=None, flow=None,
                polish=True):
    known = tuple(KnownPoint(_polish(loss, p) if polish else p, kind, is_global)
                  for p, kind, is_global in points)
    return loss.with_facts(LossFacts(name, known, complete, min_value, bounds, flow,
                                     source="literature"))


def _symbols(n, prefix="x"):
    return [real_symbol(f"{prefix}{i}") for i in range(1, n + 1)]


def _matrix(A, name):
    A = real_array(A, name)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"{name} must be a square matrix, got shape {A.shape}.")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} holds non-finite entries.")
    if not np.allclose(A, A.T, rtol=1e-12, atol=0):
        raise ValueError(f"{name} must be symmetric; pass (A + A.T) / 2.")
    return A


def _number(value):
    value = float(value)
    return sp.Integer(int(value)) if value.is_integer() else sp.Float(value)


def _quadratic_expr(A, b, c, xs):
    """1/2 x^T A x - b^T x + c in the symbols ``xs`` (only nonzero entries are written)."""
    n = len(xs)
    terms = [c and _number(c)]
    for i in range(n):
        if A[i, i]:
            terms.append(_number(A[i, i]) / 2 * xs[i] ** 2)
        for j in range(i + 1, n):
            if A[i, j]:
                terms.append(_number(A[i, j]) * xs[i] * xs[j])
        if b[i]:
            terms.append(-_number(b[i]) * xs[i])
    return sp.Add(*[t for t in terms if t is not None and t != 0])


@dataclass(frozen=True)
class QuadraticFlow:
    """The exact gradient flow of 1/2 (x - x*)^T A (x - x*): x(t) = x* + e^{-tA} (x0 - x*).

    A picklable ``flow_solution(t, x0)`` for :class:`~flowsim.facts.LossFacts`.
    """

    A: np.ndarray
    x_star: np.ndarray

    def __call__(self, t, x0):
        return self.x_star + scipy.linalg.expm(-float(t) * self.A) @ \
            (np.asarray(x0, float) - self.x_star)


def quadratic(A, x_star=None):
    """L(x) = 1/2 (x - x*)^T A (x - x*), with its closed-form gradient flow.

    Parameters
    ----------
    A : array_like, shape (n, n)
        Symmetric matrix (any signature: indefinite A makes x* a saddle).
    x_star : array_like, shape (n,), optional
        The critical point; zeros by default.

    Notes
    -----
    The gradient flow is :math:`x(t) = x^* + e^{-tA}(x_0 - x^*)`, available as
    ``loss.facts.flow_solution(t, x0)``. Variables are ``x1, ..., xn``.

    Examples
    --------
    >>> L = quadratic([[2.0, 0.0], [0.0, 1.0]], [1.0, 1.0])
    >>> L.grad([2.0, 2.0])
    array([2., 1.])
    """
    A = _matrix(A, "A")
    n = A.shape[0]
    x_star = np.zeros(n) if x_star is None else real_array(x_star, "x_star")
    if x_star.shape != (n,) or not np.all(np.isfinite(x_star)):
        raise ValueError(f"x_star must be a finite vector of shape ({n},), got {x_star.shape}.")
    xs = _symbols(n)
    d = [x - _number(s) for x, s in zip(xs, x_star)]
    expr = sp.Add(*[_number(A[i, j]) * (sp.Rational(1, 2) if i == j else 1) * (d[i] * d[j])
                    for i in range(n) for j in range(i, n) if A[i, j]])
    loss = Loss(expr, variables=[x.name for x in xs])
    eigs = np.linalg.eigvalsh(A)
    kind = kind_of_spectrum(eigs)

    min_value = 0.0 if np.all(eigs >= 0) else None
    return _with_facts(loss, f"quadratic(n={n})", [(x_star, kind, kind is MIN)],
                       complete=kind is not DEGEN, min_value=min_value,
                       flow=QuadraticFlow(A, x_star), polish=False)


def ill_conditioned_quadratic(kappa=100.0, n=2):
    """Quadratic 1/2 x^T diag(lambda) x with eigenvalues from 1 to ``kappa`` (geometric).

    Parameters
    ----------
    kappa : float
        Condition number lambda_max / lambda_min, >= 1.
    n : int
        Dimension, >= 2.
    """
    kappa = finite(kappa, "kappa")
    if kappa < 1:
        raise ValueError(f"kappa must be a finite number >= 1, got {kappa}.")
    n = int_between(n, "n", 2, MAX_DENSE)
    return quadratic(np.diag(np.geomspace(1.0, kappa, n)))


def rosenbrock(n=2, b=100.0):
    """Chained Rosenbrock L(x) = sum_i b (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 in n variables.

    Matches :func:`scipy.optimize.rosen` for b = 100. Variables ``x1, ..., xn``. The global
    minimizer is (1, ..., 1); for n >= 4 there is a local minimizer near (-1, 1, ..., 1)
    (Kok and Sandrock, 2009). For n = 2, 3 the minimizer is the only critical point.
    """
    n = int_between(n, "n", 2, 10_000)
    b = positive(b, "b")
    xs = _symbols(n)
    bb = _number(b)
    expr = sp.Add(*[bb * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2
                    for i in range(n - 1)])
    # flowsim's own formula, allowed up to n = 10,000: its derivatives (about 70 operations
    # per variable) get the room they need
    loss = Loss(expr, variables=[x.name for x in xs],
                budget={"derivative_ops": max(150_000, 100 * n)})
    points = [(np.ones(n), MIN, True)]
    if n >= 4:
        points.append((np.r_[-1.0, np.ones(n - 1)], MIN, False))
    return _with_facts(loss, f"rosenbrock({n})", points, complete=n <= 3, min_value=0.0,
                       polish=n >= 4)


def himmelblau():
    """Himmelblau's function (x^2 + y - 11)^2 + (x + y^2 - 7)^2.

    Nine critical points in [-5, 5]^2: four global minima (value 0), one maximum and four
    saddles.
    """
    loss = Loss("(x**2 + y - 11)**2 + (x + y**2 - 7)**2")
    points = [((3.0, 2.0), MIN, True), ((-2.805118086953, 3.131312518251), MIN, True),
              ((-3.779310253378, -3.283185991286), MIN, True),
              ((3.584428340330, -1.848126526964), MIN, True),
              ((-0.270844590667, -0.923038556480), MAX, False),
              ((-3.073025750764, -0.081353044288), SADDLE, False),
              ((-0.127961346731, -1.953714980245), SADDLE, False),
              ((0.086677504555, 2.884254701175), SADDLE, False),
              ((3.385154183607, 0.073851879838), SADDLE, False)]
    return _with_facts(loss, "himmelblau", points, complete=True, min_value=0.0,
                       bounds=((-5.0, 5.0), (-5.0, 5.0)))


def six_hump_camel():
    """Six-hump camel (4 - 2.1 x^2 + x^4/3) x^2 + x y + (-4 + 4 y^2) y^2.

    Fifteen critical points in [-3, 3] x [-2, 2]: six minima (two global, value
    -1.0316284535), two maxima and seven saddles. The 2.1 is the rational 21/10.
    """
    loss = Loss("(4 - 21*x**2/10 + x**4/3)*x**2 + x*y + (-4 + 4*y**2)*y**2")
    half = [((0.089842013100, -0.712656403021), MIN, True),
            ((1.703606714970, -0.796083568673), MIN, False),
            ((1.607104752920, 0.568651454884), MIN, False),
            ((1.230229876517, 0.162334584459), MAX, False),
            ((1.109205336805, -0.768268092510), SADDLE, False),
            ((1.296070267167, 0.605084388039), SADDLE, False),
            ((1.638067984190, 0.228674069044), SADDLE, False)]
    points = half + [((-p[0], -p[1]), k, g) for p, k, g in half] + [((0.0, 0.0), SADDLE, False)]
    return _with_facts(loss, "six_hump_camel", points, complete=True,
                       min_value=-1.031628453489877, bounds=((-3.0, 3.0), (-2.0, 2.0)))


def beale():
    """Beale's function; global minimum 0 at (3, 0.5), saddles at (0, 1) and near
    (0.1005, -2.6445). The listing is not claimed complete."""
    loss = Loss("(3/2 - x + x*y)**2 + (9/4 - x + x*y**2)**2 + (21/8 - x + x*y**3)**2")
    points = [((3.0, 0.5), MIN, True), ((0.0, 1.0), SADDLE, False),
              ((0.100537937324, -2.644513585023), SADDLE, False)]
    return _with_facts(loss, "beale", points, complete=False, min_value=0.0,
                       bounds=((-4.5, 4.5), (-4.5, 4.5)))


def monkey_saddle():
    """The monkey saddle x^3 - 3 x y^2: one critical point, degenerate (Hessian zero)."""
    return _with_facts(Loss("x**3 - 3*x*y**2"), "monkey_saddle",
                       [((0.0, 0.0), DEGEN, False)], complete=True, polish=False)


def saddle():
    """The saddle x^2 - y^2, with closed-form flow (x0 e^{-2t}, y0 e^{2t})."""
    return _with_facts(Loss("x**2 - y**2"), "saddle", [((0.0, 0.0), SADDLE, False)],
                       complete=True, flow=QuadraticFlow(np.diag([2.0, -2.0]), np.zeros(2)),
                       polish=False)


def scalar_factorization(depth=3):
    r"""Deep scalar factorization :math:`L(w) = (w_1 w_2 \cdots w_d - 1)^2 / 2`.

    The minima form the manifold :math:`\prod w_i = 1`, where the Hessian is
    :math:`g g^T` with :math:`g = \nabla \prod w_i`, so the sharpness there is
    :math:`\sum_i \prod_{j \ne i} w_j^2`: 3 at the balanced minimum (1, 1, 1) and larger at
    unbalanced ones. The gradient flow keeps :math:`w_i^2 - w_j^2` and sharpens towards an
    unbalanced minimum; GD with 2/eta below that sharpness self-stabilizes at the edge
    (the model of :func:`flowsim.flows.central.central_flow`).
    """
    depth = int(depth)
    if depth < 2 or depth > 12:
        raise ValueError(f"depth must be an integer from 2 to 12, got {depth}.")
    names = " * ".join(f"w{i}" for i in range(1, depth + 1))
    return Loss(f"({names} - 1)**2 / 2")


def tanh_network(width=2, n_points=8):
    r"""A one-hidden-layer tanh network fitted to a few points, the small model on which
    gradient descent shows progressive sharpening and the edge of stability.

    .. math:: L(w, v) = \frac{1}{N}\sum_{k=1}^N \frac{1}{2}
              \Big(\sum_{i=1}^{m} v_i \tanh(w_i a_k) - b_k\Big)^2,
              \qquad b_k = 4 \sin(1.5\, a_k),

    with N = ``n_points`` inputs a_k evenly spaced on [-2, 2] and m = ``width`` units; the
    variables are w1..wm, then v1..vm (a ``Loss.from_samples`` finite sum). From the small
    start (0.3, -0.2, 0.2, 0.1) (width 2) the gradient flow's sharpness grows from 2.3 to 26.6
    by t = 120, so gradient descent with 2/eta below that self-stabilizes at the edge.
    """
    width = int_between(width, "width", 1, 8)
    n_points = int_between(n_points, "n_points", 2, 10_000)
    a = np.linspace(-2.0, 2.0, n_points)
    units = " + ".join(f"v{i}*tanh(w{i}*a)" for i in range(1, width + 1))
    variables = [f"w{i}" for i in range(1, width + 1)] + [f"v{i}" for i in range(1, width + 1)]
    return Loss.from_samples(f"({units} - b)**2 / 2", {"a": a, "b": 4.0 * np.sin(1.5 * a)},
                             variables)


def double_well():
    """Double well (x^2 - 1)^2 + y^2: minima (+-1, 0) with value 0, saddle at the origin."""
    points = [((1.0, 0.0), MIN, True), ((-1.0, 0.0), MIN, True), ((0.0, 0.0), SADDLE, False)]
    return _with_facts(Loss("(x**2 - 1)**2 + y**2"), "double_well", points, complete=True,
                       min_value=0.0, polish=False)


def _design(X, y):
    X = real_array(X, "X")
    y = real_array(y, "y")
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] == 0:
        raise ValueError(f"X must have shape (N, d) and y shape (N,); got {X.shape} and "
                         f"{y.shape}.")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must be finite.")
    return X, y


def least_squares(X, y):
    """L(w) = |X w - y|^2 / (2N), a quadratic with closed-form minimizer and flow.

    Parameters
    ----------
    X : array_like, shape (N, d)
        Design matrix (add a column of ones for an intercept).
    y : array_like, shape (N,)
        Targets.

    Notes
    -----
    With A = X^T X / N and w* = argmin L, the flow is w* + e^{-tA}(w0 - w*). Variables
    ``w1, ..., wd``.
    """
    X, y = _design(X, y)
    N, d = X.shape
    A = X.T @ X / N
    b = X.T @ y / N
    ws = _symbols(d, "w")
    loss = Loss(_quadratic_expr(A, b, y @ y / (2 * N), ws), variables=[w.name for w in ws])
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    min_value = float(np.sum((X @ w_star - y) ** 2) / (2 * N))
    kind = kind_of_spectrum(np.linalg.eigvalsh(A))

    return _with_facts(loss, f"least_squares(N={N}, d={d})", [(w_star, kind, True)],
                       complete=kind is MIN, min_value=min_value,
                       flow=QuadraticFlow(A, w_star), polish=False)


def logistic_regression(X, y, lam=0.0):
    """Mean logistic loss (1/N) sum_i log(1 + exp(-t_i w.x_i)) + lam/2 |w|^2.

    Parameters
    ----------
    X : array_like, shape (N, d)
    y : array_like, shape (N,)
        Labels in {0, 1} or {-1, +1}.
    lam : float
        Ridge weight >= 0.

    Returns
    -------
    Loss
        A finite-sum loss (:meth:`Loss.from_samples`), so :meth:`Loss.subset` gives
        mini-batches. Variables ``w1, ..., wd``; data symbols ``x1, ..., xd`` and ``t``.
    """
    X, y = _design(X, y)
    labels = set(np.unique(y))
    if labels <= {0.0, 1.0}:
        y = 2 * y - 1
    elif not labels <= {-1.0, 1.0}:
        raise ValueError("y must hold labels in {0, 1} or {-1, +1}.")
    lam = nonnegative(lam, "lam")
    d = X.shape[1]
    ws, xs = _symbols(d, "w"), _symbols(d, "x")
    t = real_symbol("t")
    margin = t * sp.Add(*[w * x for w, x in zip(ws, xs)])
    per_sample = sp.log(1 + sp.exp(-margin))
    if lam:
        per_sample += _number(lam) / 2 * sp.Add(*[w ** 2 for w in ws])
    data = {f"x{i + 1}": X[:, i] for i in range(d)}
    data["t"] = y
    loss = Loss.from_samples(per_sample, data, variables=[w.name for w in ws])
    return loss.with_facts(LossFacts(f"logistic_regression(N={X.shape[0]}, d={d})"))


def lasso(X, y, lam):
    """l1-regularized least squares |X w - y|^2 / (2N) + lam |w|_1 as smooth + non-smooth.

    Returns
    -------
    Composite
        ``smooth`` is :func:`least_squares`, ``penalty`` is :class:`flowsim.prox.L1`.
    """
    smooth = least_squares(X, y)
    penalty = L1(lam)
    ws = smooth.variables
    full = Loss(smooth.expr + _number(penalty.lam) * sp.Add(*[sp.Abs(w) for w in ws]),
                variables=[w.name for w in ws])
    full = full.with_facts(LossFacts(f"lasso(lam={penalty.lam:g})"))
    return Composite(smooth, penalty, full)


#: Losses that can be named on the command line, with no arguments needed.
NAMED = {
    "rosenbrock": rosenbrock, "himmelblau": himmelblau, "six_hump_camel": six_hump_camel,
    "beale": beale, "monkey_saddle": monkey_saddle, "saddle": saddle,
    "double_well": double_well, "ill_conditioned_quadratic": ill_conditioned_quadratic,
    "scalar_factorization": scalar_factorization, "tanh_network": tanh_network,
}
if tuple(NAMED) != NAMED_LOSSES:   # pragma: no cover - a named loss added in one place only
    raise ImportError("flowsim._catalog.NAMED_LOSSES must list flowsim.losses.NAMED in order.")
