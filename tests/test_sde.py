"""SGD's sampling, chains and momentum, and its stochastic modified equations, checked against
stationary variances from theory (eta s^2 / (a (2 - eta a)) for SGD, eta s^2 / (2 a) for the
SDE), the weak order of the first two moments, and heavy ball as full-batch SGD+momentum."""
import numpy as np
import pytest

import flowsim as fs
from flowsim.flows.sde import sgd_sde

# l_i(x) = x^2/2 - t_i x: gradient x - t_i, additive noise of variance 1 (a = 1, s = 1)
NOISY = fs.Loss.from_samples("x**2/2 - t*x", {"t": [1.0, -1.0]}, ["x"])


def test_stationary_variances_of_sgd_and_its_sde():
    eta = 0.1
    sgd = fs.sgd(NOISY, [0.0], eta, 400, sampling="with_replacement", chains=4000, seed=1,
                 record_every=10)
    assert sgd.xs[:, 10:, 0].var() == pytest.approx(eta / (2 - eta), rel=0.03)
    sde = sgd_sde(NOISY, [0.0], eta, 40.0, paths=4000, seed=2, n_outputs=41)
    assert sde.xs[:, 10:, 0].var() == pytest.approx(eta / 2, rel=0.03)
    assert sde.method == "sgd_sde" and sde.xs.shape == (4000, 41, 1)


def test_reshuffling_cancels_noise_within_an_epoch():
    eta = 0.1
    kw = dict(chains=2000, seed=3, record_every=10)
    replace = fs.sgd(NOISY, [0.0], eta, 400, sampling="with_replacement", **kw)
    shuffle = fs.sgd(NOISY, [0.0], eta, 400, sampling="reshuffle", **kw)
    assert shuffle.xs[:, 10:, 0].var() < 0.2 * replace.xs[:, 10:, 0].var()


def _moment_errors(order, etas, paths=20000):
    x0, T, e1, e2 = [3.0], 1.0, [], []
    for eta in etas:
        a = fs.sgd(NOISY, x0, eta, int(round(T / eta)), sampling="with_replacement",
                   chains=paths, seed=4, record="final").xs[:, -1, 0]
        b = sgd_sde(NOISY, x0, eta, T, order=order, paths=paths, substeps=40, seed=5,
                    n_outputs=2).xs[:, -1, 0]
        e1.append(abs(a.mean() - b.mean()))
        e2.append(abs((a ** 2).mean() - (b ** 2).mean()))
    return np.array(e1), np.array(e2)


def test_weak_order_one_and_two():
    etas = [0.25, 0.125, 0.0625]
    e1, e2 = _moment_errors(1, etas)
    for e in (e1, e2):
        assert np.polyfit(np.log(etas), np.log(e), 1)[0] == pytest.approx(1.0, abs=0.2)
    f1, _ = _moment_errors(2, etas[:2])
    assert np.log2(f1[0] / f1[1]) == pytest.approx(2.0, abs=0.4)
    assert np.all(f1 < e1[:2] / 4)


def test_full_batch_sgd_with_momentum_is_the_heavy_ball():
    loss = fs.Loss.from_samples("(w*a - b)**2/2", {"a": [1.0, 2.0, 0.5], "b": [1.0, 0.0, 2.0]},
                                ["w"])
    sgd = fs.sgd(loss, [2.0], 0.1, 30, batch_size=3, momentum=0.7)
    hb = fs.heavy_ball(loss, [2.0], 0.1, 30, momentum=0.7)
    np.testing.assert_allclose(sgd.xs, hb.xs, rtol=1e-12, atol=1e-14)


def test_chains_are_independent_and_reproducible():
    a = fs.sgd(NOISY, [0.0], 0.1, 20, sampling="with_replacement", chains=50, seed=7)
    b = fs.sgd(NOISY, [0.0], 0.1, 20, sampling="with_replacement", chains=50, seed=7)
    np.testing.assert_array_equal(a.xs, b.xs)
    assert len(np.unique(a.xs[:, -1, 0])) > 10
    shared = fs.sgd(NOISY, [[0.0], [1.0]], 0.1, 20, sampling="with_replacement", seed=7)
    np.testing.assert_allclose(shared.xs[1, :, 0] - shared.xs[0, :, 0],
                               0.9 ** np.arange(21), rtol=1e-12)  # same mini-batches


@pytest.mark.parametrize("call, match", [
    (lambda: fs.sgd(NOISY, [0.0], 0.1, 5, sampling="replace"), "sampling"),
    (lambda: fs.sgd(NOISY, [0.0], 0.1, 5, momentum=1.0), "momentum"),
    (lambda: fs.sgd(NOISY, [0.0], 0.1, 5, chains=0), "chains"),
    (lambda: sgd_sde(NOISY, [0.0], 0.1, 1.0, order=3), "order"),
    (lambda: sgd_sde(fs.Loss("x**2"), [0.0], 0.1, 1.0), "finite-sum"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
