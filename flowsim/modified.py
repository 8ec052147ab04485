r"""Modified equations: the flow a scheme's iterates follow more closely than its own ODE.

Backward error analysis (Hairer, Lubich and Wanner, *Geometric Numerical Integration*, ch. IX):
a one-step scheme :math:`x_{k+1} = \Phi_h(x_k)` with Taylor expansion
:math:`\Phi_h(x) = x + h d_1(x) + h^2 d_2(x) + \dots` is the exact time-h map, up to
:math:`O(h^{p+2})` per step, of the *modified* field

.. math:: \tilde f = f_1 + h f_2 + \dots + h^p f_{p+1},

where :math:`f_{j+1} = d_{j+1} - [h^{j+1}]\,\varphi_h(f_1 + \dots + h^{j-1} f_j)` and
:math:`\varphi_h(F)(x) = x + \sum_{k\ge1} \frac{h^k}{k!} (D_F)^{k-1} F` is the exact flow
(:math:`D_F g = g' F`, the Lie derivative). Over a fixed time the iterates then stay
:math:`O(h^{p+1})` from the flow of :math:`\tilde f` (order p + 1 instead of the scheme's own).

For gradient descent on f = -grad L this gives
:math:`\tilde f = -\nabla L - \frac h2 H\nabla L - h^2(\frac13 H^2\nabla L
+ \frac1{12} D^3L[\nabla L, \nabla L]) + \dots`, at first order the gradient of the modified
loss :math:`L + \frac h4 |\nabla L|^2` (proximal point: :math:`L - \frac h4|\nabla L|^2`; Heun
has no first-order term). The heavy ball (a two-step scheme) is treated on its slow manifold:
with momentum beta, iterate k at time k h follows
:math:`\dot x = -\frac{1}{1-\beta}\nabla L - h\frac{1+\beta}{2(1-\beta)^3} H\nabla L`
(first order; Kovachki and Stuart 2021, Ghosh et al. 2023), once the start-up transient
(beta^k) has decayed.

Which schemes have one is data: the registry's ``one_step`` (a symbolic one-step map) and its
flow's field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import symengine as se
import sympy as sp

from . import methods
from ._validate import as_loss, int_between, positive, start_points
from .results import Status, Trajectory

__all__ = ["ModifiedEquation", "modified_equation", "FIELDS"]


def _gradient_field(loss):
    return -sp.Matrix(loss.gradient_expr)


def _newton_field(loss):
    H = sp.Matrix(loss.hessian_expr)
    return -(H.inv() * sp.Matrix(loss.gradient_expr))


#: The symbolic vector field of each flow a one-step scheme discretizes.
FIELDS = {"gradient_flow": _gradient_field, "newton_flow": _newton_field}


class _Jet:
    """A truncated power series in h with vector coefficients (symengine expressions):
    ``c[0] + h c[1] + ... + h^m c[m]``; what the registry's one-step maps are evaluated on."""

    def __init__(self, coeffs, m):
        self.c, self.m = coeffs, m

    def _lift(self, other):
        if isinstance(other, _Jet):
            return other
        zero = [0] * len(self.c[0])
        return _Jet([list(other)] + [zero] * self.m, self.m)

    def __add__(self, other):
        other = self._lift(other)
        return _Jet([[a + b for a, b in zip(p, q)] for p, q in zip(self.c, other.c)], self.m)

    __radd__ = __add__

    def __mul__(self, k):
        return _Jet([[k * a for a in p] for p in self.c], self.m)

    __rmul__ = __mul__

    def __truediv__(self, k):
        return self * (se.Integer(1) / k)


class _H:
    """The step h as seen by a one-step map: ``(h * k) * jet`` shifts the series by one."""

    def __init__(self, k=1):
        self.k = k

    def __mul__(self, other):
        if isinstance(other, _Jet):
            zero = [0] * len(other.c[0])
            return _Jet([zero] + [[self.k * a for a in p] for p in other.c[:-1]], other.m)
        return _H(self.k * other)

    __rmul__ = __mul__

    def __truediv__(self, k):
        return _H(self.k * se.Integer(1) / k)


def _field_on_jets(f_expr, xs, m):
    """f(jet) for jets whose h^0 coefficient is the point x itself: the Taylor expansion
    f(x + d) = sum_k D^k f(x)[d, ..., d] / k!, with d = sum_{i>=1} h^i c_i."""
    n = len(xs)
    a = [se.Symbol(f"_a{j}") for j in range(n)]
    b = [[se.Symbol(f"_b{i}_{j}") for j in range(n)] for i in range(1, m + 1)]
    hs = se.Symbol("_h")
    # D^k f[a^k] / k! as polynomials in a, then a_j -> sum_i h^i b_ij, read off h^p
    G, polys = list(f_expr), []
    for k in range(1, m + 1):
        G = [sum(a[j] * se.diff(g, xs[j]) for j in range(n)) for g in G]
        polys.append([g / math.factorial(k) for g in G])
    put_a = {a[j]: sum(hs ** (i + 1) * b[i][j] for i in range(m)) for j in range(n)}
    table = [[[0] * n for _ in range(m + 1)] for _ in range(m + 1)]  # [k][p][comp]
    for k, P in enumerate(polys, start=1):
        for comp, g in enumerate(P):
            e = se.expand(g.subs(put_a))
            for p in range(k, m + 1):
                table[k][p][comp] = e.coeff(hs, p)

    def f(jet):
        put_b = {b[i][j]: jet.c[i + 1][j] for i in range(m) for j in range(n)}
        out = [list(f_expr)] + [[0] * n for _ in range(m)]
        for k in range(1, m + 1):
            for p in range(k, m + 1):
                for comp in range(n):
                    if table[k][p][comp] != 0:
                        out[p][comp] += table[k][p][comp].subs(put_b)
        return _Jet(out, m)
    return f


def _taylor(one_step, f_expr, xs, order):
    """Coefficients d_1..d_order (lists of symengine expressions) of the one-step map."""
    f = _field_on_jets(f_expr, xs, order)
    point = _Jet([list(xs)] + [[0] * len(xs) for _ in range(order)], order)
    result = one_step(f, point, _H(), order)
    return [[se.expand(e) for e in result.c[j]] for j in range(1, order + 1)]


def _lie(g_terms, F_terms, xs, order):
    """D_F g for truncated h-series g = sum h^a g_a and F = sum h^b F_b (lists of vectors),
    truncated after h^order."""
    n = len(xs)
    out = [[0] * n for _ in range(order + 1)]
    for a_, g in enumerate(g_terms):
        J = [[se.diff(gi, x) for x in xs] for gi in g]
        for b_, F in enumerate(F_terms):
            if a_ + b_ <= order:
                for i in range(n):
                    out[a_ + b_][i] += sum(J[i][j] * F[j] for j in range(n))
    return out


def _flow_coefficient(F_terms, xs, m):
    """[h^m] of the exact time-h flow of F = sum h^b F_b (lists of vectors)."""
    n = len(xs)
    total = [0] * n
    term = list(F_terms) + [[0] * n] * (m - len(F_terms))   # D^0 F
    for k in range(1, m + 1):
        if m - k < len(term):
            total = [t + e / math.factorial(k) for t, e in zip(total, term[m - k])]
        if k < m:
            term = _lie(term, F_terms, xs, m)
    return total


def _heavy_ball_terms(loss, options, order):
    """The heavy ball's first-order terms on its slow manifold (see the module docstring)."""
    if order != 1:
        raise ValueError("the heavy ball's modified equation is derived at first order only "
                         "(order=1); use order=1.")
    beta = sp.nsimplify(options.get("momentum", methods.DEFAULT_MOMENTUM))
    g = sp.Matrix(loss.gradient_expr)
    H = sp.Matrix(loss.hessian_expr)
    return [-g / (1 - beta), -(1 + beta) / (2 * (1 - beta) ** 3) * (H * g)]


#: Schemes that are the adjoint (Phi_h^* = Phi_{-h}^{-1}) of another: the adjoint's modified
#: field is the other's with h -> -h (Hairer, Lubich and Wanner, Theorem IX.2.2), so
#: f_j = (-1)^(j-1) f_j of the other. Backward Euler is the adjoint of forward Euler.
ADJOINT_OF = {"proximal_point": "gradient_descent"}


def _terms(loss, record, xs, h, order):
    """f_1..f_{order+1} of a one-step scheme (see the module docstring)."""
    if record.name in ADJOINT_OF:
        base = _terms(loss, methods.get(ADJOINT_OF[record.name]), xs, h, order)
        return [t * (-1) ** j for j, t in enumerate(base)]
    if record.one_step is None or record.flow not in FIELDS:
        raise ValueError(f"{record.name} has no symbolic one-step map; modified equations "
                         "exist here for gradient_descent, proximal_point, heun and "
                         "heavy_ball.")
    sx = [se.sympify(v) for v in xs]
    field = [se.sympify(e) for e in FIELDS[record.flow](loss)]
    d = _taylor(record.one_step, field, sx, order + 1)
    terms = [d[0]]
    for j in range(1, order + 1):
        c = _flow_coefficient(terms, sx, j + 1)
        terms.append([se.expand(p - q) for p, q in zip(d[j], c)])
    back = {sp.Symbol(v.name): v for v in xs}   # symengine drops the assumptions
    return [sp.Matrix([sp.sympify(e).xreplace(back) for e in t]) for t in terms]


@dataclass(frozen=True)
class ModifiedEquation:
    r"""The modified vector field of a scheme at one step size.

    Attributes
    ----------
    loss : Loss
    method : str
        The scheme's registry name.
    eta : float
    order : int
        p: the field holds the terms up to h^p; the scheme follows its flow to O(h^(p+1)).
    terms : tuple of sympy.Matrix, each shape (n, 1)
        f_1, ..., f_{p+1}: the field is sum_j h^(j-1) f_j with h = ``step``.
    step : float
        The flow time of one step (eta for the schemes here): iterate k sits at k * step.
    field : sympy.Matrix, shape (n, 1)
        The field at this eta.
    modified_loss : Loss or None
        At first order, the loss whose negative gradient is the field (up to the factor
        1/(1 - beta) of the heavy ball), when the field is one: L + c h |grad L|^2 / 2.
    """

    loss: object
    method: str
    eta: float
    order: int
    terms: tuple
    step: float
    field: object
    modified_loss: object = None
    options: dict = field(default_factory=dict)

    def __call__(self, x):
        """The field at ``x`` of shape (..., n)."""
        return self._compiled()[0](np.asarray(x, dtype=float))

    def _compiled(self):
        cache = self.__dict__.setdefault("_cache", {})
        if "f" not in cache:
            xs = list(self.loss.variables)
            f = sp.lambdify([xs], list(self.field), modules="numpy")
            J = sp.lambdify([xs], self.field.jacobian(xs).tolist(), modules="numpy")
            n = len(xs)

            def F(x):
                cols = [np.broadcast_to(np.asarray(c, dtype=float), x.shape[:-1])
                        for c in f(np.moveaxis(x, -1, 0))]
                return np.stack(cols, axis=-1)

            def Jac(x):
                rows = J(x)
                return np.array([[float(np.asarray(v)) for v in row] for row in rows]).reshape(
                    n, n)
            cache["f"] = (F, Jac)
        return cache["f"]

    def flow(self, x0, t_end, *, t_eval=None, rtol=1e-12, atol=1e-14, method="DOP853"):
        """Integrate the modified field from ``x0`` to ``t_end``.

        Returns
        -------
        Trajectory
            ``method`` is ``"modified_equation"``; values and gradient norms are those of the
            original loss.
        """
        import scipy.integrate
        x0 = start_points(x0, self.loss.n, batch=False)
        t_end = positive(t_end, "t_end")
        F, Jac = self._compiled()
        extra = {"jac": lambda t, x: Jac(x)} if method in ("Radau", "BDF", "LSODA") else {}
        with np.errstate(all="ignore"):
            sol = scipy.integrate.solve_ivp(lambda t, x: F(x), (0.0, t_end), x0, method=method,
                                            t_eval=t_eval, rtol=rtol, atol=atol, **extra)
        xs = sol.y.T
        with np.errstate(all="ignore"):
            values = self.loss.value(xs)
            grads = np.linalg.norm(self.loss.grad(xs), axis=-1)
        ok = sol.status == 0 and np.all(np.isfinite(xs))
        status = Status.REACHED_END if ok else Status.FAILED
        label = f"modified equation of {methods.get(self.method).label} (order {self.order}, " \
                f"eta={self.eta:g})"
        return Trajectory(sol.t, xs, values, grads, status, sol.message, "modified_equation",
                          label, nfev=int(sol.nfev))

    def summary(self):
        """The field's terms, one line each."""
        lines = [f"modified equation of {self.method} at eta = {self.eta:g} (order "
                 f"{self.order}): x' = sum_j h^(j-1) f_j, h = {self.step:g}"]
        for j, t in enumerate(self.terms, start=1):
            lines.append(f"  f_{j} = {[sp.simplify(e) for e in t]}")
        return "\n".join(lines)


#: First-order coefficient c of each gradient-flow scheme: f_2 = -c H grad L, so the field is
#: -grad(L + c h |grad L|^2 / 2). Checked against the derived terms before use.
_FIRST_ORDER = {"gradient_descent": sp.Rational(1, 2), "proximal_point": -sp.Rational(1, 2),
                "heun": sp.S.Zero}


def modified_equation(loss, method, eta, order=1, **options):
    r"""The modified equation of a registered scheme, derived symbolically.

    Parameters
    ----------
    loss : Loss or str
    method : str
        A registered scheme with a symbolic one-step map (``gd``, ``heun``; ``pp`` as the
        adjoint of ``gd``) or the heavy ball (``hb``, first order, ``momentum=`` as for the
        scheme).
    eta : float
        The step size.
    order : {0, 1, 2, 3}
        p: keep the terms up to h^p (0 gives the scheme's own flow).
    **options
        The scheme's options that shape its map (``momentum`` for the heavy ball).

    Returns
    -------
    ModifiedEquation
        Its ``terms`` are exact sympy expressions; ``flow(x0, t_end)`` integrates it.

    Raises
    ------
    ValueError
        For a scheme with no modified equation here, or an order outside 0..3.

    Examples
    --------
    >>> me = modified_equation("x**4/4", "gd", 0.1, order=1)
    >>> me.terms[1][0]
    -3*x**5/2
    >>> me.modified_loss.expr
    0.025*x**6 + x**4/4
    """
    loss = as_loss(loss)
    record = methods.get(method, kind="scheme")
    eta = positive(eta, "eta")
    order = int_between(order, "order", 0, 3)
    if loss.params or loss.n_samples is not None:
        raise ValueError("loss: modified equations need a loss without parameters or data; "
                         "bind parameters with with_params(...).")
    xs = list(loss.variables)
    h = sp.Symbol("h", positive=True)
    if record.name == "heavy_ball":
        terms = _heavy_ball_terms(loss, options, order if order > 1 else 1)[:order + 1]
        step = eta
    else:
        terms = _terms(loss, record, xs, h, order)
        step = record.step_of(eta)
    field_expr = sum((t * step ** j for j, t in enumerate(terms)), sp.zeros(len(xs), 1))
    mod_loss = _modified_loss(loss, record.name, terms, eta, order)
    return ModifiedEquation(loss, record.name, eta, order, tuple(terms), float(step),
                            field_expr, mod_loss, dict(options))


def _modified_loss(loss, name, terms, eta, order):
    from .loss import Loss
    if order != 1 or name not in _FIRST_ORDER:
        return None
    g = sp.Matrix(loss.gradient_expr)
    c = _FIRST_ORDER[name]
    if sp.expand(terms[1] + c * sp.Matrix(loss.hessian_expr) * g) != sp.zeros(len(g), 1):
        return None  # pragma: no cover - the derivation disagrees with the table
    expr = loss.expr + sp.Float(eta) * c / 2 * sum(e ** 2 for e in g)
    return Loss(expr, [v.name for v in loss.variables])
