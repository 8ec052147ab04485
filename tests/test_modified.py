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

    def rate(me):   # the field is in the scheme's time k sqrt(eta); the rate in t = k eta
        return float(me.field[0].subs(L.variables[0], 1)) * me.step / me.eta
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
    ({"method": "gradient_flow"}, "scheme"),
    ({"method": "hb", "momentum": 1.0}, r"momentum must be a real number in \[0, 1\)"),
    ({"method": "hb", "momentum": "0.5"}, "momentum must be a real number"),
    ({"method": "hb", "momentum": float("nan")}, "momentum"),
    ({"method": "gd", "momentum": 0.5}, "momentum: not an option"),
    ({"method": "gd", "max_terms": 0}, "max_terms"),
    ({"method": "gd", "time_limit": "1"}, "time_limit")])
def test_bad_arguments(kwargs, match):
    args = {"eta": 0.1, "order": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        modified_equation("x**2 + y**2", args.pop("method"), **args)


def test_the_heavy_ball_follows_its_field_to_second_order_only_from_the_slow_manifold():
    L = fs.Loss(CONVEX)
    x0, beta, T, etas = [1.5, -1.0], 0.5, 1.0, [0.004, 0.002, 0.001]
    slopes = {}
    for slow in (False, True):
        errors = []
        for eta in etas:
            me = modified_equation(L, "hb", eta, order=1, momentum=beta)
            hb = fs.heavy_ball(L, x0, eta, int(round(T / eta)), momentum=beta)
            flow = me.flow(x0, t_eval=hb.ts[-1:], slow_manifold=slow)  # the scheme's times
            errors.append(np.linalg.norm(hb.xs[-1] - flow.xs[-1]))
        slopes[slow] = np.polyfit(np.log(etas), np.log(errors), 1)[0]
    assert slopes[False] == pytest.approx(1, abs=0.15)
    assert slopes[True] == pytest.approx(2, abs=0.15)


def test_the_flow_takes_the_schemes_own_times_and_keeps_a_dense_solution():
    L = fs.Loss(CONVEX)
    gd = fs.gradient_descent(L, [1.5, -1.0], 0.01, 100)
    me = modified_equation(L, "gd", 0.01, order=2)
    summed = np.concatenate([[0.0], np.cumsum(np.full(100, 0.01))])  # ends a few ulps past 1
    assert summed[-1] > 1.0
    assert me.flow([1.5, -1.0], 1.0, t_eval=summed).ts[-1] == 1.0
    flow = me.flow([1.5, -1.0], t_eval=gd.ts)
    assert len(flow.ts) == len(gd.ts) and flow.status is fs.Status.REACHED_END
    np.testing.assert_allclose(flow.at(0.5), flow.dense(0.5), atol=0)
    assert np.max(np.linalg.norm(flow.xs - gd.xs, axis=1)) < 5e-5   # O(eta^3): 1e-5


def test_a_blow_up_of_the_modified_flow_is_diverged_and_a_bad_start_refused():
    me = modified_equation("-x**4", "gd", 0.1, order=0)   # x' = 4 x^3: blow-up at t = 1/8
    traj = me.flow([1.0], 5.0)
    assert traj.status is fs.Status.DIVERGED and np.all(np.isfinite(traj.xs))
    with pytest.raises(ValueError, match="x0"):
        modified_equation("log(x)", "gd", 0.1).flow([-1.0], 1.0)
    with pytest.raises(ValueError, match="x0"):
        me.flow([np.nan], 1.0)


def test_non_polynomial_modified_loss_params_and_data():
    # the modified loss L + eta/4 |grad L|^2 on a loss with exp/log, checked by its gradient
    L = fs.Loss("exp(x/2) + log(1 + y**2) + x*y")
    me = modified_equation(L, "gd", 0.05, order=1)
    x = np.array([0.3, -0.7])
    g, H = L.grad(x), L.hess(x)
    np.testing.assert_allclose(me.modified_loss.grad(x), g + 0.05 / 2 * H @ g, rtol=1e-12)
    # parameters are bound: the same terms as the loss with the numbers written in
    P = fs.Loss("a*x**2 + b*x*y + y**4", params={"a": 1.5, "b": 0.5})
    Q = fs.Loss("1.5*x**2 + 0.5*x*y + y**4")
    for p, q in zip(modified_equation(P, "gd", 0.1, order=2).terms,
                    modified_equation(Q, "gd", 0.1, order=2).terms):
        assert sp.expand(p - q) == sp.zeros(2, 1)
    # a finite sum is its mean over the samples: GD's field against -grad - eta/2 H grad
    fit = fs.Loss.from_samples("(a*x + b - y)**2", {"x": [1, 2, 3], "y": [2, 4, 5]},
                               variables=("a", "b"))
    me = modified_equation(fit, "gd", 0.01, order=1)
    w = np.array([0.4, 0.9])
    g, H = fit.grad(w), fit.hess(w)
    np.testing.assert_allclose(me(w), -g - 0.01 / 2 * H @ g, rtol=1e-12)


def test_kinks_budget_and_pickling():
    import pickle
    import time
    with pytest.raises(ValueError, match="smooth loss"):
        modified_equation("abs(x) + x**2", "gd", 0.1)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="max_terms"):
        modified_equation("exp(x1+x2+x3+x4+x5+x6+x7+x8)", "heun", 0.1, order=3)
    assert time.perf_counter() - start < 5
    me = modified_equation("x**4/4 + y**2", "gd", 1e300, order=2)   # huge, not an overflow
    assert np.all(np.isinf(me([1.0, 1.0])) | np.isfinite(me([1.0, 1.0])))
    me = modified_equation("x**4/4 + y**2", "gd", 0.1)
    before = me([1.0, 2.0])
    again = pickle.loads(pickle.dumps(me))     # after a call (kernels cached) too
    np.testing.assert_array_equal(again([1.0, 2.0]), before)
