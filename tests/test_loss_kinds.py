"""A researcher's own loss, of every kind, through every recipe, diagnostic, modified
equation and picture, against facts known in closed form (not derived by the code under
test): the minimum value, a minimizer, the modified loss L + (h/4)|grad L|^2 of gradient
descent."""
import matplotlib
import numpy as np
import pytest

import flowsim as fs
from flowsim.study.recipes import time_to_tolerance

matplotlib.use("Agg")


def _fit():
    # least squares of y = 2 t - 1 + noise-free data: minimizer (w, c) = (2, -1), L* = 0
    t = np.linspace(-1.0, 1.0, 7)
    return fs.Loss.from_samples("(w*t + c - y)**2 / 2", {"t": t, "y": 2 * t - 1},
                                variables=("w", "c"))


#: kind -> (loss, start, a minimizer, the minimum value, a box holding the minimizer)
KINDS = {
    "quadratic": ("x**2/2 + 5*y**2", [1.0, 0.5], [0.0, 0.0], 0.0, [(-2, 2), (-2, 2)]),
    "quartic": ("(x**2 + y - 11)**2 + (x + y**2 - 7)**2", [2.5, 1.5], [3.0, 2.0], 0.0,
                [(2, 4), (1, 3)]),
    "exp-log": ("log(1 + exp(x - 1)) + log(1 + exp(1 - x)) + (y - 0.5)**2", [0.0, 0.0],
                [1.0, 0.5], 2 * np.log(2.0), [(-1, 3), (-1, 2)]),
    "trigonometric": ("1 - cos(x) + y**2/2", [0.8, -0.6], [0.0, 0.0], 0.0,
                      [(-1, 1), (-1, 1)]),
    "rational": ("x**2/(1 + x**2) + y**2", [0.7, 0.4], [0.0, 0.0], 0.0, [(-1, 1), (-1, 1)]),
    "square roots": ("sqrt(1 + (x - 1)**2) + sqrt(1 + y**2)", [0.0, 1.0], [1.0, 0.0], 2.0,
                     [(0, 2), (-1, 1)]),
    "parameters": (fs.Loss("a*(x - 1)**2 + b*y**2", params={"a": 1.0, "b": 2.0}),
                   [0.0, 1.0], [1.0, 0.0], 0.0, [(0, 2), (-1, 1)]),
    "data": (_fit(), [0.0, 0.0], [2.0, -1.0], 0.0, [(1, 3), (-2, 0)]),
    "three variables": ("x**2 + y**2 + z**2 + x*y - z", [1.0, 1.0, 1.0],
                        [0.0, 0.0, 0.5], -0.25, [(-1, 1), (-1, 1), (-1, 1)]),
}


def _loss(kind):
    loss = KINDS[kind][0]
    return loss if isinstance(loss, fs.Loss) else fs.Loss(loss)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_facts_on_demand_find_the_known_minimum(kind):
    _, x0, xstar, lstar, box = KINDS[kind]
    loss = _loss(kind)
    facts = fs.derive_facts(loss, box, time_limit=20.0)
    assert facts.min_value == pytest.approx(lstar, abs=1e-9)
    best = min(facts.critical_points, key=lambda p: float(loss.value(p.point)))
    assert best.is_global and best.kind.value == "minimum"
    np.testing.assert_allclose(best.point, xstar, atol=1e-7)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_flow_schemes_lyapunov_and_stability_on_the_loss(kind):
    _, x0, xstar, lstar, box = KINDS[kind]
    loss = _loss(kind)
    flow = fs.gradient_flow(loss, x0, 40.0)
    np.testing.assert_allclose(flow.x_final, xstar, atol=1e-4)
    report = fs.lyapunov(loss, flow, min_value=lstar)
    assert report.monotone and report.max_relative_mismatch < 1e-3, report.summary()
    comp = fs.compare(loss, x0, 0.01, 200, schemes=("gd", "pp", "hb"))
    for name, run in comp.schemes.items():
        assert run.status.value == "reached_end", (name, run.message)
        assert run.values[-1] < run.values[0]
    s = fs.stability(loss, xstar, eta=0.01)
    eigs = np.linalg.eigvalsh(loss.hess(np.array(xstar, dtype=float)))
    assert s.max_stable_step == pytest.approx(2 / eigs.max(), rel=1e-9)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_time_to_tolerance_reaches_the_derived_minimum(kind):
    _, x0, xstar, lstar, box = KINDS[kind]
    study = time_to_tolerance(_loss(kind), [x0], 1e-6, ("gradient_flow", "gd"),
                                 eta=0.02, steps=3000, bounds=box, progress=False)
    assert study.spec["min_value"] == pytest.approx(lstar, abs=1e-9)
    assert study.runs["time_to_tol"].notna().all(), study.runs[["method", "L", "status"]]
    rows = study.runs[study.runs["method"] == "gradient_descent"]
    # one gradient per step, each run its own count
    assert (rows["ngev"] == rows["steps"]).all()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_modified_equation_of_gradient_descent_on_the_loss(kind):
    _, x0, xstar, lstar, box = KINDS[kind]
    loss = _loss(kind)
    curvature = max(np.abs(np.linalg.eigvalsh(loss.hess(np.array(p, dtype=float)))).max()
                    for p in (x0, xstar))
    eta = 0.05 / curvature   # eta lambda_max = 0.05: the expansion's regime
    me = fs.modified_equation(loss, "gd", eta, order=1)
    pts = np.random.default_rng(3).uniform(-0.5, 0.5, size=(5, loss.n)) + np.array(xstar)
    g = loss.grad(pts)
    np.testing.assert_allclose(me.modified_loss.value(pts),
                               loss.value(pts) + eta / 4 * np.sum(g * g, axis=1),
                               rtol=1e-9, atol=1e-12)
    # the modified flow follows GD to O(eta^2) per unit time, the plain flow to O(eta)
    gd = fs.gradient_descent(loss, x0, eta, 40)
    mod = me.flow(x0, t_eval=gd.ts)
    plain = fs.gradient_flow(loss, x0, gd.ts[-1], t_eval=gd.ts, method="DOP853", rtol=1e-12,
                             atol=1e-14)
    assert np.abs(mod.xs - gd.xs).max() < 0.3 * np.abs(plain.xs - gd.xs).max() + 1e-12


@pytest.mark.parametrize("kind", ["quartic", "parameters", "data", "three variables"])
def test_pictures_of_the_loss(kind, tmp_path):
    _, x0, xstar, lstar, box = KINDS[kind]
    loss = _loss(kind)
    comp = fs.compare(loss, x0, 0.01, 100, schemes=("gd", "pp"))
    fig = fs.plot.lines.comparison_figure(comp, loss)
    fig.savefig(tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 5000
    if loss.n == 2:
        ax = fs.plot.maps.contour(loss, [comp.flows[next(iter(comp.flows))]], bounds=box)
        ax.figure.savefig(tmp_path / "m.png")
        assert (tmp_path / "m.png").stat().st_size > 5000
