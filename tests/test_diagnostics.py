"""Diagnostics: Lyapunov checks, critical points, saddle escape, step-size stability."""
import collections

import numpy as np
import pytest

import flowsim as fs
from flowsim import PointKind, losses


def _counts(points):
    return collections.Counter(p.kind.value for p in points)


@pytest.mark.parametrize("method, status", [("auto", "proven"), ("interval", "proven"),
                                            ("symbolic", "proven"), ("newton", "sampled")])
def test_himmelblau_and_camel_all_critical_points(method, status):
    h = fs.critical_points(losses.himmelblau(), (-5, 5), method=method)
    assert _counts(h) == {"minimum": 4, "maximum": 1, "saddle": 4}
    c = fs.critical_points(losses.six_hump_camel(), [(-3, 3), (-2, 2)], method=method)
    assert _counts(c) == {"minimum": 6, "maximum": 2, "saddle": 7}
    assert h.status == c.status == status
    for p in list(h) + list(c):
        assert p.grad_norm < 1e-10
        assert p.proven == (status == "proven")


@pytest.mark.parametrize("make", [losses.himmelblau, losses.six_hump_camel, losses.beale,
                                  losses.double_well, losses.saddle, losses.monkey_saddle,
                                  lambda: losses.rosenbrock(3)])
def test_agrees_with_every_listed_critical_point(make):
    loss = make()
    box = loss.facts.bounds or [(-2.0, 2.0)] * loss.n
    found = fs.critical_points(loss, box)
    for known in loss.facts.critical_points:
        match = [p for p in found if np.linalg.norm(p.point - known.point) < 1e-7]
        assert len(match) == 1, known
        assert match[0].kind is known.kind
    if loss.facts.complete:
        assert len(found) == len(loss.facts.critical_points)


def test_classify_saddle_monkey_and_morse_index():
    assert fs.classify(losses.saddle(), [0, 0]).kind is PointKind.SADDLE
    monkey = fs.classify(losses.monkey_saddle(), [0, 0])
    assert monkey.kind is PointKind.DEGENERATE and np.allclose(monkey.eigenvalues, 0)
    mx = fs.classify("-(x**2 + y**2 + z**2)", [0, 0, 0])
    assert mx.kind is PointKind.MAXIMUM and mx.morse_index == 3
    s = fs.classify("x**2 - y**2 - z**2", [0, 0, 0])
    assert s.morse_index == 2
    with pytest.raises(ValueError, match="Hessian is not finite"):
        fs.classify("sqrt(x) + y**2", [-1.0, 0.0])
    with pytest.raises(ValueError, match=r"x must have shape \(2,\)"):
        fs.classify("x**2 + y**2", [0.0, 0.0, 0.0])


@pytest.mark.parametrize("bounds", [(1.0, 1.0), (2.0, -2.0), [(0, 1)], (np.nan, 1.0)])
def test_bad_bounds(bounds):
    with pytest.raises(ValueError, match="bounds"):
        fs.critical_points("x**2 + y**2", bounds)


def test_lyapunov_along_flow_and_schemes():
    loss = losses.himmelblau()
    flow = fs.gradient_flow(loss, [0.0, 0.0], 2.0)
    r = fs.lyapunov(loss, flow)
    assert r.min_value_source == "literature" and r.monotone and r.V_name == "L - L*"
    assert r.max_relative_mismatch < 1e-4
    assert np.all(r.predicted <= 0)
    # gradient ascent is not a descent flow: V rises, and the gradient flow's identity is not
    # applied to another equation
    up = fs.lyapunov(loss, fs.gradient_flow(loss, [0.0, 0.0], 0.01, maximize=True))
    assert not up.monotone and up.max_relative_mismatch is None
    assert "monotonicity only" in up.summary()
    lam = fs.lipschitz_estimate(loss, (-5, 5)).value
    small = fs.lyapunov(loss, fs.gradient_descent(loss, [0.0, 0.0], 0.5 / lam, 200),
                        lipschitz=lam)
    assert small.monotone and small.descent_violations.size == 0
    q = losses.quadratic(np.diag([1.0, 10.0]))
    big = fs.gradient_descent(q, [1.0, 1.0], 0.21, 30)  # eta > 2/lambda_max: V rises
    exact = fs.lyapunov(q, big, lipschitz=10.0)
    assert not exact.monotone and exact.rises.size == 30
    # with the true lambda the descent lemma still holds (it allows the rise) ...
    assert exact.descent_violations.size == 0
    # ... and an underestimated lambda is caught by its violations
    assert fs.lyapunov(q, big, lipschitz=5.0).descent_violations.size == 30
    given = fs.lyapunov(loss, flow, min_value=-1.0)
    assert given.min_value_source == "given" and given.V[-1] == pytest.approx(1.0)
    plain = fs.Loss("(x - 1)**2")   # no facts: L* derived around the path, and said so
    derived = fs.lyapunov(plain, fs.gradient_flow(plain, [3.0], 1.0))
    assert derived.min_value == 0.0 and derived.min_value_source.endswith(": proven")
    flat = fs.Loss("exp(x)")       # no minimum anywhere: the lowest value, and said so
    lowest = fs.lyapunov(flat, fs.gradient_flow(flat, [1.0], 1.0))
    assert lowest.min_value_source.startswith("the lowest value on the path")


def test_heavy_ball_energy_rate_and_set_stability():
    loss = losses.double_well()
    hb = fs.heavy_ball_flow(loss, [0.3, 0.5], 10.0, friction=0.7,
                            t_eval=np.linspace(0, 10, 4001))
    r = fs.lyapunov(loss, hb, friction=0.7)
    assert r.energy_rate_mismatch < 1e-3
    circle = fs.Loss("(x**2 + y**2 - 1)**2")  # a circle of minimizers

    def to_circle(xs):
        return np.abs(np.linalg.norm(xs, axis=1) - 1)

    flow = fs.gradient_flow(circle, [0.2, 0.1], 5.0)
    s = fs.lyapunov(circle, flow, min_value=0.0, distance=to_circle)
    assert s.set_distance_decreasing and s.set_distance[-1] < 1e-6 and s.V[-1] < 1e-12


def test_saddle_escape_predictions_match_measurements():
    exact = fs.saddle_escape(losses.saddle(), [0, 0], delta=1e-6, radius=0.1, eta=0.01)
    assert exact.growth_rate == pytest.approx(2.0)
    assert exact.measured_time == pytest.approx(np.log(1e5) / 2, rel=1e-7)
    assert abs(exact.measured_steps - exact.predicted_steps) <= 1
    h = losses.himmelblau()
    for cp in (p for p in h.facts.critical_points if p.kind is PointKind.SADDLE):
        e = fs.saddle_escape(h, cp.point, delta=1e-7, radius=0.02, eta=1e-3)
        assert e.measured_time == pytest.approx(e.predicted_time, rel=0.02)
        assert e.measured_steps == pytest.approx(e.predicted_steps, rel=0.02)
    with pytest.raises(ValueError, match="no negative eigenvalue"):
        fs.saddle_escape(h, [3.0, 2.0])


def test_stability_textbook_values():
    r = fs.stability("(w1**2 + 4*w2**2)/2", [0.0, 0.0], eta=0.4)
    assert r.best_step == pytest.approx(0.4) and r.best_rate == pytest.approx(0.6)
    assert r.max_stable_step == pytest.approx(0.5) and r.condition_number == pytest.approx(4)
    np.testing.assert_allclose(r.gd_factors, [0.6, 0.6])
    np.testing.assert_allclose(r.prox_factors, [1 / 1.4, 1 / 2.6])
    assert r.gd_stable
    two = fs.stability("2*w**2", [0.0], eta=0.6)
    assert two.max_stable_step == pytest.approx(0.5) and not two.gd_stable
    assert "UNSTABLE" in two.summary()
    est = fs.lipschitz_estimate(losses.quadratic(np.diag([1.0, 7.0])), (-1, 1), n_samples=50)
    assert est.value == pytest.approx(7.0) and est.step == pytest.approx(1 / 7)


def test_sharpness_crosses_two_over_eta_where_the_closed_form_says():
    # L = x^4/4 - x^2/2 has L'' = 3x^2 - 1: from x = 0.1 GD climbs toward the minimum at 1,
    # where L'' = 2 > 2/eta for eta = 1.1, so the sharpness crosses 2/eta = 1.818 on the way
    eta = 1.1
    traj = fs.gradient_descent("x**4/4 - x**2/2", [0.1], eta, 40)
    s = fs.sharpness("x**4/4 - x**2/2", traj)
    curvature = 3 * traj.xs[:, 0] ** 2 - 1
    np.testing.assert_allclose(s.lambda_max, curvature, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(s.two_over_eta, 2 / eta)
    np.testing.assert_array_equal(s.above, curvature > 2 / eta)
    first = int(np.argmax(s.above))
    assert 0 < first and not s.above[:first].any()  # below the edge first, then above it
    assert "first at t" in s.summary()
    assert list(s.to_frame().columns) == ["ts", "lambda_max", "two_over_eta", "above"]
    # heavy ball iterates sit sqrt(eta) apart, but its step is eta: 2/eta = 50, not 10
    hb = fs.heavy_ball("x**2", [1.0], 0.04, 5, momentum=0.5)
    np.testing.assert_allclose(fs.sharpness("x**2", hb).two_over_eta, 50.0)
    flow = fs.sharpness("x**2", fs.gradient_flow("x**2", [1.0], 1.0))
    assert np.all(np.isnan(flow.two_over_eta)) and not flow.above.any()
    with pytest.raises(TypeError, match="one flowsim.Trajectory"):
        fs.sharpness("x**2 + y**2", fs.gradient_descent("x**2 + y**2", [[0.1, 1.0]], 0.01, 3))


@pytest.mark.parametrize("method", ["DOP853", "RK45", "LSODA", "BDF", "Radau"])
def test_lyapunov_integral_form_follows_the_solver_tolerance(method):
    # V(t_{k+1}) - V(t_k) = -int |grad L|^2 dt holds to the solver's accuracy, so the
    # mismatch must shrink with rtol whatever the solver (a central difference stalled near
    # 4e-3; quadrature on the dense output stalled at 1e-5 for LSODA and BDF at rtol 1e-10)
    loss = losses.rosenbrock(2)
    mismatch = [fs.lyapunov(loss, fs.gradient_flow(loss, [-1.2, 1.0], 5.0, method=method,
                                                   rtol=rtol, atol=rtol * 1e-2)
                            ).max_relative_mismatch
                for rtol in (1e-6, 1e-10)]
    assert mismatch[1] < 1e-8 and mismatch[1] < mismatch[0] / 100


@pytest.mark.parametrize("flow", [fs.heavy_ball_flow, fs.nesterov_flow])
def test_momentum_energy_balance_follows_the_tolerance_on_lsoda(flow):
    loss = losses.rosenbrock(2)
    r = fs.lyapunov(loss, flow(loss, [-1.0, 1.5], 5.0, rtol=1e-10, atol=1e-12))
    assert r.max_relative_mismatch < 1e-8, r.summary()


def test_heavy_ball_is_monotone_in_its_energy_not_its_loss():
    loss = losses.double_well()
    hb = fs.heavy_ball_flow(loss, [0.3, 0.5], 10.0, friction=0.7, rtol=1e-10, atol=1e-12)
    assert np.any(np.diff(hb.values) > 1e-6)  # L itself rises as the ball swings
    r = fs.lyapunov(loss, hb, friction=0.7)
    assert r.monotone and r.energy_rate_mismatch < 1e-6
    np.testing.assert_allclose(r.V, hb.extras["energy"] - loss.facts.min_value)


def test_nesterov_energy_is_non_increasing_on_a_convex_quadratic():
    q = losses.quadratic(np.diag([1.0, 4.0]), [1.0, -1.0])
    traj = fs.nesterov_flow(q, [3.0, 2.0], 20.0, rtol=1e-10, atol=1e-12)
    r = fs.lyapunov(q, traj)
    # E(0) = (r - 1) |x0 - x*|^2 = 2 * (4 + 9)
    assert r.nesterov_energy[0] == pytest.approx(26.0)
    assert r.nesterov_energy_decreasing and r.nesterov_energy[-1] < 26.0
