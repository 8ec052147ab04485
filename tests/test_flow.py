"""Continuous flows against closed forms, second-order limits and rates, and bad input."""
import warnings

import numpy as np
import pytest
import scipy.integrate

import flowsim as fs
from flowsim import Status, losses

ALL_METHODS = ["RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA"]


@pytest.mark.parametrize("method", ALL_METHODS)
def test_quadratic_flow_matches_matrix_exponential(method):
    A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
    loss = losses.quadratic(A, [1.0, -1.0, 0.5])
    x0 = np.array([0.0, 2.0, -1.0])
    rtol, atol = 1e-10, 1e-12
    traj = fs.gradient_flow(loss, x0, 4.0, method=method, rtol=rtol, atol=atol,
                            t_eval=np.linspace(0, 4, 9))
    assert traj.status is Status.REACHED_END
    exact = np.array([loss.facts.flow_solution(t, x0) for t in traj.ts])
    # global error of an adaptive solver is a modest multiple of its local tolerances
    np.testing.assert_allclose(traj.xs, exact, rtol=0, atol=2e3 * (atol + rtol))
    for t in (0.3, 1.7, 3.9):
        np.testing.assert_allclose(traj.at(t), loss.facts.flow_solution(t, x0), atol=1e-7)


def test_one_dimensional_bowl_is_exponential():
    traj = fs.gradient_flow("(x - 2)**2 / 2", [5.0], 3.0, method="DOP853", rtol=1e-12,
                            atol=1e-14)
    np.testing.assert_allclose(traj.xs[:, 0], 2 + 3 * np.exp(-traj.ts), rtol=1e-11)


def test_two_solvers_agree_on_rosenbrock():
    loss = losses.rosenbrock(2)
    a = fs.gradient_flow(loss, [-1.2, 1.0], 10.0, method="Radau", rtol=1e-11, atol=1e-13)
    b = fs.gradient_flow(loss, [-1.2, 1.0], 10.0, method="DOP853", rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(a.at(np.linspace(0, 10, 21)), b.at(np.linspace(0, 10, 21)),
                               atol=1e-7)


def test_matches_raw_solve_ivp_and_loss_decreases():
    loss = losses.himmelblau()
    x0 = np.array([0.5, -0.5])
    traj = fs.gradient_flow(loss, x0, 2.0, method="RK45", rtol=1e-9, atol=1e-12)
    ref = scipy.integrate.solve_ivp(lambda t, x: -loss.grad(x), (0, 2.0), x0, rtol=1e-9,
                                    atol=1e-12)
    np.testing.assert_allclose(traj.ts, ref.t)
    np.testing.assert_allclose(traj.xs, ref.y.T)
    assert np.all(np.diff(traj.values) <= 1e-12)
    assert traj.ngev >= ref.nfev - 1 and traj.nhev == 0


def test_implicit_methods_get_the_analytic_jacobian():
    loss = losses.rosenbrock(2)
    for method in ("LSODA", "BDF", "Radau"):
        loss.reset_counts()
        traj = fs.gradient_flow(loss, [-1.0, 1.0], 50.0, method=method)
        assert traj.nhev > 0, method
        assert np.allclose(traj.x_final, 1.0, atol=1e-6)
    lsoda = fs.gradient_flow(loss, [-1.0, 1.0], 50.0, method="LSODA")
    rk45 = fs.gradient_flow(loss, [-1.0, 1.0], 50.0, method="RK45")
    assert lsoda.ngev * 10 < rk45.ngev  # the stiff-aware default is far cheaper


def test_large_sparse_flow_uses_sparse_jacobian(monkeypatch):
    loss = losses.rosenbrock(200)
    x0 = np.full(200, 0.5)
    asked = []
    original = fs.Loss.hess

    def spy(self, x, sparse=False):
        asked.append(sparse)
        return original(self, x, sparse=sparse)

    monkeypatch.setattr(fs.Loss, "hess", spy)
    traj = fs.gradient_flow(loss, x0, 1.0, method="BDF", rtol=1e-6, atol=1e-8)
    assert asked and all(asked)  # every Jacobian the implicit solver took was sparse
    assert traj.nhev > 0
    monkeypatch.undo()
    for method in ("BDF", "LSODA"):
        traj = fs.gradient_flow(loss, x0, 5.0, method=method, rtol=1e-6, atol=1e-8)
        assert traj.status is Status.REACHED_END
        assert traj.values[-1] < traj.values[0]
    a = fs.gradient_flow(loss, x0, 1.0, method="BDF", rtol=1e-9, atol=1e-11)
    b = fs.gradient_flow(loss, x0, 1.0, method="LSODA", rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(a.x_final, b.x_final, atol=1e-6)


def test_statuses_converged_diverged_failed():
    conv = fs.gradient_flow("x**2 + y**2", [1.0, 1.0], 100.0, gtol=1e-8)
    assert conv.status is Status.CONVERGED and conv.grad_norms[-1] <= 1.1e-8
    assert conv.ts[-1] < 100.0
    up = fs.gradient_flow("x**2", [1.0], 50.0, maximize=True, max_norm=1e6)
    assert up.status is Status.DIVERGED and "max_norm" in up.message
    assert np.all(np.isfinite(up.xs)) and up.xs[-1, 0] > 1e6
    blow = fs.gradient_flow("-x**4", [1.0], 10.0)  # finite-time blow-up at t = 1/8
    assert blow.status in (Status.FAILED, Status.DIVERGED)
    assert blow.ts[-1] == pytest.approx(0.125, rel=1e-3) and np.all(np.isfinite(blow.xs))


def test_budget_and_no_warning_flood():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        traj = fs.gradient_flow("log(x)", [0.5], 10.0, method="RK45")
    # x' = -1/x from 0.5: x(t)^2 = 0.25 - 2t reaches the singularity x = 0 at t = 1/8
    assert traj.status in (Status.FAILED, Status.DIVERGED)
    assert abs(traj.ts[-1] - 0.125) < 1e-6
    early = traj.ts < 0.12
    np.testing.assert_allclose(traj.xs[early, 0], np.sqrt(0.25 - 2 * traj.ts[early]), rtol=1e-4)
    assert np.all(np.isfinite(traj.values))
    short = fs.gradient_flow(losses.rosenbrock(2), [-1.0, 1.0], 50.0, method="RK45",
                             max_steps=10)
    assert short.status is Status.FAILED and "max_steps" in short.message
    assert short.n_points == 11


@pytest.mark.parametrize("kwargs, match", [
    (dict(x0=[1.0, 2.0, 3.0]), r"x0 must have shape \(2,\) or \(m, 2\)"),
    (dict(x0=[np.nan, 1.0]), "x0 must be finite"),
    (dict(t_end=0.0), "t_end must be a finite number > 0"),
    (dict(t_end=-1.0), "t_end must be a finite number > 0"),
    (dict(method="Euler"), "method must be one of"),
    (dict(rtol=0.0), "rtol must be"),
    (dict(atol=-1.0), "atol must be"),
    (dict(t_eval=[0.5, 0.2]), "t_eval must be an increasing"),
])
def test_bad_input_raises(kwargs, match):
    args = dict(loss=losses.rosenbrock(2), x0=[0.0, 0.0], t_end=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fs.gradient_flow(**args)


def test_gradient_undefined_at_start_raises():
    with pytest.raises(ValueError, match="the loss or its gradient is not finite at the start"):
        fs.gradient_flow("log(x) + y**2", [-1.0, 0.0], 1.0)


def test_batch_matches_one_by_one():
    loss = losses.rosenbrock(2)
    X = np.random.default_rng(1).uniform(-1.5, 1.5, size=(6, 2))
    ts = np.linspace(0, 0.5, 6)
    batch = fs.gradient_flow(loss, X, 0.5, method="RK45", rtol=1e-10, atol=1e-12, t_eval=ts)
    assert batch.xs.shape == (6, 6, 2) and len(batch) == 6
    for i, x0 in enumerate(X):
        one = fs.gradient_flow(loss, x0, 0.5, method="RK45", rtol=1e-10, atol=1e-12,
                               t_eval=ts)
        np.testing.assert_allclose(batch.xs[i], one.xs, atol=1e-7)
        assert batch.trajectory(i).status is Status.REACHED_END
    stiff = fs.gradient_flow(loss, X, 0.5, method="BDF", rtol=1e-10, atol=1e-12, t_eval=ts)
    np.testing.assert_allclose(stiff.xs, batch.xs, atol=1e-6)
    assert stiff.nhev > 0
    np.testing.assert_allclose(batch.dense(0.25)[2], batch.trajectory(2).dense(0.25))


def test_batch_marks_diverging_starts_without_stalling_others():
    traj = fs.gradient_flow("x**2", [[1.0], [1e-3]], 3.0, maximize=True, max_norm=10.0,
                            method="RK45", rtol=1e-10, atol=1e-12)
    assert traj.status == (Status.DIVERGED, Status.REACHED_END)
    np.testing.assert_allclose(traj.x_final[1], 1e-3 * np.exp(6.0), rtol=1e-8)


def test_heavy_ball_energy_and_small_mass_limit():
    loss = losses.quadratic(np.diag([1.0, 4.0]))
    x0 = np.array([1.0, 1.0])
    hb = fs.heavy_ball_flow(loss, x0, 10.0, mass=1.0, friction=0.5, rtol=1e-10, atol=1e-12,
                            t_eval=np.linspace(0, 10, 4001))
    E = hb.extras["energy"]
    assert np.all(np.diff(E) <= 1e-10)
    # dE/dt = -gamma |v|^2, checked by integrating the right-hand side along the path
    dissipated = scipy.integrate.trapezoid(0.5 * np.sum(hb.extras["velocities"] ** 2, axis=1),
                                           hb.ts)
    assert E[0] - E[-1] == pytest.approx(dissipated, rel=1e-4)
    gaps = []
    for m in (0.1, 0.01, 0.001):
        t = np.linspace(0.5, 3.0, 11)
        heavy = fs.heavy_ball_flow(loss, x0, 3.0, mass=m, friction=1.0, t_eval=t)
        exact = np.array([loss.facts.flow_solution(s, x0) for s in t])
        gaps.append(np.abs(heavy.xs - exact).max())
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.01
    assert gaps[1] / gaps[2] > 5  # shrinks like O(m)


def test_nesterov_ode_rate_and_start_at_zero():
    loss = losses.quadratic(np.diag([1.0, 0.01]))
    x0 = np.array([1.0, 1.0])
    traj = fs.nesterov_flow(loss, x0, 200.0, rtol=1e-10, atol=1e-12)
    assert traj.ts[0] == 0.0 and np.allclose(traj.xs[0], x0)
    # Su-Boyd-Candes: L(x(t)) - L* <= 2 |x0 - x*|^2 / t^2 for r = 3
    t = traj.ts[traj.ts > 1.0]
    bound = 2 * np.sum(x0 ** 2) / t ** 2
    assert np.all(traj.values[traj.ts > 1.0] <= bound)
    # 1-D check against the closed form: x'' + (3/t) x' + x = 0 gives x = 2 J1(t) / t
    from scipy.special import j1
    one = fs.nesterov_flow("x**2/2", [1.0], 10.0, method="Radau", rtol=1e-11, atol=1e-13,
                           t_eval=np.linspace(0.5, 10, 20))
    np.testing.assert_allclose(one.xs[:, 0], 2 * j1(one.ts) / one.ts, atol=1e-7)
    late = fs.nesterov_flow("x**2/2", [1.0], 10.0, t0=1.0)
    assert late.ts[0] == 1.0


def test_newton_flow_gradient_decays_like_exp():
    loss = losses.rosenbrock(2)
    x0 = np.array([1.2, 1.2])
    traj = fs.newton_flow(loss, x0, 5.0, rtol=1e-10, atol=1e-12,
                          t_eval=np.linspace(0, 5, 6))
    g0 = loss.grad(x0)
    for t, x in zip(traj.ts, traj.xs):
        np.testing.assert_allclose(loss.grad(x), np.exp(-t) * g0, rtol=1e-6, atol=1e-9)
    saddle = fs.newton_flow("x**2 - y**2", [1.0, 1.0], 1.0)
    assert saddle.status is Status.FAILED and "not positive definite" in saddle.message


@pytest.mark.parametrize("method", ["RK45", "Radau"])
def test_newton_flow_batch_on_every_engine_decays_like_exp(method):
    """A batch of Newton flows on the explicit and the implicit engine (its Jacobian by finite
    differences of the one field): grad L(x(t)) = e^{-t} grad L(x0) at every output; gtol
    tests |grad L|, as one start does."""
    loss = fs.Loss("x**4/4 + y**2 + x*y/2")
    X = np.array([[1.0, 1.0], [2.0, -1.0], [-1.5, 0.5]])
    batch = fs.newton_flow(loss, X, 5.0, method=method, rtol=1e-10, atol=1e-12)
    assert batch.label.endswith("batched on " + ("DP5" if method == "RK45" else "RODAS4"))
    for i, x0 in enumerate(X):
        expected = np.exp(-batch.ts)[:, None] * loss.grad(x0)
        np.testing.assert_allclose(loss.grad(batch.xs[i]), expected, rtol=1e-6, atol=1e-9)
    stopped = fs.newton_flow(loss, X, 50.0, method=method, gtol=1e-3)
    g = np.linalg.norm(loss.grad(stopped.x_final), axis=1)
    assert all(s is Status.CONVERGED for s in stopped.status) and np.all(g <= 1e-3)
    assert np.all(g > 1e-3 * np.exp(-1.0))   # it stopped near the first such time


@pytest.mark.parametrize("method", ["RK45", "BDF"])
def test_batch_keeps_error_control_per_start(method):
    # each start has its own error control, as in one solve per start
    loss = losses.rosenbrock(2)
    X = np.random.default_rng(0).uniform(-2, 2, size=(4000, 2))
    batch = fs.gradient_flow(loss, X, 1.0, method=method, rtol=1e-6, atol=1e-9, t_eval=[1.0])
    ref = fs.gradient_flow(loss, X, 1.0, method="DOP853", rtol=1e-12, atol=1e-14,
                           t_eval=[1.0])  # a tight reference, every start at once
    # one solve per start at rtol 1e-6 errs by up to about 2e-6 here
    assert np.abs(batch.x_final - ref.x_final).max() < 2e-5


def test_batch_statuses_converged():
    conv = fs.gradient_flow("x**2", [[1.0], [2.0]], 100.0, gtol=1e-6)
    assert conv.status == (Status.CONVERGED, Status.CONVERGED)
    gd = fs.gradient_descent("x**2", [[1.0], [2.0]], 0.1, 1000, gtol=1e-8)
    assert gd.status == (Status.CONVERGED, Status.CONVERGED) and gd.xs.shape[1] < 1001
