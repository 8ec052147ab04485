"""Every fact a named loss carries is checked against its compiled derivatives."""
import collections

import numpy as np
import pytest

import flowsim as fs
from flowsim import PointKind, losses

from .conftest import central_difference

ALL = [losses.rosenbrock, lambda: losses.rosenbrock(3), lambda: losses.rosenbrock(5),
       losses.himmelblau, losses.six_hump_camel, losses.beale, losses.monkey_saddle,
       losses.saddle, losses.double_well, losses.ill_conditioned_quadratic,
       lambda: losses.quadratic([[1.0, 2.0], [2.0, -3.0]], [0.5, -1.0]),
       lambda: losses.least_squares(np.c_[[1.0, 2, 3, 4], np.ones(4)], [2.0, 4, 5, 4])]


def _kind_from_hessian(H):
    return fs.kind_of_spectrum(np.linalg.eigvalsh(H))


@pytest.mark.parametrize("eigs, kind", [
    ([1.0, 2.0], PointKind.MINIMUM), ([-1.0, -2.0], PointKind.MAXIMUM),
    ([-1.0, 2.0], PointKind.SADDLE), ([0.0, 2.0], PointKind.DEGENERATE),
    ([1e-9, 1.0], PointKind.DEGENERATE), ([1e-7, 1.0], PointKind.MINIMUM),
    ([-1e5, 1e-4], PointKind.DEGENERATE),  # relative to the largest magnitude
    ([-1e5, 1e-2], PointKind.SADDLE), ([1e-9], PointKind.DEGENERATE),  # scale at least 1
])
def test_one_rule_for_a_points_kind(eigs, kind):
    assert fs.kind_of_spectrum(eigs) is kind
    if 0.0 in eigs:  # a zero coefficient drops the variable from the formula
        return
    assert fs.classify(f"{eigs[0]}*x**2/2" + (f" + {eigs[1]}*y**2/2" if len(eigs) > 1 else ""),
                       [0.0] * len(eigs)).kind is kind


@pytest.mark.parametrize("make", ALL)
def test_listed_critical_points_are_critical_and_of_their_kind(make):
    loss = make()
    facts = loss.facts
    assert facts.critical_points
    for cp in facts.critical_points:
        scale = 1.0 + np.abs(loss.hess(cp.point)).max()
        assert np.linalg.norm(loss.grad(cp.point)) < 1e-11 * scale
        assert _kind_from_hessian(loss.hess(cp.point)) is cp.kind
        if cp.kind is PointKind.MINIMUM and cp.is_global:
            assert loss.value(cp.point) == pytest.approx(facts.min_value, abs=1e-12)


@pytest.mark.parametrize("make, counts", [
    (losses.himmelblau, {"minimum": 4, "maximum": 1, "saddle": 4}),
    (losses.six_hump_camel, {"minimum": 6, "maximum": 2, "saddle": 7}),
    (losses.double_well, {"minimum": 2, "saddle": 1}),
    (losses.monkey_saddle, {"degenerate": 1}),
])
def test_complete_listings_have_the_literature_counts(make, counts):
    facts = make().facts
    assert facts.complete
    assert collections.Counter(str(p.kind) for p in facts.critical_points) == counts
    pts = np.array([p.point for p in facts.critical_points])
    assert len(np.unique(pts.round(6), axis=0)) == len(pts)


def test_literature_values():
    h = losses.himmelblau()
    mx = [p.point for p in h.facts.critical_points if p.kind is PointKind.MAXIMUM][0]
    np.testing.assert_allclose(mx, [-0.270845, -0.923039], atol=1e-6)
    assert h.value(mx) == pytest.approx(181.617, abs=1e-3)
    camel = losses.six_hump_camel()
    for p in camel.facts.global_minimizers:
        np.testing.assert_allclose(np.abs(p), [0.0898, 0.7126], atol=1e-4)
        assert camel.value(p) == pytest.approx(-1.0316, abs=1e-4)
    r5 = losses.rosenbrock(5)
    local = [p for p in r5.facts.critical_points if not p.is_global][0]
    assert local.point[0] == pytest.approx(-0.962, abs=1e-3)


@pytest.mark.parametrize("make", [lambda: losses.quadratic([[3.0, 1.0], [1.0, 2.0]], [1, -1]),
                                  losses.saddle,
                                  lambda: losses.least_squares(np.c_[[1.0, 2, 3], [1, 1, 1]],
                                                               [1.0, 0, 2])])
def test_closed_form_flows_solve_the_ode(make):
    loss = make()
    flow = loss.facts.flow_solution
    x0 = np.array([0.7, -0.4])
    np.testing.assert_allclose(flow(0.0, x0), x0, rtol=1e-15)
    for t in (0.1, 0.5, 1.3):
        dxdt = central_difference(lambda s: flow(s[0], x0), np.array([t]), h=1e-5)[:, 0]
        np.testing.assert_allclose(dxdt, -loss.grad(flow(t, x0)), rtol=1e-7, atol=1e-8)


def test_least_squares_minimizer_matches_polyfit():
    X, Y = np.array([1.0, 2, 3, 4]), np.array([2.0, 4, 5, 4])
    loss = losses.least_squares(np.c_[X, np.ones(4)], Y)
    np.testing.assert_allclose(loss.facts.global_minimizers[0], np.polyfit(X, Y, 1))
    assert loss.facts.min_value == pytest.approx(np.mean((0.7 * X + 2 - Y) ** 2) / 2)


def test_lasso_composite_and_logistic_labels(rng):
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    comp = losses.lasso(X, y, 0.5)
    w = rng.normal(size=3)
    assert comp.value(w) == pytest.approx(comp.full.value(w))
    assert comp.value(w) == pytest.approx(np.sum((X @ w - y) ** 2) / 40 + 0.5 * np.abs(w).sum())
    a = losses.logistic_regression(X, y > 0)
    b = losses.logistic_regression(X, np.where(y > 0, 1, -1))
    np.testing.assert_allclose(a.grad(w), b.grad(w))
    margins = np.where(y > 0, 1, -1) * (X @ w)
    assert a.value(w) == pytest.approx(np.mean(np.log1p(np.exp(-margins))))
    with pytest.raises(ValueError, match="labels"):
        losses.logistic_regression(X, np.arange(20))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="symmetric"):
        losses.quadratic([[1.0, 2.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="x_star must be"):
        losses.quadratic(np.eye(2), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="n must be an integer from 2"):
        losses.rosenbrock(1)
    with pytest.raises(ValueError, match="kappa"):
        losses.ill_conditioned_quadratic(0.5)
    with pytest.raises(ValueError, match="lam must be"):
        losses.lasso(np.eye(2), [1.0, 2.0], -1.0)


def test_chained_rosenbrock_compiles_in_thousands_of_variables():
    # past the default derivative budget (150,000 operations at n ~ 3,700): the named loss
    # sizes its own budget, compiles without common-subexpression elimination (its terms are
    # local) and polishes its known points with sparse Newton steps
    from scipy.optimize import rosen, rosen_der, rosen_hess
    from flowsim.loss._compile import _wide_and_local
    import symengine as se
    n = 4000
    loss = losses.rosenbrock(n)
    x = np.random.default_rng(3).uniform(-1.5, 1.5, n)
    assert loss.value(x) == pytest.approx(rosen(x), rel=1e-13)
    np.testing.assert_allclose(loss.grad(x), rosen_der(x), rtol=1e-12, atol=1e-9)
    assert abs(loss.hess(x, sparse=True) - rosen_hess(x)).max() < 1e-9
    local = loss.facts.minimizers[1]
    assert np.linalg.norm(rosen_der(local)) < 1e-8 and local[0] == pytest.approx(-0.99, abs=0.01)
    xs = se.symbols(" ".join(f"v{i}" for i in range(300)))
    assert _wide_and_local(list(xs), [se.Add(*[(a - b ** 2) ** 2 for a, b in zip(xs, xs[1:])])])
    shared = se.tanh(se.Add(*xs))   # every term holds all 300 variables: cse pays
    assert not _wide_and_local(list(xs), [se.Add(*[shared * a for a in xs])])
