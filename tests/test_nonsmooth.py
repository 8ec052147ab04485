"""The minimal-norm subgradient flow of losses with kinks, against closed forms."""
import numpy as np
import pytest

import flowsim as fs
from flowsim import Status, losses

pytestmark = pytest.mark.filterwarnings("error")


def test_abs_reaches_zero_at_t_one_and_stays():
    traj = fs.gradient_flow("abs(x)", [1.0], 5.0)
    assert traj.status is Status.REACHED_END and traj.label.startswith("subgradient flow")
    t = np.array([0.0, 0.25, 0.5, 0.999, 1.0, 2.0, 5.0])
    np.testing.assert_allclose(traj.at(t)[:, 0], np.maximum(1 - t, 0.0), atol=1e-12)


def test_sliding_along_a_kink_follows_the_closed_form():
    # x^2/2 + |y| from (0.5, 0.5): y = 0.5 - t until t = 0.5, then y = 0; x = 0.5 e^{-t}
    traj = fs.gradient_flow("x**2/2 + abs(y)", [0.5, 0.5], 3.0, rtol=1e-10, atol=1e-12)
    t = np.linspace(0, 3, 31)
    expected = np.stack([0.5 * np.exp(-t), np.maximum(0.5 - t, 0.0)], axis=1)
    np.testing.assert_allclose(traj.at(t), expected, atol=1e-9)
    assert np.all(np.abs(traj.xs[traj.ts >= 0.5, 1]) < 1e-12)


def test_crossing_a_kink_changes_the_side():
    # (x - 2)^2/2 + |x|: from x = -1 the flow crosses 0 (it is pushed right on both sides)
    # and settles at the minimizer x = 1
    traj = fs.gradient_flow("(x - 2)**2/2 + abs(x)", [-1.0], 10.0, rtol=1e-10, atol=1e-12)
    # left of 0: x' = 2 - x + 1 = 3 - x; reaches 0 at t = ln(4/3); right: x' = 1 - x
    t0 = np.log(4 / 3)
    assert traj.at(t0 / 2)[0] == pytest.approx(3 - 4 * np.exp(-t0 / 2), abs=1e-8)
    assert traj.at(t0 + 1.0)[0] == pytest.approx(1 - np.exp(-1.0), abs=1e-8)
    assert traj.x_final[0] == pytest.approx(1.0, abs=1e-4)


def test_relu_and_max_kinks():
    # relu(x) + y^2/2: at x = 0 the flow slides (relu has subgradients [0, 1] there)
    traj = fs.gradient_flow("relu(x) + (y - 1)**2/2", [0.5, 0.0], 2.0, rtol=1e-10)
    assert traj.at(1.0)[0] == pytest.approx(0.0, abs=1e-10)
    assert traj.at(1.0)[1] == pytest.approx(1 - np.exp(-1.0), abs=1e-8)
    # max(x, -x) is |x|
    np.testing.assert_allclose(fs.gradient_flow("max(x, -x)", [1.0], 3.0).at([0.5, 2.0])[:, 0],
                               [0.5, 0.0], atol=1e-10)


def test_lasso_flow_against_proximal_gradient_shows_order_one():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 3))
    y = X @ np.array([1.0, 0.0, -0.5]) + 0.1 * rng.standard_normal(20)
    problem = losses.lasso(X, y, 0.3)
    w0, T = np.array([0.5, 0.5, 0.5]), 2.0
    flow = fs.gradient_flow(problem.full, w0, T, rtol=1e-11, atol=1e-13)
    errors, etas = [], T / np.array([100, 200, 400, 800])
    for eta in etas:
        run = fs.proximal_gradient(problem, w0, eta, int(round(T / eta)))
        errors.append(np.max(np.linalg.norm(run.xs - flow.at(run.ts), axis=1)))
    order = np.polyfit(np.log(etas), np.log(errors), 1)[0]
    assert order == pytest.approx(1.0, abs=0.1)


def test_compare_on_a_non_smooth_loss_ends_quickly():
    c = fs.compare(fs.Loss("abs(x) + y**2"), [1.0, 1.0], 0.01, 200)
    ref = next(iter(c.flows.values()))
    assert ref.status is Status.REACHED_END and ref.label.startswith("subgradient")
    assert np.nanmax(c.deviation["gradient_descent"]) < 0.02


def test_batches_of_non_smooth_starts_are_subgradient_flows_too():
    starts = [[0.5, 0.5], [1.0, -2.0]]
    batch = fs.gradient_flow("x**2/2 + abs(y)", starts, 3.0, rtol=1e-10, atol=1e-12)
    assert batch.label.startswith("subgradient flow")
    for i, (x0, y0) in enumerate(starts):
        t = np.array([0.3, 1.0, 2.5, 3.0])
        expected = np.stack([x0 * np.exp(-t), np.sign(y0) * np.maximum(abs(y0) - t, 0)], 1)
        np.testing.assert_allclose(batch.dense(t)[i].T, expected, atol=1e-9)
