"""Large cases, deselected by default: run with ``python3 -m pytest -m slow``."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import rosen_der, rosen_hess

import flowsim as fs
from flowsim import losses

pytestmark = pytest.mark.slow


def test_rosenbrock_1000_compiles_sparse_and_matches_scipy():
    loss = losses.rosenbrock(1000)
    x = np.random.default_rng(0).uniform(-1, 1, 1000)
    np.testing.assert_allclose(loss.grad(x), rosen_der(x), rtol=1e-12, atol=1e-10)
    S = loss.hess(x, sparse=True)
    assert S.nnz == 2998
    np.testing.assert_allclose(S.toarray(), rosen_hess(x), rtol=1e-12, atol=1e-10)
    traj = fs.gradient_flow(loss, np.full(1000, 0.5), 2.0, method="BDF", rtol=1e-6, atol=1e-9)
    assert traj.values[-1] < traj.values[0]


def test_ten_thousand_starts_agree_with_one_by_one():
    loss = losses.rosenbrock(2)
    X = np.random.default_rng(1).uniform(-2, 2, size=(10_000, 2))
    batch = fs.gradient_flow(loss, X, 1.0, method="RK45", rtol=1e-8, atol=1e-10, t_eval=[1.0])
    for i in np.random.default_rng(2).choice(10_000, 50, replace=False):
        one = solve_ivp(lambda t, x: -rosen_der(x), (0, 1.0), X[i], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(batch.x_final[i], one.y[:, -1], rtol=1e-5, atol=1e-6)
