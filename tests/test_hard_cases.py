"""The hard cases against closed forms: proximal point at kinks (soft-thresholding),
kinks reached together, the sign flow arriving at a kink, critical points held to their
box, a Lipschitz bound that is proven."""
import numpy as np
import pytest

import flowsim as fs
from flowsim import losses

KINKED = "0.5*(x - 1)**2 + 0.5*(y + 0.2)**2 + 0.5*abs(x) + 0.5*abs(y)"


def _soft(v, t):
    return np.sign(v) * np.maximum(np.abs(v) - t, 0.0)


def _soft_iterates(x0, eta, steps, a=np.array([1.0, -0.2]), c=0.5):
    # argmin 1/2 (y - a)^2 + c|y| + |y - x|^2/(2 eta), coordinate by coordinate
    xs = [np.asarray(x0, dtype=float)]
    for _ in range(steps):
        xs.append(_soft((xs[-1] + eta * a) / (1 + eta), eta * c / (1 + eta)))
    return np.array(xs)


@pytest.mark.parametrize("eta", [0.05, 0.3, 1.0, 5.0])
def test_proximal_point_at_kinks_is_soft_thresholding(eta):
    run = fs.proximal_point(KINKED, [2.0, 1.0], eta, 40)
    assert run.status.value == "reached_end", run.message
    np.testing.assert_allclose(run.xs, _soft_iterates([2.0, 1.0], eta, 40), atol=1e-10)
    starts = np.array([[2.0, 1.0], [-1.0, -3.0], [0.0, 0.0]])
    batch = fs.proximal_point(KINKED, starts, eta, 15)
    for i, x0 in enumerate(starts):
        np.testing.assert_allclose(batch.xs[i], _soft_iterates(x0, eta, 15), atol=1e-10)


def test_proximal_point_at_kinks_converges_at_order_one_without_blaming_rounding():
    result = fs.convergence_order(KINKED, [2.0, 1.0], "pp", t_end=1.0)
    assert result.order == pytest.approx(1.0, abs=0.1) and result.warning is None


def test_the_subgradient_flow_stops_where_two_kinks_are_reached_together():
    # x' = -sign(x), y' = -sign(y - 1) from (2, 3): both kinks at t = 2, then rest at (0, 1)
    run = fs.gradient_flow("abs(x) + abs(y - 1)", [2.0, 3.0], 5.0)
    np.testing.assert_allclose(run.at(1.0), [1.0, 2.0], atol=1e-9)
    for t in (2.0, 2.5, 5.0):
        np.testing.assert_allclose(run.at(t), [0.0, 1.0], atol=1e-9)


@pytest.mark.parametrize("formula, x0, rest, arrival", [
    ("abs(x)", [1.0], [0.0], 1.0),
    ("abs(x) + abs(y)", [1.0, 0.5], [0.0, 0.0], 1.0),
    ("abs(x - 0.3)", [1.0], [0.3], 0.7),
])
def test_the_sign_flow_arrives_at_a_kink_and_stays(formula, x0, rest, arrival):
    run = fs.sign_flow(formula, x0, 10.0)
    np.testing.assert_allclose(run.x_final, rest, atol=1e-9)
    x0, rest = np.asarray(x0), np.asarray(rest)
    for t in (arrival / 3, 2 * arrival / 3, arrival, 2 * arrival):
        # each coordinate moves at unit speed toward its kink, then rests there
        expected = np.where(np.abs(x0 - rest) > t, x0 - t * np.sign(x0 - rest), rest)
        np.testing.assert_allclose(run.at(t), expected, atol=1e-9)
    assert np.all(np.diff(run.values) <= 1e-12)   # never uphill


def test_the_sign_flow_does_not_climb_where_the_gradient_underflows():
    run = fs.sign_flow("tanh(x)", [50.0], 10.0)   # grad L(50) = 0 in floating point
    assert run.x_final[0] <= 50.0 and np.all(np.diff(run.values) <= 0)


def test_critical_points_are_held_to_the_box_asked_for():
    found = fs.critical_points("x**2 + x*y + y**2", [(0.01, 1), (-1, 1)])
    assert len(found) == 0 and "outside the box" in found.message
    best = fs.critical_points("x**2 + x*y + y**2", [(0.01, 1), (-1, 1)], global_only=True)
    assert len(best) == 0
    inside = fs.critical_points("x**2 + x*y + y**2", [(-1, 1), (-1, 1)])
    assert len(inside) == 1 and inside.status == "proven"


@pytest.mark.parametrize("sign", [1, -1])
def test_a_circle_of_critical_points_comes_with_a_point_on_it(sign):
    # (r^2 - 1)^2: every point of the unit circle is critical, L = 0 there, and the Hessian
    # there has eigenvalues 0 (along the circle) and 8 (across it); negated for maxima
    found = fs.critical_points(f"{sign}*(x**2 + y**2 - 1)**2", [(-2, 2), (-2, 2)])
    circle = [u for u in found.undecided if u.reason == "non-isolated"]
    assert found.status == "complete" and len(circle) == 1
    u = circle[0]
    assert abs(np.linalg.norm(u.point) - 1) < 1e-8 and abs(u.value) < 1e-14
    np.testing.assert_allclose(np.sort(sign * u.eigenvalues), [0, 8], atol=1e-6)
    assert "representative point" in found.summary()
    centre = found.of_kind("maximum" if sign > 0 else "minimum")
    assert len(centre) == 1 and np.allclose(centre[0].point, 0)


def test_a_cluster_of_nearby_points_is_resolved_into_proven_points():
    # (x^2 - d^2)^2 (x^2 + 1) + y^2: minima at x = +-d and a saddle at 0, d = 0.01 apart
    found = fs.critical_points("(x**2 - 1e-4)**2*(x**2 + 1) + y**2", [(-2, 2), (-2, 2)])
    assert found.status == "proven" and len(found) == 3
    xs = sorted(p.point[0] for p in found)
    np.testing.assert_allclose(xs, [-0.01, 0.0, 0.01], atol=1e-12)
    assert {p.kind.value for p in found} == {"minimum", "saddle"}


def test_the_lipschitz_bound_is_proven_and_its_step_is_safe():
    him = losses.himmelblau()
    est = fs.lipschitz_estimate(him, (-5, 5))
    corner = np.abs(np.linalg.eigvalsh(him.hess(np.array([5.0, 5.0])))).max()   # 326.79
    grid = np.stack(np.meshgrid(np.linspace(-5, 5, 201), np.linspace(-5, 5, 201)), -1)
    dense = np.abs(np.linalg.eigvalsh(him.hess(grid.reshape(-1, 2)))).max()
    assert est.upper >= max(corner, dense) and est.upper <= 1.05 * dense
    assert est.value <= est.upper and est.step == pytest.approx(1 / est.upper)
    # the descent lemma with L = upper: L(x - g/U) <= L(x) - |g|^2/(2U) wherever the step
    # stays in the box
    X = np.random.default_rng(0).uniform(-5, 5, size=(2000, 2))
    G = him.grad(X)
    Y = X - G * est.step
    inside = np.all(np.abs(Y) <= 5, axis=1)
    gap = him.value(Y) - (him.value(X) - np.sum(G * G, axis=1) * est.step / 2)
    assert np.all(gap[inside] <= 1e-9 * (1 + np.abs(him.value(X[inside]))))
    quad = fs.lipschitz_estimate("x**2 + 3*y**2", (-1, 1))
    assert quad.value == quad.upper == 6.0


@pytest.mark.parametrize("eta", [0.05, 0.3, 1.0])
def test_proximal_point_keeps_good_steps_where_its_objective_is_not_convex(eta):
    # Himmelblau's lambda_min reaches about -40: for these eta the proximal objective is
    # non-convex over much of the grid; a minimizer stops at its rounding floor (|F| ~ 2e-8),
    # which used to end the start 'failed' at step 0
    him = losses.himmelblau()
    g = np.linspace(-5, 5, 31)
    X = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    run = fs.proximal_point(him, X, eta, 30)
    assert all(s is fs.Status.REACHED_END for s in run.status), set(run.message)
    Y, Xk = run.xs[:, 1:], run.xs[:, :-1]
    F = Y + eta * him.grad(Y) - Xk            # the implicit equation, solved at every step
    assert np.abs(F).max() < 1e-9 * (1 + np.abs(Xk).max())
    lam = np.linalg.eigvalsh(him.hess(Y.reshape(-1, 2)))[:, 0]
    assert np.all(1 + eta * lam > 0)          # each answer is a local minimizer


NON_SMOOTH = [("abs(x) + abs(y - 1)", [2.0, 3.0]),
              ("abs(x) + abs(y - 1) + abs(z + 2)", [2.0, 3.0, 0.0]),
              ("max(x, y) + (x**2 + y**2)/4", [1.0, -0.5]),
              ("abs(x - y) + (x + y - 1)**2", [2.0, -1.0]),
              ("0.5*(x - 1)**2 + 0.5*(y + 0.2)**2 + 0.5*abs(x) + 0.5*abs(y)", [-1.0, 1.0]),
              ("abs(x - 0.3)", [1.5]),
              ("Max(0, x - 1) + abs(y)", [3.0, -2.0])]


@pytest.mark.parametrize("formula, x0", NON_SMOOTH)
@pytest.mark.parametrize("flow", ["gradient_flow", "sign_flow"])
def test_the_loss_never_rises_along_a_non_smooth_flow(formula, x0, flow):
    run = getattr(fs, flow)(formula, x0, 4.0)
    # where a kink of L meets a switch of sign(grad L) the sign flow may chatter: it then
    # ends at once, says so and keeps its path (it crept for 100,000 steps, 60-90 s, before)
    assert run.status is not fs.Status.FAILED or "chatters" in run.message, run.message
    rises = np.diff(run.values)
    assert np.all(rises <= 1e-9 * (1 + np.abs(run.values[:-1]))), (rises.max(), run.message)


def test_three_kinks_reached_at_the_same_time_stop_the_subgradient_flow_there():
    # each coordinate moves at unit speed toward its kink and all three arrive at t = 2:
    # x(t) = (2 - t, 3 - t, -t) up to t = 2, then rest at (0, 1, -2) with L = 0
    run = fs.gradient_flow("abs(x) + abs(y - 1) + abs(z + 2)", [2.0, 3.0, 0.0], 5.0)
    early = run.ts <= 2.0
    np.testing.assert_allclose(run.xs[early], np.stack([2 - run.ts[early], 3 - run.ts[early],
                                                        -run.ts[early]], axis=1), atol=1e-9)
    np.testing.assert_allclose(run.xs[-1], [0.0, 1.0, -2.0], atol=1e-9)
    assert run.values[-1] < 1e-9


@pytest.mark.parametrize("formula, x0, sign", [("Min(x, 0)**2 + abs(y - 2)", [-1.0, 2.0], -1),
                                               ("Max(x, 0)**2 + abs(y)", [1.0, 1.0], 1)])
@pytest.mark.parametrize("eta", [0.1, 1.0, 10.0])
def test_proximal_point_on_kinks_the_gradient_does_not_feel(formula, x0, sign, eta):
    # min(x, 0)^2 is C^1: at x = 0 its gradient is 0 from both sides, so a kink chosen active
    # there has no solution; the prox of x^2 on its side is x / (1 + 2 eta), exactly
    run = fs.proximal_point(formula, x0, eta, 12)
    assert run.status is fs.Status.REACHED_END, run.message
    k = np.arange(13)
    # (each step solved to 1e-12 (1 + |x|), absolute)
    np.testing.assert_allclose(run.xs[:, 0], sign * (1 + 2 * eta) ** -k, rtol=1e-9,
                               atol=1e-11)
