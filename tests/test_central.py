"""Edge of stability: the exact sharpness gradient (against finite differences of
lambda_max) and the central flow (against GD's own time average, and the gradient flow below
the edge) on the deep scalar factorization."""
import numpy as np
import pytest

import flowsim as fs
from flowsim import losses
from flowsim.flows.central import third_derivatives

X0 = [0.3, 0.6, 2.5]


def _lam_max(loss, x):
    return np.linalg.eigvalsh(loss.hess(np.asarray(x, dtype=float)))[-1]


@pytest.mark.parametrize("loss, x", [(losses.himmelblau(), [1.0, -0.5]),
                                     (losses.scalar_factorization(3), X0)])
def test_sharpness_gradient_matches_finite_differences(loss, x):
    S, g, u = fs.sharpness_gradient(loss, x)
    assert S == pytest.approx(_lam_max(loss, x))
    fd = [(_lam_max(loss, x + e) - _lam_max(loss, x - e)) / 2e-6
          for e in 1e-6 * np.eye(len(x))]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)


def test_third_derivatives_of_a_finite_sum_are_averaged():
    data = {"a": [0.5, -1.0, 2.0], "b": [1.0, 0.0, -1.0]}
    loss = fs.Loss.from_samples("(tanh(w*a) * v - b)**2 / 2", data, ["w", "v"])
    x = np.array([0.7, 1.3])
    T = third_derivatives(loss)(x)
    fd = np.stack([(loss.hess(x + e) - loss.hess(x - e)) / 2e-6 for e in 1e-6 * np.eye(2)],
                  axis=-1)
    np.testing.assert_allclose(T, fd, rtol=1e-6, atol=1e-7)


def test_below_the_edge_the_central_flow_is_the_gradient_flow():
    loss = losses.scalar_factorization(3)
    cf = fs.central_flow(loss, X0, 0.2, 10.0, n_outputs=11)
    gf = fs.gradient_flow(loss, X0, 10.0, rtol=1e-11, atol=1e-13)
    assert not cf.extras["on_edge"].any() and np.all(cf.extras["sigma2"] == 0)
    np.testing.assert_allclose(cf.xs, gf.at(cf.ts), atol=1e-6)


def test_gd_self_stabilizes_and_the_central_flow_tracks_its_time_average():
    loss = losses.scalar_factorization(3)
    eta, T = 0.45, 30.0
    gf = fs.gradient_flow(loss, X0, T)
    assert _lam_max(loss, gf.xs[-1]) > 2 / eta          # the flow sharpens past the edge
    gd = fs.gradient_descent(loss, X0, eta, int(T / eta))
    S = np.linalg.eigvalsh(loss.hess(gd.xs))[:, -1]
    assert np.mean(S[-40:]) == pytest.approx(2 / eta, rel=0.05)   # GD holds at the edge
    u = np.linalg.eigh(loss.hess(gd.xs[-1]))[1][:, -1]
    steps = np.diff(gd.xs[-12:], axis=0) @ u
    assert np.all(steps[1:] * steps[:-1] < 0)                     # ... oscillating along u
    cf = fs.central_flow(loss, X0, eta, T, n_outputs=301)
    assert cf.extras["sharpness"][-1] == pytest.approx(2 / eta, rel=1e-6)
    mid = 0.5 * (gd.xs[1:] + gd.xs[:-1])
    tm = 0.5 * (gd.ts[1:] + gd.ts[:-1])
    along = np.stack([np.interp(tm, cf.ts, cf.xs[:, i]) for i in range(3)], axis=1)
    late = tm > T / 2
    err = np.abs(mid - along)[late].max()
    assert err < 0.05 < np.abs(gf.at(tm[late]) - mid[late]).max()
    # the predicted time-averaged loss and oscillation variance, against GD's
    pair = 0.5 * (gd.values[1:] + gd.values[:-1])
    predicted = np.interp(tm, cf.ts, cf.extras["predicted_loss"])
    np.testing.assert_allclose(predicted[late][-20:], pair[late][-20:], rtol=0.15)
    s2 = np.mean((np.diff(gd.xs[-21:], axis=0) @ u / 2) ** 2)
    assert cf.extras["sigma2"][-1] == pytest.approx(s2, rel=0.3)  # (21% off at eta = 0.45)


def test_tanh_network_sharpens_and_the_central_flow_predicts_gds_average_loss():
    # a 2-unit tanh network fitted to 8 points: the gradient flow's sharpness grows from 2.3
    # to 26.6 by t = 120; GD with eta = 0.25 rides the edge 2/eta = 8 from t of about 60
    loss = losses.tanh_network(2, 8)
    x0, eta, T = [0.3, -0.2, 0.2, 0.1], 0.25, 120.0
    gf = fs.gradient_flow(loss, x0, T)
    assert _lam_max(loss, x0) < 2.5 and _lam_max(loss, gf.x_final) > 3 * (2 / eta)
    steps = int(round(T / eta))
    gd = fs.gradient_descent(loss, x0, eta, steps)
    cf = fs.central_flow(loss, x0, eta, T, n_outputs=steps + 1)
    on = np.flatnonzero(cf.extras["on_edge"])
    assert 40 < cf.ts[on[0]] < 80 and cf.extras["on_edge"][on[0]:].all()
    np.testing.assert_allclose(cf.extras["sharpness"][on[0] + 4:], 2 / eta, rtol=1e-5)
    late = gd.ts >= 90
    # GD oscillates about the edge: S at its iterates is above 2/eta, at its two-step
    # averages (the points the central flow describes) within 8% below
    mid = 0.5 * (gd.xs[1:] + gd.xs[:-1])
    S_mid = np.linalg.eigvalsh(loss.hess(mid[late[1:]]))[:, -1]
    assert 0.92 < S_mid.mean() * eta / 2 < 1.0
    assert np.linalg.eigvalsh(loss.hess(gd.xs[late]))[:, -1].mean() * eta / 2 > 1.05
    # the time-averaged loss: predicted to 3% by the central flow, whose own loss (like the
    # gradient flow's) is 15% or more below it
    average = gd.values[late].mean()
    assert cf.extras["predicted_loss"][late].mean() == pytest.approx(average, rel=0.03)
    assert cf.values[late].mean() < 0.87 * average
    # the central flow stays nearer GD's two-step average than the gradient flow does
    cf_mid = 0.5 * (cf.xs[1:] + cf.xs[:-1])   # the same times: cf.ts is GD's grid
    to_cf = np.linalg.norm(mid - cf_mid, axis=1)[late[1:]].max()
    to_gf = np.linalg.norm(mid - gf.at(gd.ts[1:]), axis=1)[late[1:]].max()
    assert to_cf < 0.5 < 1.0 < to_gf


def test_central_flow_batches_stack_their_single_runs_with_their_extras():
    X = np.array([[0.2, 3.0], [0.3, 2.5], [2.0, 0.4]])
    batch = fs.central_flow("(x*y - 1)**2/2", X, 0.4, 5.0, n_outputs=11)
    assert batch.xs.shape == (3, 11, 2) and batch.extras["sharpness"].shape == (3, 11)
    for i, x0 in enumerate(X):
        one = fs.central_flow("(x*y - 1)**2/2", x0, 0.4, 5.0, n_outputs=11)
        np.testing.assert_array_equal(batch.xs[i], one.xs)
        np.testing.assert_array_equal(batch.extras["sharpness"][i], one.extras["sharpness"])
        assert batch.status[i] is one.status
    on_workers = fs.central_flow("(x*y - 1)**2/2", X, 0.4, 5.0, n_outputs=11, workers=2)
    np.testing.assert_array_equal(on_workers.xs, batch.xs)
    # independently of the single runs: every start ends on the minimizers xy = 1, where the
    # sharpness is x^2 + y^2; held at the edge 2/eta = 5 where it got there, below it else
    end = batch.xs[:, -1]
    np.testing.assert_allclose(end[:, 0] * end[:, 1], 1.0, atol=1e-6)
    sharp, edge = batch.extras["sharpness"][:, -1], batch.extras["on_edge"][:, -1]
    np.testing.assert_allclose(sharp, np.sum(end ** 2, axis=1), rtol=1e-6)
    assert edge.any() and not edge.all()
    np.testing.assert_allclose(sharp[edge], 2 / 0.4, rtol=1e-4)
    assert np.all(sharp[~edge] < 2 / 0.4)
