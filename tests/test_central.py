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
