"""Modified equations (backward error analysis), checked against independent oracles: the
closed form of the issue (built from sympy derivatives of L), the matrix logarithm of the
iteration matrix on quadratics (scipy.linalg.logm), the adjoint theorem against the unrolled
implicit map, and the empirical order of the global error between iterates and the flow."""
import numpy as np
import pytest
import scipy.linalg
import sympy as sp

import flowsim as fs
from flowsim import losses, methods
from flowsim.modified import _terms, modified_equation

CONVEX = "log(cosh(x)) + (y - x/2)**2 + y**4/4"


def test_gradient_descent_second_order_matches_the_closed_form():
    L = losses.himmelblau()
    x = list(L.variables)
    g = sp.Matrix([sp.diff(L.expr, v) for v in x])
    H = sp.hessian(L.expr, x)
    d3 = sp.Matrix([sum(sp.diff(L.expr, x[k], x[i], x[j]) * g[i] * g[j]
                        for i in range(2) for j in range(2)) for k in range(2)])
    me = modified_equation(L, "gd", 0.05, order=2)
    want = [-g, -H * g / 2, -(H * H * g / 3 + d3 / 12)]
    for got, ref in zip(me.terms, want):
        assert sp.expand(got - ref) == sp.zeros(2, 1)


def test_proximal_point_is_the_adjoint_of_gradient_descent():
    # the shortcut (h -> -h in the terms of GD) against the unrolled implicit Euler map
    L = fs.Loss(CONVEX)
    h = sp.Symbol("h")
    unrolled = _terms(L, methods.get("proximal_point").__class__(
        **{**methods.get("proximal_point").__dict__, "name": "pp_unrolled", "short": None}),
        list(L.variables), h, 3)
    shortcut = modified_equation(L, "pp", 0.1, order=3).terms
    for a, b in zip(unrolled, shortcut):
        assert sp.simplify(a - b) == sp.zeros(2, 1)


def test_heun_has_no_first_order_term_and_first_order_losses():
    L = losses.himmelblau()
    assert modified_equation(L, "heun", 0.1, order=2).terms[1] == sp.zeros(2, 1)
    eta = 0.01
    g2 = sum(e ** 2 for e in L.gradient_expr)
    for name, sign in (("gd", 1), ("pp", -1)):
        me = modified_equation(L, name, eta, order=1)
        assert sp.expand(me.modified_loss.expr - (L.expr + sign * eta / 4 * g2)) == 0
    assert modified_equation(L, "heun", eta, order=1).modified_loss.expr == L.expr


ITERATION = {"gd": lambda A, h: np.eye(2) - h * A,
             "pp": lambda A, h: np.linalg.inv(np.eye(2) + h * A),
             "heun": lambda A, h: np.eye(2) - h * A + (h * A) @ (h * A) / 2}


@pytest.mark.parametrize("name", ["gd", "pp", "heun"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_quadratic_fields_agree_with_the_matrix_logarithm(name, order):
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    L = fs.Loss("3*x**2/2 + x*y + y**2")
    errors = []
    for h in (0.02, 0.01):
        me = modified_equation(L, name, h, order=order)
        M = np.array(me.field.jacobian(list(L.variables)), dtype=float)
        exact = scipy.linalg.logm(ITERATION[name](A, h)).real / h
        errors.append(np.abs(M - exact).max())
    slope = np.log2(errors[0] / errors[1])
    assert slope == pytest.approx(order + 1, abs=0.2) or errors[0] < 1e-12


@pytest.mark.parametrize("loss, x0, T, etas", [
    (losses.himmelblau(), [0.0, 0.0], 0.1, [0.002, 0.001, 0.0005]),
    (CONVEX, [1.5, -1.0], 0.5, [0.01, 0.005, 0.0025])])
@pytest.mark.parametrize("order", [0, 1, 2])
def test_iterates_follow_the_modified_flow_to_order_p_plus_one(loss, x0, T, etas, order):
    loss = fs.Loss(loss) if isinstance(loss, str) else loss
    errors = []
    for eta in etas:
        steps = int(round(T / eta))
        gd = fs.gradient_descent(loss, x0, eta, steps)
        flow = modified_equation(loss, "gd", eta, order=order).flow(x0, T, t_eval=[T])
        errors.append(np.linalg.norm(gd.xs[-1] - flow.xs[-1]))
    slope = np.polyfit(np.log(etas), np.log(errors), 1)[0]
    assert slope == pytest.approx(order + 1, abs=0.15)


def test_heavy_ball_first_order_against_its_slow_eigenvalue():
    lam, beta = 2.0, 0.6
    L = fs.Loss("x**2")   # lambda = 2

    def rate(me):
        return float(me.field[0].subs(L.variables[0], 1))
    gaps = {0: [], 1: []}
    for h in (0.005, 0.0025):   # h lambda / (1 - beta)^2 small: the asymptotic regime
        T = np.array([[1 + beta - h * lam, -beta], [1, 0]])
        mu = max(np.linalg.eigvals(T).real)
        for p in (0, 1):
            gaps[p].append(abs(rate(modified_equation(L, "hb", h, order=p, momentum=beta))
                               - np.log(mu) / h))
    assert np.log2(gaps[0][0] / gaps[0][1]) == pytest.approx(1, abs=0.1)
    assert np.log2(gaps[1][0] / gaps[1][1]) == pytest.approx(2, abs=0.15)


def test_the_modified_loss_flows_like_the_modified_equation():
    L = losses.himmelblau()
    me = modified_equation(L, "gd", 0.02, order=1)
    a = me.flow([0.5, 0.5], 1.0, t_eval=[1.0])
    b = fs.gradient_flow(me.modified_loss, [0.5, 0.5], 1.0, rtol=1e-12, atol=1e-14)
    assert a.method == "modified_equation" and a.status is fs.Status.REACHED_END
    np.testing.assert_allclose(a.xs[-1], b.xs[-1], atol=1e-9)
    assert "f_2" in me.summary()


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "nag"}, "no symbolic one-step map"), ({"method": "gd", "order": 4}, "order"),
    ({"method": "hb", "order": 2}, "first order"), ({"method": "gd", "eta": -1.0}, "eta"),
    ({"method": "gradient_flow"}, "scheme")])
def test_bad_arguments(kwargs, match):
    args = {"eta": 0.1, "order": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        modified_equation("x**2 + y**2", args.pop("method"), **args)
