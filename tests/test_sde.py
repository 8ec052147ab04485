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


def _sgd_moments(x0, eta, steps):
    """Exact E x_k and E x_k^2 of SGD with replacement on NOISY: x' = (1 - eta) x + eta t,
    t = +-1 with equal odds."""
    m1, m2 = x0, x0 ** 2
    for _ in range(steps):
        m1, m2 = (1 - eta) * m1, (1 - eta) ** 2 * m2 + eta ** 2
    return m1, m2


def _moment_errors(order, etas, paths=200000):
    """Weak errors of the SDE (default substeps) against SGD's exact moments at T = 1."""
    x0, e1, e2 = 30.0, [], []   # a bias of order x0 eta^2 against noise of order 1e-3
    for eta in etas:
        m1, m2 = _sgd_moments(x0, eta, int(round(1.0 / eta)))
        b = sgd_sde(NOISY, [x0], eta, 1.0, order=order, paths=paths, seed=5,
                    n_outputs=2).xs[:, -1, 0]
        e1.append(abs(b.mean() - m1))
        e2.append(abs((b ** 2).mean() - m2))
    return np.array(e1), np.array(e2)


def test_weak_order_one_and_two_as_eta_shrinks_with_default_substeps():
    etas = [0.2, 0.1, 0.05]
    e1, e2 = _moment_errors(1, etas)
    f1, f2 = _moment_errors(2, etas)
    for e in (e1, e2):
        assert np.polyfit(np.log(etas), np.log(e), 1)[0] == pytest.approx(1.0, abs=0.15)
    for f in (f1, f2):
        assert np.polyfit(np.log(etas), np.log(f), 1)[0] == pytest.approx(2.0, abs=0.2)
    assert np.all(f1 < e1 / 5)


def test_reshuffled_sampling_is_refused_unless_the_batch_is_everything():
    with pytest.raises(ValueError, match="reshuffle.*not Brownian"):
        sgd_sde(NOISY, [0.0], 0.1, 1.0, sampling="reshuffle")
    full = sgd_sde(NOISY, [3.0], 0.1, 1.0, sampling="reshuffle", batch_size=2, order=2,
                   paths=3, n_outputs=2)
    # no noise: every path is the modified flow x' = -(1 + eta/2) x, by Heun's method with
    # dt = eta / 4 (amplification 1 - h + h^2/2, h = 1.05 dt): O(dt^2) from the exact flow
    h = 1.05 * 0.1 / 4
    np.testing.assert_allclose(full.xs[:, -1, 0], 3 * (1 - h + h * h / 2) ** 40, rtol=1e-12)
    np.testing.assert_allclose(full.xs[:, -1, 0], 3 * np.exp(-1.05), rtol=3e-4)


def test_sde_path_that_diverges_stops_with_a_status():
    steep = fs.Loss.from_samples("x**4 - t*x", {"t": [1.0, -1.0]}, ["x"])
    run = sgd_sde(steep, [30.0], 0.1, 5.0, paths=10)
    assert run.status[0] == fs.Status.DIVERGED and "finite" in run.message[0]
    assert np.isfinite(run.xs[:, 0]).all()


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


def test_paths_that_blow_up_are_held_and_the_others_go_on():
    # drift w^3 - w: paths that the noise carries past |w| = 1 blow up, the others stay in
    # the well. Before, the first path to overflow ended every path "diverged" and the
    # outputs after it were NaN.
    loss = fs.Loss.from_samples("w**2/2 - w**4/4 + t*w", {"t": [-1.0, 1.0]}, ["w"])
    run = fs.sgd_sde(loss, [0.8], 0.1, 20.0, paths=200, seed=3)
    kinds = {s.value for s in run.status}
    assert kinds == {"diverged", "reached_end"} and np.isfinite(run.xs).all()
    for i, status in enumerate(run.status):
        if status == fs.Status.DIVERGED:
            assert "became non-finite" in run.message[i]
            held = run.xs[i, run.ts >= run.t_stop[i], 0]
            assert held.size < len(run.ts) and np.all(held == held[0])
        else:
            assert run.message[i] == "reached t_end = 20 in 800 steps"
            assert run.t_stop[i] == run.ts[-1] and abs(run.xs[i, -1, 0]) < 1.5
