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
with momentum beta, iterate k at time t = k eta follows
:math:`\dot x = -\frac{1}{1-\beta}\nabla L - \eta\frac{1+\beta}{2(1-\beta)^3} H\nabla L`
(first order; Kovachki and Stuart 2021, Ghosh et al. 2023) once the start-up transient
(beta^k) has decayed, and to O(eta^2) only from the start shifted onto the slow manifold,
:math:`x_0 + \eta\frac{\beta}{(1-\beta)^2}\nabla L(x_0)` (:meth:`ModifiedEquation.start`).

Which schemes have one is data: the registry's ``one_step`` (a symbolic one-step map) and its
flow's field. Parameters are bound and a finite sum is written out over its samples before
the derivation; every expression is metered against ``max_ops``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import math

import numpy as np
import symengine as se
import sympy as sp

from .. import methods
from .._validate import as_loss, int_between, positive, start_points
from ..loss._audit import exact_real, to_symengine, to_sympy
from ..loss._compile import NONSMOOTH, compile_vector
from .series import Meter, flow_coefficient, taylor

__all__ = ["ModifiedEquation", "modified_equation", "FIELDS", "MAX_TERMS", "TIME_LIMIT"]

#: Default budget of a derivation: the most terms one expansion in h may produce (measured:
#: Heun at order 3 on exp(x1 + ... + x8) would expand 675,000 terms and takes 9 s; order 2,
#: 26,000 terms, 0.1 s) and the seconds it may take.
MAX_TERMS = 200_000
TIME_LIMIT = 30.0


def _gradient_field(L, xs, meter):
    return meter.take([-se.diff(L, x) for x in xs], "the gradient")


def _newton_field(L, xs, meter):
    g = se.Matrix([se.diff(L, x) for x in xs])
    H = se.Matrix([[se.diff(gi, x) for x in xs] for gi in g])
    meter.predict(math.factorial(len(xs)) * len(xs), "the inverse Hessian")
    return meter.take(list(-(H.inv() * g)), "the Newton field")


#: The symbolic vector field of each flow a one-step scheme discretizes.
FIELDS = {"gradient_flow": _gradient_field, "newton_flow": _newton_field}

#: Schemes that are the adjoint (Phi_h^* = Phi_{-h}^{-1}) of another: the adjoint's modified
#: field is the other's with h -> -h (Hairer, Lubich and Wanner, Theorem IX.2.2), so
#: f_j = (-1)^(j-1) f_j of the other. Backward Euler is the adjoint of forward Euler.
ADJOINT_OF = {"proximal_point": "gradient_descent"}


#: The options that shape each scheme's map (others change nothing here and are refused).
_OPTIONS = {"heavy_ball": ("momentum",)}


def _bound_expression(loss, meter):
    """The loss as one symengine expression in its variables: parameters bound, a finite sum
    written out as the mean over its samples."""
    expr = to_symengine(loss.expr)
    values = loss.symbol_values()
    scalars = {to_symengine(s): se.RealDouble(v) for s, v in values.items() if np.ndim(v) == 0}
    expr = expr.subs(scalars) if scalars else expr
    columns = {to_symengine(s): v for s, v in values.items() if np.ndim(v) == 1}
    if not columns:
        return meter.take([expr], "the loss")[0]
    rows = len(next(iter(columns.values())))
    meter.predict(rows * max(1, len(expr.args)), f"the loss written out over its {rows} "
                  "samples")
    terms = [expr.subs({s: se.RealDouble(c[i]) for s, c in columns.items()})
             for i in range(rows)]
    return meter.take([se.Add(*terms) / rows], "the loss over its samples")[0]


def _derive(L, sx, record, order, meter):
    """f_1..f_{order+1} (lists of symengine expressions) of a one-step scheme."""
    if record.name in ADJOINT_OF:
        base = _derive(L, sx, methods.get(ADJOINT_OF[record.name]), order, meter)
        return [[e * (-1) ** j for e in t] for j, t in enumerate(base)]
    if record.one_step is None or record.flow not in FIELDS:
        raise ValueError(f"{record.name} has no symbolic one-step map; modified equations "
                         "exist here for gradient_descent, proximal_point, heun and "
                         "heavy_ball.")
    f = FIELDS[record.flow](L, sx, meter)
    d = taylor(record.one_step, f, sx, order + 1, meter)
    terms = [d[0]]
    for j in range(1, order + 1):
        c = flow_coefficient(terms, sx, j + 1, meter)
        terms.append(meter.take([se.expand(p - q) for p, q in zip(d[j], c)],
                                f"the term f_{j + 1}"))
    return terms


def _heavy_ball_terms(L, sx, beta, meter):
    """The heavy ball's first-order terms on its slow manifold (see the module docstring)."""
    beta = to_symengine(beta)
    g = se.Matrix([se.diff(L, x) for x in sx])
    H = se.Matrix([[se.diff(gi, x) for x in sx] for gi in g])
    first = [-e / (1 - beta) for e in g]
    second = [-(1 + beta) / (2 * (1 - beta) ** 3) * e for e in H * g]
    return [meter.take(first, "f_1"), meter.take(second, "f_2")]


def _to_matrices(terms, variables):
    back = {sp.Symbol(v.name): v for v in variables}   # symengine drops the assumptions
    return [sp.Matrix([to_sympy(e).xreplace(back) for e in t]) for t in terms]


def _terms(loss, record, xs, h, order):
    """f_1..f_{order+1} of a one-step scheme on ``loss``, as sympy column matrices."""
    meter = Meter(MAX_TERMS, TIME_LIMIT)
    L = _bound_expression(loss, meter)
    return _to_matrices(_derive(L, [to_symengine(v) for v in xs], record, order, meter), xs)


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
        f_1, ..., f_{p+1} in the time t = k eta of the derivation: dx/dt = sum_j
        eta^(j-1) f_j. Parameters are bound and a finite sum is written out.
    step : float
        The scheme's time of one step (``Method.step_of(eta)``: eta, or sqrt(eta) for the
        heavy ball): iterate k sits at k * step, as in the scheme's ``ts``.
    field : sympy.Matrix, shape (n, 1)
        The field in the scheme's time: (eta / step) sum_j eta^(j-1) f_j.
    modified_loss : Loss or None
        At first order, the loss whose negative gradient is the field when it is one:
        L + c eta |grad L|^2 / 2 (c = 1/2 for GD, -1/2 for proximal point, 0 for Heun).
    options : dict
        The scheme's options used (``momentum`` for the heavy ball).
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

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_cache", None)   # compiled kernels are rebuilt on first use
        return state

    def __call__(self, x):
        """The field at ``x`` of shape (..., n), in the scheme's time."""
        return self._kernels()[0](np.asarray(x, dtype=float))

    def _kernels(self):
        cache = self.__dict__.setdefault("_cache", {})
        if "f" not in cache:
            xs = list(self.loss.variables)
            n = len(xs)
            field_ = compile_vector(list(self.field), xs)
            jac = compile_vector(list(self.field.jacobian(xs)), xs)
            cache["f"] = (field_, lambda x: jac(x).reshape(x.shape[:-1] + (n, n)))
        return cache["f"]

    def start(self, x0):
        r"""The start from which the field's flow follows the scheme's iterates begun at
        ``x0``: ``x0`` for one-step schemes; for the heavy ball (started at rest) the point
        on its slow manifold, :math:`x_0 + \eta \beta (1-\beta)^{-2} \nabla L(x_0)`, which
        restores the O(eta^2) agreement that the plain start loses to the transient."""
        x0 = start_points(x0, self.loss.n, batch=False)
        if self.method != "heavy_ball" or self.order < 1:
            return x0
        beta = float(self.options.get("momentum", methods.DEFAULT_MOMENTUM))
        return x0 + self.eta * beta / (1 - beta) ** 2 * self.loss.grad(x0)

    def flow(self, x0, t_end=None, *, t_eval=None, rtol=1e-12, atol=1e-14, method="DOP853",
             max_norm=1e8, max_steps="default", slow_manifold=False):
        """Integrate the modified field from ``x0`` over [0, t_end] on the guarded loop of
        every flow (step budget, ``max_norm``, statuses).

        Parameters
        ----------
        x0 : array_like, shape (n,)
        t_end : float, optional
            By default the last of ``t_eval``. The scheme's own ``ts`` (which may end a few
            ulps past k * step) are accepted as ``t_eval``.
        slow_manifold : bool
            Start from :meth:`start` (x0) instead of x0 (matters for the heavy ball only).

        Returns
        -------
        Trajectory
            ``method`` is ``"modified_equation"``; values and gradient norms are those of the
            original loss; the continuous solution is kept (``traj.at(t)``). A path that
            leaves ``max_norm`` or becomes non-finite ends ``diverged``.
        """
        from ..flows._common import bound_stop, outside_run, check_flow_arguments, check_start, \
            finish_flow, output_times
        from ..flows._solver import integrate, jacobian_for
        if t_end is None:
            if t_eval is None:
                raise ValueError("t_end: give the end time, or t_eval (e.g. a scheme's ts).")
            t_end = float(np.max(np.asarray(t_eval, dtype=float)))
        loss, t_end = check_flow_arguments(self.loss, t_end, method, rtol, atol, max_steps)
        max_norm = positive(max_norm, "max_norm")
        x0 = self.start(x0) if slow_manifold else start_points(x0, loss.n, batch=False)
        t_eval = output_times(t_eval, t_end)
        check_start(loss, x0)
        F, J = self._kernels()
        with np.errstate(all="ignore"):
            if not np.all(np.isfinite(F(x0))):
                raise ValueError("x0: the modified field is not finite at the start; start "
                                 "inside the loss's domain.")
        options = jacobian_for(method, None, lambda t, x: J(x), loss.n, loss.n, False)
        bound = bound_stop(max_norm, loss.n)
        before = loss.counts
        run = outside_run(x0, max_norm) or integrate(
                        lambda t, x: F(x), x0, t_end, method=method, rtol=rtol, atol=atol,
                        solver_options=options, stop=lambda t, x, s: bound(x),
                        max_steps=max_steps)
        label = f"modified equation of {methods.get(self.method).label} (order " \
                f"{self.order}, eta={self.eta:g})"
        return finish_flow(loss, run, t_eval, "modified_equation", label, before)

    def summary(self):
        """The field's terms, one line each (simplified where they are small)."""
        lines = [f"modified equation of {self.method} at eta = {self.eta:g} (order "
                 f"{self.order}): x' = sum_j eta^(j-1) f_j, iterate k at t = k eta"]
        for j, t in enumerate(self.terms, start=1):
            ops = sum(sp.count_ops(e) for e in t)
            shown = [sp.simplify(e) for e in t] if ops <= 200 else f"({ops} operations)"
            lines.append(f"  f_{j} = {shown}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"ModifiedEquation({self.method!r}, eta={self.eta:g}, order={self.order}, "
                f"n={self.loss.n})")

    def _repr_html_(self):
        """The notebook display: the summary, short and escaped."""
        from .._report import html_block
        return html_block("ModifiedEquation", self.summary())


def _options(record, options):
    allowed = _OPTIONS.get(record.name, ())
    for name in options:
        if name not in allowed:
            shaped = f"only {', '.join(allowed)} shapes its map" if allowed else \
                "no option shapes its map"
            raise ValueError(f"{name}: not an option of the modified equation of "
                             f"{record.name} ({shaped}); remove it.")
    if record.name == "heavy_ball":
        beta = options.get("momentum", methods.DEFAULT_MOMENTUM)
        return {"momentum": float(exact_real(beta, "momentum", 0.0, 1.0, open_high=True))}
    return {}


def modified_equation(loss, method, eta, order=1, *, max_terms=MAX_TERMS,
                      time_limit=TIME_LIMIT, **options):
    r"""The modified equation of a registered scheme, derived symbolically.

    Parameters
    ----------
    loss : Loss or str
        A smooth loss (no ``abs``/``max``/``min``/``sign``, which have no Taylor expansion
        at their kinks); parameters are bound, a finite sum is written out over its samples.
    method : str
        A registered scheme with a symbolic one-step map (``gd``, ``heun``; ``pp`` as the
        adjoint of ``gd``) or the heavy ball (``hb``, first order, ``momentum=`` as for the
        scheme).
    eta : float
        The step size.
    order : {0, 1, 2, 3}
        p: keep the terms up to h^p (0 gives the scheme's own flow).
    max_terms : int
        The size budget: the most terms one expansion in h may produce, predicted before it
        runs; a larger derivation raises ``ValueError`` naming it.
    time_limit : float
        Seconds the derivation may take (checked between expressions).
    **options
        The scheme's options that shape its map (``momentum`` in [0, 1) for the heavy ball).

    Returns
    -------
    ModifiedEquation
        Its ``terms`` are exact sympy expressions; ``flow(x0, t_end)`` integrates it.

    Raises
    ------
    ValueError
        For a scheme with no modified equation here, an order outside 0..3, an option that
        is not a number in range, a loss with kinks, or a derivation over its budget.

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
    max_terms = int_between(max_terms, "max_terms", 1, 10 ** 12)
    time_limit = positive(time_limit, "time_limit")
    options = _options(record, options)
    if loss.expr.has(*NONSMOOTH):
        raise ValueError("loss: modified equations need a smooth loss (abs, max, min and "
                         "sign have no Taylor expansion at their kinks); smooth it, e.g. "
                         "sqrt(x**2 + eps) for abs(x).")
    xs = list(loss.variables)
    sx = [to_symengine(v) for v in xs]
    meter = Meter(max_terms, time_limit)
    L = _bound_expression(loss, meter)
    if record.name == "heavy_ball":
        if order > 1:
            raise ValueError("the heavy ball's modified equation is derived at first order "
                             "only (order=1); use order=1.")
        beta = exact_real(options["momentum"], "momentum", 0.0, 1.0, open_high=True)
        derived = _heavy_ball_terms(L, sx, beta, meter)[:order + 1]
    else:
        derived = _derive(L, sx, record, order, meter)
    terms = _to_matrices(derived, xs)
    step = float(record.step_of(eta))
    h = sp.Float(eta)
    field_expr = sum((t * h ** j for j, t in enumerate(terms)), sp.zeros(len(xs), 1))
    if step != eta:
        field_expr = field_expr * (h / sp.Float(step))
    mod_loss = _modified_loss(L, sx, xs, record, derived, eta, order)
    return ModifiedEquation(loss, record.name, eta, order, tuple(terms), step, field_expr,
                            mod_loss, options)


def _modified_loss(L, sx, xs, record, derived, eta, order):
    """L + c eta |grad L|^2 / 2 where the derived f_2 of a gradient-flow scheme is
    -c H grad L for a number c (1/2 for gradient descent, -1/2 for proximal point, 0 for
    Heun; read off the terms, then checked: exactly when the difference expands to 0, else
    numerically at sample points). None where f_2 has another form."""
    from ..loss import Loss
    if order != 1 or record.flow != "gradient_flow":
        return None
    g = se.Matrix([se.diff(L, x) for x in sx])
    H = se.Matrix([[se.diff(gi, x) for x in sx] for gi in g])
    c = _ratio(derived[1], H * g, sx)
    if c is None:
        return None
    gap = [se.expand(a + c * b) for a, b in zip(derived[1], H * g)]
    if any(e != 0 for e in gap) and not _vanishes(gap, sx):
        return None  # pragma: no cover - the derivation disagrees with the table
    expr = L + se.RealDouble(eta) * c / 2 * sum(e ** 2 for e in g)
    back = {sp.Symbol(v.name): v for v in xs}
    return Loss(to_sympy(expr).xreplace(back), [v.name for v in xs])


def _ratio(f2, Hg, sx, points=8):
    """The number -c with f2 = -c Hg at sample points, as an exact fraction (the one-step
    maps' coefficients are rationals), or None where no sample point tells it."""
    from fractions import Fraction
    rng = np.random.default_rng(1)
    f = se.Lambdify(sx, list(f2) + list(Hg), backend="lambda")
    n = len(sx)
    with np.errstate(all="ignore"):
        for x in rng.uniform(-1.5, 1.5, size=(points, n)):
            v = np.asarray(f(x), dtype=float).ravel()
            a, b = v[:n], v[n:]
            if np.all(np.isfinite(v)) and b @ b > 1e-12:
                c = Fraction(float(-(a @ b) / (b @ b))).limit_denominator(10 ** 6)
                return se.Rational(c.numerator, c.denominator)
    return None


def _vanishes(exprs, sx, points=8, tol=1e-9):
    """Whether ``exprs`` are 0 at sample points of moderate size where they are defined."""
    rng = np.random.default_rng(0)
    f = se.Lambdify(sx, exprs, backend="lambda")
    seen = 0
    with np.errstate(all="ignore"):
        for x in rng.uniform(-1.5, 1.5, size=(points, len(sx))):
            v = np.asarray(f(x), dtype=float)
            if np.all(np.isfinite(v)):
                seen += 1
                if np.max(np.abs(v)) > tol:
                    return False
    return seen > 0
