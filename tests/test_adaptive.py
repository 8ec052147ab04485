"""Adam and its ODE, Adam against sign descent, and the argument checks of the adaptive
family (the per-coordinate recurrences are checked in tests/test_registry.py)."""
import numpy as np
import pytest

import flowsim as fs

LOSS = "(x - 2)**2 + (y - 0.5)**2 + x*y/4 + x**4/20"


def test_adam_follows_its_ode_to_first_order():
    x0, T, etas, errors = [1.0, 1.5], 1.0, [0.02, 0.01, 0.005, 0.0025], []
    flow = fs.adam_flow(LOSS, x0, T, a=1.0, b=2.0)
    assert flow.method == "adam_flow" and flow.status is fs.Status.REACHED_END
    for eta in etas:
        run = fs.adam(LOSS, x0, eta, int(round(T / eta)), beta1=1 - eta, beta2=1 - 2 * eta)
        errors.append(np.linalg.norm(run.xs[-1] - flow.dense(T)))
    assert np.polyfit(np.log(etas), np.log(errors), 1)[0] == pytest.approx(1.0, abs=0.1)


def test_adam_without_averaging_or_eps_is_sign_descent():
    q = "x**2/2 + 50*y**2"
    a = fs.adam(q, [1.0, 0.33], 0.05, 40, beta1=0.0, beta2=0.0, eps=0.0)
    s = fs.sign_descent(q, [1.0, 0.33], 0.05, 40)
    np.testing.assert_allclose(a.xs, s.xs, rtol=0, atol=1e-15)


def test_adam_with_tiny_eps_steps_like_sign_descent_on_an_ill_conditioned_quadratic():
    # every coordinate moves by about eta per step whatever its curvature (1 vs 10,000)
    q = "x**2/2 + 5000*y**2"
    run = fs.adam(q, [1.0, 1.0], 0.01, 20, eps=1e-12)
    steps = np.abs(np.diff(run.xs, axis=0))
    np.testing.assert_allclose(steps[0], 0.01, rtol=1e-9)
    assert np.all(np.abs(steps[:10] / 0.01 - 1) < 0.05)
    gd = fs.gradient_descent(q, [1.0, 1.0], 1e-4, 20)   # GD must use a tiny step instead
    assert np.abs(np.diff(gd.xs, axis=0))[0, 0] < 1e-3


@pytest.mark.parametrize("call, match", [
    (lambda: fs.adam(LOSS, [0.0, 0.0], 0.1, 2, beta1=1.0), "beta1"),
    (lambda: fs.adam(LOSS, [0.0, 0.0], 0.1, 2, eps=-1.0), "eps"),
    (lambda: fs.rmsprop(LOSS, [0.0, 0.0], 0.1, 2, rho=1.5), "rho"),
    (lambda: fs.adam_flow(LOSS, [0.0, 0.0], 1.0, a=0.0), "a"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_compare_draws_adam_and_the_mirror_methods_next_to_their_flows():
    c = fs.compare(LOSS, [1.0, 1.5], 0.01, 50, schemes=("adam", "md", "bpp", "ngd"))
    assert c.references["adam"] == "adam_flow"
    assert c.references["mirror_descent"] == c.references["bregman_proximal_point"] == \
        "mirror_flow"
    assert all(t.status is fs.Status.REACHED_END for t in c.schemes.values())
    # with the Euclidean defaults the mirror methods sit within O(eta) of the gradient flow
    assert np.abs(c.schemes["mirror_descent"].xs[-1] - c.flows["mirror_flow"].xs[-1]).max() < 0.05


def test_adam_flow_batches_are_their_single_runs():
    loss = fs.losses.rosenbrock(2)
    X = np.array([[-1.0, 1.5], [0.5, 0.5], [1.5, 2.0]])
    batch = fs.adam_flow(loss, X, 3.0)
    assert "batched on DOP853" in batch.label
    assert batch.extras["m"].shape == batch.xs.shape == batch.extras["v"].shape
    for i, x0 in enumerate(X):
        one = fs.adam_flow(loss, x0, 3.0, t_eval=batch.ts)
        np.testing.assert_allclose(batch.xs[i], one.xs, atol=1e-8)
        np.testing.assert_allclose(batch.extras["m"][i], one.extras["m"], atol=1e-6)
    on_workers = fs.adam_flow(loss, X, 3.0, workers=2)
    np.testing.assert_array_equal(on_workers.xs, batch.xs)
