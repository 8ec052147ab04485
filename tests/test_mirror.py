"""Mirror and natural-gradient methods against closed forms: exponentiated gradient on a
linear loss (x_k = x0 exp(-c eta k) = x(k eta) of the mirror flow), the Euclidean reduction
to gradient descent and the gradient flow, and the empirical order 1 against the flow."""
import numpy as np
import pytest

import flowsim as fs
from flowsim import methods
from flowsim.flows.mirror import mirror_flow
from flowsim.schemes.mirror_descent import (bregman_proximal_point, mirror_descent,
                                            natural_gradient)

ENTROPY = "x*log(x) + y*log(y)"


def test_exponentiated_gradient_on_a_linear_loss_is_the_flow_exactly():
    c, x0, eta = np.array([2.0, -0.5]), np.array([1.0, 2.0]), 0.05
    md = mirror_descent("2*x - 0.5*y", x0, eta, 40, potential=ENTROPY)
    k = np.arange(41)[:, None]
    np.testing.assert_allclose(md.xs, x0 * np.exp(-c * eta * k), rtol=1e-13)
    flow = mirror_flow("2*x - 0.5*y", x0, 2.0, potential=ENTROPY)
    np.testing.assert_allclose(flow.dense(md.ts[-1]), md.xs[-1], rtol=1e-9)
    np.testing.assert_allclose(flow.xs[-1], x0 * np.exp(-c * 2.0), rtol=1e-9)


def test_the_euclidean_potential_gives_gradient_descent_and_the_gradient_flow():
    loss = fs.losses.himmelblau()
    md = mirror_descent(loss, [0.5, 1.0], 0.01, 30, potential="(x**2 + y**2)/2")
    gd = fs.gradient_descent(loss, [0.5, 1.0], 0.01, 30)
    np.testing.assert_allclose(md.xs, gd.xs, rtol=1e-13, atol=1e-13)
    ng = natural_gradient(loss, [0.5, 1.0], 0.01, 30)
    np.testing.assert_allclose(ng.xs, gd.xs, rtol=1e-13, atol=1e-13)
    flow = mirror_flow(loss, [0.5, 1.0], 0.3, potential="(x**2 + y**2)/2")
    gf = fs.gradient_flow(loss, [0.5, 1.0], 0.3, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(flow.xs[-1], gf.xs[-1], atol=1e-8)


@pytest.mark.parametrize("name, options", [
    ("mirror_descent", {"potential": ENTROPY}),
    ("bregman_proximal_point", {"potential": ENTROPY}),
    ("natural_gradient", {"metric": [["1 + x**2", "x*y/4"], ["x*y/4", "1 + y**2"]]})])
def test_first_order_against_its_own_flow(name, options):
    loss = fs.Loss("(x - 2)**2 + (y - 0.5)**2 + x*y/4")
    x0, T, etas, errors = [1.0, 1.5], 1.0, [0.02, 0.01, 0.005], []
    flow = mirror_flow(loss, x0, T, **options)
    for eta in etas:
        run = methods.get(name).function(loss, x0, eta, int(round(T / eta)), **options)
        errors.append(np.linalg.norm(run.xs[-1] - flow.dense(T)))
    assert np.polyfit(np.log(etas), np.log(errors), 1)[0] == pytest.approx(1.0, abs=0.1)


def test_bregman_proximal_point_closed_forms():
    # a linear loss has a constant gradient: the implicit step is exponentiated gradient too
    bpp = bregman_proximal_point("2*x - 0.5*y", [1.0, 2.0], 0.05, 20, potential=ENTROPY)
    np.testing.assert_allclose(bpp.xs[-1], [np.exp(-2.0), 2 * np.exp(0.5)], rtol=1e-12)
    # the Euclidean potential gives proximal point; the implicit equation holds at each step
    loss = fs.losses.himmelblau()
    a = bregman_proximal_point(loss, [0.5, 1.0], 0.01, 10)
    b = fs.proximal_point(loss, [0.5, 1.0], 0.01, 10)
    np.testing.assert_allclose(a.xs, b.xs, atol=1e-10)
    c = bregman_proximal_point(loss, [0.5, 1.0], 0.01, 10, potential="x*log(x) + y*log(y)")
    for u, v in zip(c.xs[:-1], c.xs[1:]):
        np.testing.assert_allclose(np.log(v) + 0.01 * loss.grad(v), np.log(u), atol=1e-10)


def test_newton_inverse_for_a_non_separable_potential():
    psi = "(x**2 + y**2)/2 + (x + y)**4/12"
    loss = fs.Loss("(x - 1)**2 + (y + 1)**2")
    md = mirror_descent(loss, [0.3, 0.2], 0.1, 5, potential=psi)
    P = fs.Loss(psi)
    for a, b in zip(md.xs[:-1], md.xs[1:]):
        np.testing.assert_allclose(P.grad(b), P.grad(a) - 0.1 * loss.grad(a), atol=1e-12)


def test_natural_gradient_with_the_hessian_metric_is_the_mirror_flow():
    psi = "x**4/12 + x**2/2 + y**2/2"
    metric = [["x**2 + 1", "0"], ["0", "1"]]
    loss = fs.Loss("(x - 1)**2 + y**2")
    a = mirror_flow(loss, [2.0, 1.0], 1.0, potential=psi)
    b = mirror_flow(loss, [2.0, 1.0], 1.0, metric=metric)
    np.testing.assert_allclose(a.xs, b.xs, atol=1e-9)


def test_a_step_out_of_the_domain_fails_in_band():
    md = mirror_descent("x + y", [1.0, 1.0], 0.1, 15, potential="x**3/3 + y**2/2")
    # grad psi = (x^2, y) (Newton: two branches): x^2 = 1 - 0.1 k has no real root past k = 10
    assert md.status is fs.Status.FAILED and "inverse mirror map" in md.message
    assert np.all(np.isfinite(md.xs)) and len(md.xs) <= 12


@pytest.mark.parametrize("call, match", [
    (lambda: mirror_flow("x**2 + y**2", [1.0, 1.0], 1.0, potential="x**2",
                         metric=[[1, 0], [0, 1]]), "not both"),
    (lambda: natural_gradient("x**2 + y**2", [1.0, 1.0], 0.1, 2, metric=[[1, 0]]), "metric"),
    (lambda: mirror_descent("x**2 + y**2", [1.0, 1.0], 0.1, 2, potential=3), "potential"),
    (lambda: mirror_descent("x**2 + y**2", [1.0, 1.0], 0.1, 2, potential="z**2"), "z"),
])
def test_bad_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# --- the simplex entropy, a named potential in any dimension ---------------------------------
C5 = np.array([1.0, -0.5, 2.0, 0.3, 0.0])
LINEAR5 = fs.Loss(" + ".join(f"{c}*x{i}" for i, c in enumerate(C5)), [f"x{i}" for i in range(5)])
P5 = np.array([0.1, 0.2, 0.3, 0.25, 0.15])


def _tilted(t):
    """x0 exp(-t c) / Z: exponentiated gradient and the replicator flow on c.x, closed form."""
    w = P5 * np.exp(-np.outer(t, C5))
    return w / w.sum(axis=1, keepdims=True)


def test_simplex_mirror_descent_is_exponentiated_gradient():
    run = fs.mirror_descent(LINEAR5, P5, 0.1, 50, potential="simplex")
    np.testing.assert_allclose(run.xs, _tilted(0.1 * np.arange(51)), rtol=1e-13, atol=1e-16)
    assert "exponentiated gradient" in run.label
    # the orthant entropy is the unnormalized update and leaves the simplex
    names = [f"x{i}" for i in range(5)]
    orthant = fs.mirror_descent(LINEAR5, P5, 0.1, 50,
                                potential=" + ".join(f"{v}*log({v})" for v in names))
    assert abs(orthant.xs[-1].sum() - 1) > 0.1


def test_simplex_mirror_flow_is_the_replicator_equation():
    flow = fs.mirror_flow(LINEAR5, P5, 5.0, potential="simplex")
    assert flow.status is fs.Status.REACHED_END
    np.testing.assert_allclose(flow.xs, _tilted(flow.ts), rtol=1e-8, atol=1e-11)


def test_simplex_bregman_proximal_point_stays_on_the_simplex():
    # linear loss: the implicit step is the explicit one (the gradient is constant)
    run = fs.bregman_proximal_point(LINEAR5, P5, 0.1, 20, potential="simplex")
    np.testing.assert_allclose(run.xs, _tilted(0.1 * np.arange(21)), rtol=1e-12, atol=1e-16)
    # a quadratic whose minimizer over the simplex is on its boundary: the projection of
    # (0.9, 0.3, -0.5) onto the simplex, (0.8, 0.2, 0)
    q = fs.Loss("(x - 0.9)**2 + (y - 0.3)**2 + (z + 0.5)**2")
    md = fs.mirror_descent(q, [1 / 3, 1 / 3, 1 / 3], 0.5, 3000, potential="simplex")
    np.testing.assert_allclose(md.xs[-1], [0.8, 0.2, 0.0], atol=1e-4)
    np.testing.assert_allclose(md.xs.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("x0, match", [([0.5, 0.5, 0.5], "summing to 1"),
                                       ([0.5, 0.5, 0.0], "positive entries")])
def test_simplex_starts_must_lie_on_the_simplex(x0, match):
    q = fs.Loss("x**2 + y**2 + z**2")
    for call in (lambda: fs.mirror_descent(q, x0, 0.1, 3, potential="simplex"),
                 lambda: fs.mirror_flow(q, x0, 0.1, potential="simplex")):
        with pytest.raises(ValueError, match=match):
            call()


def test_mirror_flow_batches_are_their_single_runs_and_the_closed_form():
    starts = np.random.default_rng(0).dirichlet(np.ones(5), size=6)
    batch = fs.mirror_flow(LINEAR5, starts, 3.0, potential="simplex")
    assert "batched on DOP853" in batch.label and len(batch.status) == 6
    w = starts[:, None, :] * np.exp(-batch.ts[None, :, None] * C5)
    np.testing.assert_allclose(batch.xs, w / w.sum(axis=-1, keepdims=True), atol=1e-12)
    on_workers = fs.mirror_flow(LINEAR5, starts, 3.0, potential="simplex", workers=2)
    np.testing.assert_array_equal(on_workers.xs, batch.xs)
    metric = [["1 + x**2", "0"], ["0", "1"]]
    X = np.array([[1.0, 2.0], [0.5, -1.0]])
    many = fs.mirror_flow("x**2 + 3*y**2", X, 1.0, metric=metric)
    for i, x0 in enumerate(X):
        one = fs.mirror_flow("x**2 + 3*y**2", x0, 1.0, metric=metric, t_eval=many.ts)
        np.testing.assert_allclose(many.xs[i], one.xs, atol=1e-8)
