"""The complete critical-point search: interval enclosures, Krawczyk proofs, honest budgets.

Oracles: dense sampling and 50-digit mpmath for the enclosures; separable structure
(2-D Rastrigin's points are products of the 1-D ones, found by brentq on a fine grid);
closed forms (Easom's minimum at (pi, pi), the circle of minima of (x^2 + y^2 - 1)^2,
``lstsq`` for least squares); the literature listings carried by the named losses.
"""
import collections

import mpmath
import numpy as np
import pytest
import scipy.optimize
import sympy as sp

import flowsim as fs
from flowsim import losses
from flowsim.interval import Enclosure, enclose

x, y = sp.symbols("x y", real=True)

FUNCTIONS = [
    x ** 2 - 3 * x * y, sp.exp(x) * sp.sin(3 * y), sp.log(x ** 2 + 1) - sp.cos(x * y),
    sp.tan(x / 2), sp.asin(x / 4) + sp.acos(y / 4), sp.atan(x) * sp.sinh(y),
    sp.cosh(x - y) / (1 + y ** 2), sp.tanh(x) + sp.erf(y), sp.Abs(x - y) + sp.sign(x),
    sp.Max(x, y) - sp.Min(x, 2 * y), sp.atan2(y, x), sp.sqrt(x ** 2 + y ** 2),
    (x ** 2 + 1) ** sp.Rational(3, 2), x ** -3, 2 ** (x * y), sp.Heaviside(x) * y,
    (x * y) ** 4 - x ** 5,
]


@pytest.mark.parametrize("expr", FUNCTIONS, ids=str)
def test_enclosures_hold_every_sampled_value(expr):
    rng = np.random.default_rng(1)
    enc = Enclosure([expr], [x, y])
    f = sp.lambdify((x, y), expr, modules=["numpy", {"erf": __import__("scipy").special.erf,
                                                      "Heaviside": lambda u: np.heaviside(u, .5)}])
    for _ in range(40):
        c = rng.uniform(-4, 4, 2)
        r = rng.uniform(1e-3, 2.0, 2) * rng.choice([1e-3, 1.0], 2)
        b = enc({x: (np.array([c[0] - r[0]]), np.array([c[0] + r[0]])),
                 y: (np.array([c[1] - r[1]]), np.array([c[1] + r[1]]))})
        s = c + r * rng.uniform(-1, 1, (400, 2))
        s = np.vstack([s, c + r * np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]])])
        with np.errstate(all="ignore"):
            v = np.asarray(f(s[:, 0], s[:, 1]), dtype=float) * np.ones(len(s))
        v = v[np.isfinite(v)]
        if b.nowhere[0, 0]:
            assert not len(v)
            continue
        assert np.all(v >= b.lo[0, 0]) and np.all(v <= b.hi[0, 0]), (c, r)


def test_enclosures_are_outward_and_tight_against_mpmath():
    mpmath.mp.dps = 50
    cases = [(sp.exp(x), mpmath.exp, (0.1, 0.7)), (sp.log(x), mpmath.log, (0.3, 2.9)),
             (sp.atan(x), mpmath.atan, (-3.0, 0.2)), (sp.sqrt(x), mpmath.sqrt, (0.2, 5.0)),
             (sp.sinh(x), mpmath.sinh, (-1.3, 0.4)), (x ** 3, lambda t: t ** 3, (-1.1, 0.7))]
    for expr, f, (a, b) in cases:
        got = Enclosure([expr], [x])({x: (np.array([a]), np.array([b]))})
        lo, hi = got.lo[0, 0], got.hi[0, 0]
        exact_lo, exact_hi = f(mpmath.mpf(a)), f(mpmath.mpf(b))
        assert mpmath.mpf(lo) <= exact_lo and mpmath.mpf(hi) >= exact_hi, expr
        assert abs(lo - float(exact_lo)) <= 1e-13 * max(1, abs(float(exact_lo))), expr
        assert abs(hi - float(exact_hi)) <= 1e-13 * max(1, abs(float(exact_hi))), expr
    # extrema inside the box: cos has its maximum 1 at 0, cosh its minimum 1
    got = Enclosure([sp.cos(x), sp.cosh(x)], [x])({x: (np.array([-0.5]), np.array([2.0]))})
    assert got.hi[0, 0] == 1.0 and got.lo[0, 0] <= np.cos(2.0) and got.lo[0, 1] <= 1.0


def test_domain_flags():
    enc = Enclosure([sp.log(x), sp.sqrt(x), 1 / x, sp.asin(x), sp.tan(x), sp.sign(x)], [x])
    b = enc({x: (np.array([-3.0, -1.0, 0.5]), np.array([-2.0, 1.0, 1.0]))})
    assert b.nowhere[0, [0, 1, 3]].all() and not b.nowhere[0, [2, 4]].any()
    assert b.partly[1, :3].all() and not b.partly[1, 3] and not b.partly[2, :4].any()
    # tan has no pole in [-1, 1]: defined, and enclosed by tan(+-1) widened by a few ulps
    assert not b.partly[1, 4]
    assert b.lo[1, 4] <= np.tan(-1.0) and np.tan(-1.0) - b.lo[1, 4] < 1e-14
    assert b.hi[1, 4] >= np.tan(1.0) and b.hi[1, 4] - np.tan(1.0) < 1e-14
    assert b.jump[1, 5] and not b.jump[2, 5]
    assert np.isneginf(b.lo[1, 2]) and np.isposinf(b.hi[1, 2])  # 1/x across 0


def test_enclose_a_loss_and_a_finite_sum():
    lo, hi = enclose("x**2 + y**2", (-1, 2))
    assert lo <= 0 <= hi and 8 <= hi < 8 + 1e-12
    data = {"a": [1.0, 2.0], "b": [3.0, 4.0]}
    mse = fs.Loss.from_samples("(w*a - b)**2", data, ["w"])
    lo, hi = enclose(mse, (0, 1))
    assert lo <= 4.0 <= lo + 1e-12 and hi >= 12.5 >= hi - 1e-12


def _kinds(points):
    return collections.Counter(p.kind.value for p in points)


@pytest.mark.parametrize("make, box, counts", [
    (losses.himmelblau, (-5, 5), {"minimum": 4, "maximum": 1, "saddle": 4}),
    (losses.six_hump_camel, [(-3, 3), (-2, 2)], {"minimum": 6, "maximum": 2, "saddle": 7}),
    (lambda: losses.rosenbrock(2), (-2, 2), {"minimum": 1}),
    (lambda: losses.rosenbrock(3), (-2, 2), {"minimum": 1}),
    (losses.double_well, (-2, 2), {"minimum": 2, "saddle": 1}),
    (losses.saddle, (-2, 2), {"saddle": 1}),
])
def test_named_losses_proven_complete(make, box, counts):
    loss = make()
    found = fs.critical_points(loss, box, method="interval")
    assert found.status == "proven" and found.complete and not found.undecided
    assert _kinds(found) == counts
    for known in loss.facts.critical_points:
        match = [p for p in found if np.allclose(p.point, known.point, atol=1e-9)]
        assert len(match) == 1 and match[0].kind is known.kind
        p = match[0]
        assert p.proven and np.all(p.enclosure[:, 0] <= known.point)
        assert np.all(known.point <= p.enclosure[:, 1])


def test_monkey_saddle_is_a_degenerate_point_not_a_proof():
    found = fs.critical_points(losses.monkey_saddle(), (-2, 2))
    assert found.status == "complete"
    (p,) = found
    assert p.kind.value == "degenerate" and not p.proven and np.allclose(p.point, 0, atol=1e-6)
    (region,) = found.undecided
    assert region.reason == "degenerate point"
    assert np.all(region.bounds[:, 0] <= 0) and np.all(region.bounds[:, 1] >= 0)


def _rastrigin_1d_roots(lo, hi):
    d = lambda t: 2 * t + 20 * np.pi * np.sin(2 * np.pi * t)  # noqa: E731
    grid = np.linspace(lo, hi, 200_001)
    s = np.sign(d(grid))
    roots = [scipy.optimize.brentq(d, a, b, xtol=1e-15)
             for a, b, sa, sb in zip(grid[:-1], grid[1:], s[:-1], s[1:]) if sa * sb < 0]
    return np.array(roots + [t for t, st in zip(grid, s) if st == 0])


def test_rastrigin_every_critical_point_from_the_separable_structure():
    loss = fs.Loss("20 + x**2 - 10*cos(2*pi*x) + y**2 - 10*cos(2*pi*y)")
    found = fs.critical_points(loss, (-5.12, 5.12))
    r = _rastrigin_1d_roots(-5.12, 5.12)
    expected = np.array([(a, b) for a in r for b in r])
    assert found.status == "proven" and len(found) == len(expected) == len(r) ** 2
    got = np.array([p.point for p in found])
    for e in expected:
        assert np.min(np.abs(got - e).max(axis=1)) < 1e-9
    best = found[0]
    assert best.proven and best.kind.value == "minimum" and np.allclose(best.point, 0)
    # 1-D minima times 1-D minima are the 2-D minima
    minima_1d = sum(1 for t in r if 2 + 40 * np.pi ** 2 * np.cos(2 * np.pi * t) > 0)
    assert _kinds(found)["minimum"] == minima_1d ** 2


def test_easom_narrow_well_found_and_proven_by_branch_and_bound():
    easom = "-cos(x)*cos(y)*exp(-((x - pi)**2 + (y - pi)**2))"
    found = fs.critical_points(easom, (-100, 100), global_only=True)
    (p,) = found
    assert p.proven and np.allclose(p.point, np.pi, atol=1e-12) and p.value == pytest.approx(-1)
    assert found.status == "proven"


def test_sqrt_domain_boundary_is_skipped_and_reported():
    loss = fs.Loss("(x - 0.5)**2 + y**2 - sqrt(x)")
    found = fs.critical_points(loss, [(-1, 2), (-1, 1)])
    x_star = scipy.optimize.brentq(lambda t: 2 * (t - 0.5) - 0.5 / np.sqrt(t), 0.1, 2)
    (p,) = found
    assert p.proven and np.allclose(p.point, [x_star, 0], atol=1e-12)
    assert found.undefined_fraction == pytest.approx(1 / 3, abs=0.02)
    assert "undefined on about 33" in found.message
    # a boundary where the gradient vanishes: an undecided domain region, never an error
    edge = fs.critical_points("x**1.5 + y**2", (-1, 1))
    assert any(r.reason == "domain" for r in edge.undecided)
    assert edge.status == "complete"


def test_a_circle_of_minima_is_one_undecided_region():
    found = fs.critical_points("(x**2 + y**2 - 1)**2", (-2, 2))
    (p,) = found
    assert p.kind.value == "maximum" and p.proven and np.allclose(p.point, 0)
    (region,) = found.undecided
    assert region.reason == "non-isolated" and region.n_boxes > 100
    np.testing.assert_allclose(region.bounds, [[-1, 1], [-1, 1]], atol=1e-3)


def test_a_spent_budget_is_reported_with_what_is_left():
    loss = fs.Loss("20 + x**2 - 10*cos(2*pi*x) + y**2 - 10*cos(2*pi*y)")
    found = fs.critical_points(loss, (-5.12, 5.12), max_boxes=300)
    assert found.status == "budget" and not found.complete and "max_boxes" in found.message
    assert found.n_boxes == 300
    assert any(r.reason == "budget" for r in found.undecided)
    # best first: the global minimum is among the points even so
    assert np.allclose(found[0].point, 0, atol=1e-9)
    timed = fs.critical_points(loss, (-5.12, 5.12), time_limit=1e-9)
    assert timed.status == "budget" and "time_limit" in timed.message


def test_kinds_prune_and_filter():
    camel = losses.six_hump_camel()
    full = fs.critical_points(camel, [(-3, 3), (-2, 2)])
    minima = fs.critical_points(camel, [(-3, 3), (-2, 2)], kinds=("minimum",))
    assert _kinds(minima) == {"minimum": 6} and all(p.proven for p in minima)
    assert minima.n_boxes < full.n_boxes
    assert len(minima.of_kind("minimum")) == 6
    best = fs.critical_points(camel, [(-3, 3), (-2, 2)], global_only=True)
    assert len(best) == 2 and all(p.value == pytest.approx(-1.0316284535) for p in best)


def test_kinks_are_undecided_not_errors():
    found = fs.critical_points("abs(x) + abs(y - 1) + x**2", (-2, 2))
    (region,) = found.undecided
    assert region.reason == "nonsmooth" and found.status == "complete"
    (p,) = found  # the kink stands for itself, unproven
    assert not p.proven and np.allclose(p.point, [0, 1], atol=1e-3)


def test_least_squares_from_samples_matches_lstsq():
    rng = np.random.default_rng(3)
    a = rng.normal(size=30)
    b = 2.0 * a - 1.0 + 0.1 * rng.normal(size=30)
    loss = fs.Loss.from_samples("(w*a + c - b)**2", {"a": a, "b": b}, ["w", "c"])
    (p,) = fs.critical_points(loss, (-5, 5))
    ref = np.linalg.lstsq(np.c_[a, np.ones(30)], b, rcond=None)[0]
    assert p.proven and np.allclose(p.point, ref, atol=1e-12)


def test_result_tables_and_text():
    found = fs.critical_points(losses.himmelblau(), (-5, 5))
    frame = found.to_frame()
    assert len(frame) == 9 and frame["proven"].all() and frame.attrs["status"] == "proven"
    assert set(frame.columns) >= {"kind", "value", "x_1", "x_2", "morse_index"}
    assert "9 critical points" in found.summary() and "proven" in found.summary()


@pytest.mark.parametrize("kwargs, match", [
    ({"kinds": ("minima",)}, "kinds"), ({"resolution": 1.5}, "resolution"),
    ({"max_boxes": 0}, "max_boxes"), ({"method": "grid"}, "method"),
    ({"time_limit": -1.0}, "time_limit")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fs.critical_points("x**2 + y**2", (-1, 1), **kwargs)
