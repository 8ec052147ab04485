"""Proximal operators against their closed forms, the Moreau identity and the envelope."""
import numpy as np
import pytest
import scipy.optimize

from flowsim.prox import L1, Box, ElasticNet, GroupL1, L2Squared, MoreauEnvelope, NonNegative

PENALTIES = [L1(0.7), L2Squared(1.3), ElasticNet(0.4, 0.8), Box([-1.0, 0.0, -2.0], [1.0, 0.5, 0.0]),
             NonNegative(), GroupL1([[0, 2], [1]], 0.6)]


@pytest.mark.parametrize("g", PENALTIES, ids=lambda g: type(g).__name__)
def test_prox_is_the_argmin(g, rng):
    # independent oracle: minimize g(y) + |y - v|^2 / (2 eta) numerically (finite penalties)
    for _ in range(5):
        v = rng.normal(size=3) * 2
        eta = float(rng.uniform(0.1, 2.0))
        p = g.prox(v, eta)
        assert np.isfinite(g.value(p))
        objective = lambda y: g.value(y) + np.sum((y - v) ** 2) / (2 * eta)  # noqa: E731
        if isinstance(g, (Box, NonNegative)):
            lo = np.asarray(getattr(g, "lower", 0.0)) * np.ones(3)
            up = np.asarray(getattr(g, "upper", np.inf)) * np.ones(3)
            ref = scipy.optimize.minimize(lambda y: np.sum((y - v) ** 2), np.clip(v * 0, lo, up),
                                          bounds=list(zip(lo, up))).x
        else:
            ref = scipy.optimize.minimize(objective, v, method="Nelder-Mead",
                                          options={"xatol": 1e-10, "fatol": 1e-14,
                                                   "maxiter": 20000}).x
        assert objective(p) <= objective(ref) + 1e-9
        np.testing.assert_allclose(p, ref, atol=1e-4)


def test_closed_forms():
    np.testing.assert_allclose(L1(1.0).prox([3.0, -0.5, -2.0], 0.5), [2.5, 0.0, -1.5])
    np.testing.assert_allclose(L2Squared(2.0).prox([3.0], 0.5), [1.5])
    np.testing.assert_allclose(ElasticNet(1.0, 2.0).prox([3.0], 0.5), [1.25])
    np.testing.assert_allclose(GroupL1([[0, 1]], 1.0).prox([3.0, 4.0], 1.0), [2.4, 3.2])
    np.testing.assert_allclose(GroupL1([[0, 1]], 1.0).prox([0.3, 0.4], 1.0), [0.0, 0.0])
    # batches and a step per point
    V = np.array([[3.0, -3.0], [0.5, 1.0]])
    np.testing.assert_allclose(L1(1.0).prox(V, np.array([[1.0], [0.25]])),
                               [[2.0, -2.0], [0.25, 0.75]])


@pytest.mark.parametrize("g", [L1(0.7), L2Squared(1.3), NonNegative(), GroupL1([[0, 2], [1]], 0.6)],
                         ids=lambda g: type(g).__name__)
def test_moreau_identity(g, rng):
    for _ in range(10):
        v = rng.normal(size=3) * 3
        eta = float(rng.uniform(0.05, 3.0))
        np.testing.assert_allclose(g.prox(v, eta) + eta * g.conjugate_prox(v / eta, 1 / eta), v,
                                   atol=1e-12)


def test_moreau_envelope_is_huber_and_gradient_matches_fd():
    env = MoreauEnvelope(L1(1.0), 0.5)
    x = np.linspace(-2, 2, 41)[:, None]
    huber = np.where(np.abs(x[:, 0]) <= 0.5, x[:, 0] ** 2 / (2 * 0.5), np.abs(x[:, 0]) - 0.25)
    np.testing.assert_allclose(env.value(x), huber, atol=1e-14)
    h = 1e-6
    fd = (env.value(x + h) - env.value(x - h)) / (2 * h)
    np.testing.assert_allclose(env.grad(x)[:, 0], fd, atol=1e-6)
    assert np.all(env.value(x) <= L1(1.0).value(x) + 1e-15)


def test_bad_penalties():
    with pytest.raises(ValueError, match="lam must be"):
        L1(-1.0)
    with pytest.raises(ValueError, match="eta must be finite and > 0"):
        L1(1.0).prox([1.0], 0.0)
    with pytest.raises(ValueError, match="lower <= upper"):
        Box([1.0], [0.0])
    with pytest.raises(ValueError, match="disjoint"):
        GroupL1([[0, 1], [1, 2]], 1.0)
