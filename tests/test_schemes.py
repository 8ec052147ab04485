"""Discrete schemes against closed forms (seeds' textbook cases), properties and errors."""
import numpy as np
import pytest
import scipy.optimize
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import flowsim as fs
from flowsim import Loss, Status, losses, schedules

A3 = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 0.5]])
XSTAR = np.array([1.0, -2.0, 0.5])


def test_gd_on_quadratic_is_matrix_power():
    loss = losses.quadratic(A3, XSTAR)
    x0, eta = np.array([3.0, 1.0, -1.0]), 0.2
    traj = fs.gradient_descent(loss, x0, eta, 40)
    M = np.eye(3) - eta * A3
    exact = np.array([np.linalg.matrix_power(M, k) @ (x0 - XSTAR) + XSTAR for k in range(41)])
    np.testing.assert_allclose(traj.xs, exact, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(traj.ts, eta * np.arange(41))


def test_proximal_point_on_quadratic_is_inverse_power():
    loss = losses.quadratic(A3, XSTAR)
    x0, eta = np.array([3.0, 1.0, -1.0]), 0.7
    traj = fs.proximal_point(loss, x0, eta, 25)
    R = np.linalg.inv(np.eye(3) + eta * A3)
    exact = np.array([np.linalg.matrix_power(R, k) @ (x0 - XSTAR) + XSTAR for k in range(26)])
    np.testing.assert_allclose(traj.xs, exact, rtol=1e-12, atol=1e-12)
    assert np.all(traj.extras["residuals"][:-1] < 1e-12)


@pytest.mark.parametrize("eta", [0.1, 0.5, 1.0, 1.5, 2.1])
def test_bowl_contracts_by_one_minus_eta(eta):
    x_star = np.array([1.0, -1.0])
    x0 = np.array([3.0, 2.0])
    traj = fs.gradient_descent(losses.quadratic(np.eye(2), x_star), x0, eta, 30)
    dist = np.linalg.norm(traj.xs - x_star, axis=1)
    np.testing.assert_allclose(dist, abs(1 - eta) ** np.arange(31) * np.linalg.norm(x0 - x_star),
                               rtol=1e-12, atol=1e-15)
    assert traj.status is (Status.DIVERGED if eta == 2.1 else Status.REACHED_END)


def test_two_w_squared_converges_for_eta_below_half_and_in_one_step_at_quarter():
    loss = Loss("2*w**2")
    for eta in (0.05, 0.2, 0.25, 0.45):
        assert abs(fs.gradient_descent(loss, [1.0], eta, 200).x_final[0]) < 1e-6
    assert fs.gradient_descent(loss, [1.0], 0.25, 1).x_final[0] == 0.0
    assert fs.gradient_descent(loss, [1.0], 0.55, 200).status is Status.DIVERGED


def test_best_fixed_step_for_w1_4w2():
    loss = Loss("(w1**2 + 4*w2**2)/2")
    traj = fs.gradient_descent(loss, [1.0, 1.0], 0.4, 30)
    # rate 3/5 per step in both directions at the best step 2/(1 + 4) = 0.4
    np.testing.assert_allclose(np.abs(traj.xs[1:] / traj.xs[:-1]), 0.6, rtol=1e-12)


def test_linear_regression_worked_example():
    mse = Loss.from_samples("(a*x + b - y)**2", {"x": [1.0, 2, 3, 4], "y": [2.0, 4, 5, 4]},
                            variables=("a", "b"))
    traj = fs.gradient_descent(mse, [0.0, 0.0], 0.01, 500)
    np.testing.assert_allclose(traj.x_final, [0.81995, 1.64734], atol=5e-6)
    assert np.allclose(fs.gradient_descent(mse, [0.0, 0.0], 0.05, 5000).x_final, [0.7, 2.0])


def test_gd_fast_path_matches_numpy_loop():
    # the Python-float loop (no params) against the numpy loop (with a param)
    plain = Loss("(1-x)**2 + 100*(y-x**2)**2")
    param = Loss("(1-x)**2 + b*(y-x**2)**2", params={"b": 100.0})
    a = fs.gradient_descent(plain, [-1.2, 1.0], 1e-3, 500)
    b = fs.gradient_descent(param, [-1.2, 1.0], 1e-3, 500)
    np.testing.assert_allclose(a.xs, b.xs, rtol=1e-13, atol=1e-14)
    assert a.ngev == b.ngev == 500


def test_gd_schedules_armijo_and_ascent():
    loss = losses.rosenbrock(2)
    sched = schedules.inverse_time(1e-3, 0.01)
    traj = fs.gradient_descent(loss, [-1.2, 1.0], sched, 100)
    np.testing.assert_allclose(np.diff(traj.ts), sched(np.arange(100)))
    steps = schedules.step_decay(1e-3, (50,), 0.5)
    assert fs.gradient_descent(loss, [-1.2, 1.0], steps, 100).ts[-1] == pytest.approx(
        50e-3 + 50 * 0.5e-3)
    armijo = fs.gradient_descent(loss, [-1.2, 1.0], 1.0, 200, line_search="armijo")
    a = armijo.extras["step_sizes"][:-1]
    # the sufficient-decrease inequality at every step, and the step is the first trial
    # 1, 1/2, 1/4, ... that passes it (so twice the step would have failed)
    f, g = armijo.values, armijo.grad_norms
    assert np.all(f[1:] <= f[:-1] - 1e-4 * a * g[:-1] ** 2)
    np.testing.assert_array_equal(np.log2(a), np.round(np.log2(a)))
    np.testing.assert_allclose(np.diff(armijo.ts), a)
    doubled = armijo.xs[:-1] - 2 * a[:, None] * loss.grad(armijo.xs[:-1])
    first_trial = a == 1.0
    assert np.all((loss.value(doubled) > f[:-1] - 1e-4 * 2 * a * g[:-1] ** 2)[~first_trial])
    assert armijo.values[-1] < fs.gradient_descent(loss, [-1.2, 1.0], 1e-3, 200).values[-1]
    up = fs.gradient_descent("-(x - 2)**2", [0.0], 0.25, 20, maximize=True)
    assert up.x_final[0] == pytest.approx(2.0)


def test_gd_statuses():
    conv = fs.gradient_descent("x**2", [1.0], 0.1, 1000, gtol=1e-8)
    assert conv.status is Status.CONVERGED and conv.grad_norms[-1] <= 1e-8
    assert conv.n_points < 1000
    away = fs.gradient_descent("x**2", [1.0], 1.5, 1000, max_norm=1e6)
    assert away.status is Status.DIVERGED and "max_norm" in away.message
    assert np.all(np.isfinite(away.xs))
    nan = fs.gradient_descent("log(x)", [1.0], 2.0, 10)  # x -> -1: outside the domain
    assert nan.status is Status.DIVERGED and np.all(np.isfinite(nan.values))


def test_proximal_point_stable_where_gd_blows_up():
    loss = losses.ill_conditioned_quadratic(1e4)
    eta = 100 * 2 / 1e4
    gd = fs.gradient_descent(loss, [1.0, 1.0], eta, 50)
    prox = fs.proximal_point(loss, [1.0, 1.0], eta, 50)
    assert gd.status is Status.DIVERGED
    assert prox.status is Status.REACHED_END and np.all(np.diff(prox.values) <= 0)


def test_proximal_point_fallback_and_failure():
    # non-convex with a huge step: I + eta H is indefinite at the start, the fallback solves
    traj = fs.proximal_point(losses.double_well(), [0.1, 0.5], 50.0, 3)
    assert traj.status is Status.REACHED_END
    y = traj.xs[1]
    np.testing.assert_allclose(y + 50.0 * losses.double_well().grad(y), traj.xs[0], atol=1e-9)
    # its answer is the proximal point: the global minimizer of the proximal objective
    x0 = traj.xs[0]
    ref = min((scipy.optimize.minimize(lambda z: losses.double_well().value(z)
                                       + np.sum((z - x0) ** 2) / 100, s) for s in
               ([1.0, 0.0], [-1.0, 0.0])), key=lambda r: r.fun)
    np.testing.assert_allclose(y, ref.x, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), eta=st.floats(1e-3, 1e3))
def test_proximal_point_never_increases_a_convex_loss(seed, eta):
    rng = np.random.default_rng(seed)
    loss = Loss(f"{float(np.exp(rng.normal()))}*log(1 + exp(x - y)) + (x + z)**4 + y**2/2")
    traj = fs.proximal_point(loss, rng.normal(size=3) * 2, eta, 8)
    assert traj.status is Status.REACHED_END
    assert np.all(np.diff(traj.values) <= 1e-12 * (1 + np.abs(traj.values[:-1])))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), factor=st.floats(0.05, 3.0))
def test_gd_on_random_spd_diverges_exactly_above_two_over_lambda_max(seed, factor):
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    lam = np.sort(np.exp(rng.uniform(-1, 2, size=3)))
    A = (Q * lam) @ Q.T
    A = (A + A.T) / 2
    eta = factor * 2 / lam[-1]
    assume(abs(factor - 1) >= 0.02)  # at the boundary growth is too slow to call in 400 steps
    x0 = Q[:, -1] + 0.1 * Q[:, 0]
    traj = fs.gradient_descent(losses.quadratic(A), x0, eta, 400)
    assert (traj.status is Status.DIVERGED) == (factor > 1)


def test_proximal_gradient_lasso_matches_optimality_conditions(rng):
    X = rng.normal(size=(40, 6))
    y = X @ np.array([2.0, 0, 0, -1.0, 0, 0]) + 0.05 * rng.normal(size=40)
    lam = 0.1
    comp = losses.lasso(X, y, lam)
    L = np.linalg.eigvalsh(X.T @ X / 40).max()
    traj = fs.proximal_gradient(comp, np.zeros(6), 1 / L, 3000)
    w = traj.x_final
    g = X.T @ (X @ w - y) / 40
    zero = np.abs(w) < 1e-10
    # KKT: grad f = -lam sign(w) on the support, |grad f| <= lam off it
    np.testing.assert_allclose(g[~zero], -lam * np.sign(w[~zero]), atol=1e-8)
    assert np.all(np.abs(g[zero]) <= lam + 1e-8)
    assert zero.sum() >= 3
    assert traj.grad_norms[-1] < 1e-8
    assert np.all(np.diff(traj.values) <= 1e-12)
    with pytest.raises(ValueError, match="prox must be a penalty"):
        fs.proximal_gradient(comp.smooth, np.zeros(6), 0.1, 10)


def _two_term_recurrence(a, b, x0, x1, k):
    """Closed form of x_{j+1} = a x_j - b x_{j-1}: c1 r1^j + c2 r2^j with the roots of
    r^2 - a r + b = 0 (complex when the iteration oscillates)."""
    r1, r2 = np.roots([1.0, -a, b]).astype(complex)
    c2 = (x1 - r1 * x0) / (r2 - r1)
    c1 = x0 - c2
    return (c1 * r1 ** k + c2 * r2 ** k).real


@pytest.mark.parametrize("eta, beta", [(0.01, 0.9), (0.05, 0.5), (0.15, 0.3)])
def test_heavy_ball_on_a_quadratic_is_its_two_term_recurrence(eta, beta):
    lam = np.array([1.0, 10.0])
    hb = fs.heavy_ball(losses.quadratic(np.diag(lam)), [1.0, 1.0], eta, 200, momentum=beta)
    k = np.arange(201)
    for i, l in enumerate(lam):  # x_{k+1} = (1 + beta - eta l) x_k - beta x_{k-1}, x_1 = (1 - eta l)
        expected = _two_term_recurrence(1 + beta - eta * l, beta, 1.0, 1 - eta * l, k)
        np.testing.assert_allclose(hb.xs[:, i], expected, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(hb.ts, np.sqrt(eta) * k, rtol=1e-13)


def test_nesterov_with_constant_momentum_is_its_two_term_recurrence():
    lam, eta, beta = np.array([1.0, 10.0]), 0.05, 0.6
    nag = fs.nesterov(losses.quadratic(np.diag(lam)), [1.0, 1.0], eta, 150, momentum=beta)
    k = np.arange(151)
    for i, l in enumerate(lam):  # x_{k+1} = (1 - eta l)((1 + beta) x_k - beta x_{k-1})
        q = 1 - eta * l
        expected = _two_term_recurrence(q * (1 + beta), q * beta, 1.0, q, k)
        np.testing.assert_allclose(nag.xs[:, i], expected, rtol=1e-9, atol=1e-13)


def test_nesterov_converges_to_the_bessel_solution_of_its_ode():
    # on L = x^2/2, x'' + (3/t) x' + x = 0 with x(0) = 1, x'(0) = 0 has the solution
    # x(t) = 2 J_1(t) / t (Su, Boyd and Candes); NAG with step s sits at t_k = k sqrt(s)
    import scipy.special
    errors = []
    for s in (1e-2, 2.5e-3, 6.25e-4):
        steps = int(round(6.0 / np.sqrt(s)))
        nag = fs.nesterov("x**2/2", [1.0], s, steps)
        t = nag.ts[1:]
        errors.append(np.max(np.abs(nag.xs[1:, 0] - 2 * scipy.special.j1(t) / t)))
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(rates, 1.0, atol=0.15)  # first order in h = sqrt(s)
    assert errors[-1] < 0.02


def test_newton_full_damped_and_singular():
    q = losses.quadratic(np.array([[2.0, 1.0], [1.0, 3.0]]), [1.0, -2.0])
    one = fs.newton(q, [5.0, 5.0], 1.0, 1)
    np.testing.assert_allclose(one.x_final, [1.0, -2.0], rtol=1e-14)  # one step on a quadratic
    damped = fs.newton(q, [5.0, 5.0], 0.3, 12)  # the Newton flow's grad L(x_k) = 0.7^k grad L(x_0)
    np.testing.assert_allclose(damped.grad_norms, damped.grad_norms[0] * 0.7 ** np.arange(13),
                               rtol=1e-12)
    np.testing.assert_allclose(damped.ts, 0.3 * np.arange(13), rtol=1e-14)
    newton = fs.newton(losses.rosenbrock(2), [-1.2, 1.0], 1.0, 10)
    np.testing.assert_allclose(newton.x_final, [1.0, 1.0], atol=1e-12)
    with pytest.raises(ValueError, match="damping of the Newton step"):
        fs.newton(q, [1.0, 1.0], 2.0, 3)
    singular = fs.newton("x**4 + y**2", [0.0, 1.0], 1.0, 3)
    assert singular.status is Status.FAILED and "singular" in singular.message


def test_sgd_and_heun():
    q = losses.quadratic(np.diag([1.0, 10.0]))
    mse = Loss.from_samples("(a*x + b - y)**2", {"x": [1.0, 2, 3, 4], "y": [2.0, 4, 5, 4]},
                            variables=("a", "b"))
    a = fs.sgd(mse, [0.0, 0.0], 0.01, 200, batch_size=1, seed=3)
    b = fs.sgd(mse, [0.0, 0.0], 0.01, 200, batch_size=1, seed=3)
    np.testing.assert_array_equal(a.xs, b.xs)
    full = fs.sgd(mse, [0.0, 0.0], 0.01, 200, batch_size=4)
    np.testing.assert_allclose(full.xs, fs.gradient_descent(mse, [0.0, 0.0], 0.01, 200).xs,
                               rtol=1e-12)
    with pytest.raises(ValueError, match="finite-sum loss"):
        fs.sgd(q, [1.0, 1.0], 0.1, 10)
    heun = fs.heun(q, [1.0, 1.0], 0.05, 10)
    factor = 1 - 0.05 * 10 + (0.05 * 10) ** 2 / 2  # the RK2 amplification on lambda = 10
    np.testing.assert_allclose(heun.xs[:, 1], factor ** np.arange(11), rtol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: fs.gradient_descent("x**2", [1.0], 0.0, 10), "eta must be a finite number > 0"),
    (lambda: fs.gradient_descent("x**2", [1.0], 0.1, 0), "steps must be an integer >= 1"),
    (lambda: fs.gradient_descent("x**2", [1.0, 2.0], 0.1, 5), r"x0 must have shape \(1,\)"),
    (lambda: fs.gradient_descent("x**2", [np.inf], 0.1, 5), "x0 must be finite"),
    (lambda: fs.gradient_descent("x**2", [1.0], 0.1, 5, line_search="wolfe"), "line_search"),
    (lambda: fs.gradient_descent("x**2", [1.0], lambda k: -1.0, 5), "schedule must give"),
    (lambda: fs.heavy_ball("x**2", [1.0], 0.1, 5, momentum=1.0), "momentum must lie in"),
    (lambda: fs.proximal_point("x**2", [1.0], 0.1, 5, tol=0), "tol must be"),
])
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_step_failed_keeps_iterates():
    # on x^2 the Armijo test with c = 0.9999 needs a step <= 1 - c = 1e-4, beyond the 60
    # shrinks by 0.9 from 1 (0.9^60 = 1.8e-3): the first step must fail
    traj = fs.gradient_descent("x**2", [1.0], 1.0, 5, line_search="armijo", c=0.9999,
                               shrink=0.9)
    assert traj.status is Status.FAILED and "Armijo" in traj.message
    np.testing.assert_array_equal(traj.xs, [[1.0]])
    ok = fs.gradient_descent("x**2", [1.0], 1.0, 5, line_search="armijo", c=0.9999,
                             shrink=0.5)  # 0.5^14 < 1e-4: reachable, so every step succeeds
    assert ok.status is Status.REACHED_END and np.all(ok.extras["step_sizes"][:-1] <= 1e-4)


def test_batched_gd_matches_single_runs_and_freezes_divergent_starts():
    loss = losses.rosenbrock(2)
    X0 = np.array([[-1.2, 1.0], [0.5, 0.5], [2.0, -1.0]])
    batch = fs.gradient_descent(loss, X0, 1e-3, 50)
    assert batch.xs.shape == (3, 51, 2)
    for i, x0 in enumerate(X0):
        np.testing.assert_allclose(batch.xs[i], fs.gradient_descent(loss, x0, 1e-3, 50).xs,
                                   rtol=1e-12)
    np.testing.assert_allclose(batch.values[1], loss.value(batch.xs[1]))
    bowl = losses.quadratic(np.diag([1.0, 100.0]))
    wild = fs.gradient_descent(bowl, [[1.0, 0.0], [0.0, 1.0]], 0.025, 400, max_norm=1e3)
    assert wild.status == (Status.REACHED_END, Status.DIVERGED)
    assert np.all(np.isfinite(wild.xs)) and np.all(wild.xs[1, -1] == wild.xs[1, -2])
    with pytest.raises(ValueError, match="line_search works on one start"):
        fs.gradient_descent(loss, X0, 1e-3, 5, line_search="armijo")


ROSEN = losses.rosenbrock(2)
RULED = [m.name for m in fs.methods.schemes() if m.rule is not None]


@pytest.mark.parametrize("name", RULED)
def test_a_scheme_run_in_blocks_of_starts_gives_the_numbers_of_one_block(monkeypatch, name):
    from flowsim import _numeric
    # Rosenbrock from a wide box: starts converge (gtol), leave max_norm and run to the end,
    # at different steps in every block
    X = np.random.default_rng(3).uniform(-2.5, 2.5, (45, 2))
    function = fs.methods.get(name).function
    kw = dict(gtol=1e-2, max_norm=30.0)
    # the adaptive methods on a bowl, where their steps of about eta stop them at steps set
    # by each start's distance
    loss, eta = {"adam": ("x**2 + 3*y**2", 0.05), "rmsprop": ("x**2 + 3*y**2", 0.05),
                 "adagrad": ("x**2 + 3*y**2", 0.2), "sign_descent": ("x**2 + 3*y**2", 0.01),
                 "newton": (ROSEN, 0.5)}.get(name, (ROSEN, 1e-3))
    runs = {}
    for entries in (10 ** 9, 2 * 7):   # one block; blocks of 7 starts
        monkeypatch.setattr(_numeric, "BLOCK_ROWS_MIN", 1)
        monkeypatch.setattr(_numeric, "BLOCK_ENTRIES", entries)
        runs[entries] = [function(loss, X, eta, 300, **kw, **record)
                         for record in ({}, {"record": "final"}, {"record_every": 9})]
    for one, blocked in zip(runs[10 ** 9], runs[14]):
        np.testing.assert_array_equal(blocked.ts, one.ts)
        np.testing.assert_array_equal(blocked.xs, one.xs)
        np.testing.assert_array_equal(blocked.values, one.values)
        np.testing.assert_array_equal(blocked.t_stop, one.t_stop)
        assert blocked.status == one.status and blocked.message == one.message
        assert blocked.ngev == one.ngev
        for key in one.extras:
            np.testing.assert_array_equal(blocked.extras[key], one.extras[key])
    assert len(set(runs[14][0].message)) > 3   # the starts stop at different steps


def test_proximal_points_fallback_polish_solves_sparse_for_many_variables(monkeypatch):
    import importlib
    pp = importlib.import_module("flowsim.schemes.proximal_point")
    polished = []
    polish = pp._newton_polish

    def spy(loss, x, eta, y, iterations=8):
        out = polish(loss, x, eta, y, iterations)
        polished.append((y.size, out[2]))
        return out
    monkeypatch.setattr(pp, "_newton_polish", spy)
    # 120 variables (past SPARSE_FROM) from a point where I + eta H is not positive
    # definite: the Newton loop gives way to the minimizer, whose answer is polished
    L = losses.rosenbrock(120)
    x0 = np.tile([-0.5, 0.9], 60)
    for eta in (0.05, 0.5):
        polished.clear()
        tr = fs.proximal_point(L, x0, eta, 3)
        assert polished and all(n == 120 and taken >= 1 for n, taken in polished)
        # the implicit equation itself: x_{k+1} + eta grad L(x_{k+1}) = x_k
        for k in range(3):
            F = tr.xs[k + 1] + eta * L.grad(tr.xs[k + 1]) - tr.xs[k]
            assert np.linalg.norm(F) <= 1e-10 * (1 + np.linalg.norm(tr.xs[k]))
