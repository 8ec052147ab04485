"""compare(), convergence_order() and the per-direction explanation."""
import numpy as np
import pytest

import flowsim as fs
from flowsim import Status, losses


def test_compare_on_quadratic_against_closed_forms():
    A = np.diag([1.0, 10.0])
    loss = losses.quadratic(A, [1.0, -1.0])
    x0, eta, steps = np.array([0.0, 0.0]), 0.15, 30
    c = fs.compare(loss, x0, eta, steps, schemes=("gd", "pp"))
    ts = eta * np.arange(steps + 1)
    exact_flow = np.array([loss.facts.flow_solution(t, x0) for t in ts])
    gd = np.array([np.linalg.matrix_power(np.eye(2) - eta * A, k) @ (x0 - [1, -1]) + [1, -1]
                   for k in range(steps + 1)])
    np.testing.assert_allclose(c.deviation["gradient_descent"], np.linalg.norm(gd - exact_flow, axis=1),
                               atol=1e-8)
    np.testing.assert_allclose(c.loss_gap["gradient_descent"],
                               loss.value(gd) - loss.value(exact_flow), atol=1e-8)
    f = c.factors
    np.testing.assert_allclose(f.eigenvalues, [1.0, 10.0])
    np.testing.assert_allclose(f.gd_factors, [0.85, 0.5])
    np.testing.assert_allclose(f.prox_factors, [1 / 1.15, 1 / 2.5])
    np.testing.assert_allclose(f.flow_factors, np.exp([-0.15, -1.5]))
    assert "GD oscillates" in f.summary()
    assert c.reference("gd") is c.reference("proximal_point") is c.flows["gradient_flow"]
    assert c.deviation["gradient_descent"][0] == 0.0 and c.deviation["gradient_descent"][3] > c.deviation["proximal_point"][3]
    text = c.summary(rows=5)
    assert "gd |x-x(t)|" in text and "reached_end" in text
    table = f.to_frame()
    np.testing.assert_allclose(table["gd_factors"], [0.85, 0.5])
    assert table.attrs["eta"] == 0.15


def test_compare_table_frame_and_flows_shared():
    c = fs.compare(losses.himmelblau(), [0.5, -1.0], 1e-3, 200, schemes=("gd", "pp", "heun"))
    assert list(c.flows) == ["gradient_flow"]
    assert set(c.references.values()) == {"gradient_flow"}
    frame = c.to_frame()
    columns = frame.columns if hasattr(frame, "columns") else frame.keys()
    for name in ("gradient_descent", "proximal_point", "heun"):
        assert f"{name}_deviation" in columns
    # heun is second order, so it stays far closer to the flow
    assert np.nanmax(c.deviation["heun"]) < 0.1 * np.nanmax(c.deviation["gradient_descent"])


def test_momentum_schemes_follow_their_own_odes():
    loss = losses.quadratic(np.diag([1.0, 4.0]))
    x0 = np.array([1.0, 1.0])
    gaps = []
    for eta in (1e-2, 2.5e-3):
        steps = int(round(4.0 / np.sqrt(eta)))
        c = fs.compare(loss, x0, eta, steps, schemes=("heavy_ball", "nesterov"),
                       options={"heavy_ball": {"momentum": 1 - np.sqrt(eta)}})
        assert set(c.flows) == {"heavy_ball_flow", "nesterov_flow"}
        # the heavy ball's ODE has friction (1 - beta) / sqrt(eta) = 1 at every eta
        assert c.reference("hb").label.startswith("heavy ball ODE (m=1, gamma=1,")
        assert c.reference("nag").label.startswith("Nesterov ODE (r=3,")
        gaps.append((np.nanmax(c.deviation["heavy_ball"]), np.nanmax(c.deviation["nesterov"])))
    # both deviations shrink as the step shrinks (time scale sqrt(eta))
    assert gaps[1][0] < 0.7 * gaps[0][0] and gaps[1][1] < 0.7 * gaps[0][1]
    assert gaps[1][1] < 0.1


def test_compare_keeps_diverged_scheme():
    c = fs.compare(losses.ill_conditioned_quadratic(100.0), [1.0, 1.0], 0.05, 60)
    assert c.schemes["gradient_descent"].status is Status.DIVERGED
    assert c.schemes["proximal_point"].status is Status.REACHED_END
    assert np.all(np.diff(c.deviation["gradient_descent"][10:]) > 0)


@pytest.mark.parametrize("scheme, expected", [("gd", 1.0), ("pp", 1.0), ("heun", 2.0)])
def test_empirical_orders(scheme, expected):
    for loss, x0, T in ((losses.himmelblau(), [0.5, -1.0], 0.02),
                        ("x**2/2 + y**4/4 + x*y/3", [1.0, 1.0], 1.0)):
        result = fs.convergence_order(loss, x0, scheme, t_end=T)
        assert result.order == pytest.approx(expected, abs=0.15)
        assert np.all(np.diff(result.errors) < 0)  # coarse to fine


@pytest.mark.parametrize("scheme, expected, tol", [("pp", 1.0, 0.05), ("gd", 1.0, 0.05),
                                                   ("heun", 2.0, 0.1), ("heavy_ball", 1.0, 0.05),
                                                   ("nesterov", 1.0, 0.1)])
@pytest.mark.parametrize("t_end", [0.3, 1.0])
def test_global_error_orders_on_himmelblau(scheme, expected, tol, t_end):
    # the global error (largest deviation over the span) is monotone in the step where the
    # end-time error is not: proximal point at T = 0.3 used to give 1.414
    result = fs.convergence_order(losses.himmelblau(), [0.0, 0.0], scheme, t_end=t_end)
    assert result.order == pytest.approx(expected, abs=tol), result.summary()
    assert result.warning is None and result.used.all()
    if scheme in ("heavy_ball", "nesterov"):
        np.testing.assert_allclose(result.etas, result.steps ** 2)


def test_levels_at_the_rounding_floor_are_dropped_and_said():
    result = fs.convergence_order("x**2/2 + y**4/4", [1.0, 1.0], "heun", t_end=1.0,
                                  levels=14)
    assert not result.used.all() and result.used[:8].all()
    assert np.all(result.errors[~result.used] <= 10 * result.floor)
    assert result.order == pytest.approx(2.0, abs=0.05)
    assert "dropped" in result.summary()


def test_compare_and_order_errors():
    with pytest.raises(ValueError, match="unknown scheme 'adamw'"):
        fs.compare("x**2", [1.0], 0.1, 10, schemes=("adamw",))
    with pytest.raises(ValueError, match="has no flow to compare with"):
        fs.compare("x**2", [1.0], 0.1, 10, schemes=("pg",),
                   options={"pg": {"prox": fs.prox.L1(0.1)}})
    with pytest.raises(ValueError, match="takes steps of at most 1"):
        fs.compare("x**2", [1.0], 1.5, 10, schemes=("gd", "newton"))
    with pytest.raises(ValueError, match="no deterministic order"):
        fs.convergence_order("x**2", [1.0], "sgd")
    with pytest.raises(ValueError, match="divide t_end"):
        fs.convergence_order("x**2", [1.0], "gd", etas=[0.3, 0.15, 0.075])


def test_compare_takes_schedules_for_the_gradient_flow_schemes():
    loss = losses.quadratic(np.diag([1.0, 3.0]))
    schedule = fs.schedules.inverse_time(0.1, 0.1)
    c = fs.compare(loss, [1.0, 1.0], schedule, 40, schemes=("gd", "pp"))
    etas = schedule(np.arange(40))
    np.testing.assert_allclose(c.schemes["gradient_descent"].ts[-1], etas.sum(), rtol=1e-14)
    # closed forms: GD multiplies by (1 - eta_k A), the flow by exp(-t A)
    expected = np.prod(1 - np.outer(etas, [1.0, 3.0]), axis=0)
    np.testing.assert_allclose(c.schemes["gradient_descent"].x_final, expected, rtol=1e-12)
    flow_end = np.exp(-etas.sum() * np.array([1.0, 3.0]))
    assert c.deviation["gradient_descent"][-1] == pytest.approx(np.linalg.norm(expected - flow_end),
                                                  rel=1e-6)
    with pytest.raises(ValueError, match="heavy_ball is compared with its ODE at a fixed step"):
        fs.compare(loss, [1.0, 1.0], schedule, 40, schemes=("heavy_ball",))


def test_recorded_step_sizes_and_two_over_eta_have_no_trailing_nan():
    loss = losses.himmelblau()
    gd = fs.gradient_descent(loss, [0.0, 0.0], fs.schedules.step_decay(0.01, (5,), 0.5), 10)
    np.testing.assert_array_equal(gd.extras["step_sizes"], [0.01] * 5 + [0.005] * 6)
    armijo = fs.gradient_descent(loss, [0.0, 0.0], 0.1, 10, line_search="armijo")
    assert np.all(np.isfinite(armijo.extras["step_sizes"]))
    two = fs.sharpness(loss, gd).two_over_eta
    assert np.all(np.isfinite(two)) and two[-1] == pytest.approx(400.0)
