"""A researcher's own loss gets what a named loss gets: facts given or derived (with their
source), recipes that never return NaN without a reason, pictures whose axes span the data,
Lyapunov reports that say what V is, modified equations, per-scheme options and honest
classification. Oracles: closed forms (minimizers, energies' rates, the descent lemma at
equality), scipy and the single runs."""
import numpy as np
import pytest

import flowsim as fs
from flowsim import losses


# -- facts on demand -------------------------------------------------------------------------
def test_with_facts_derives_proven_minima_and_says_so():
    L = fs.with_facts("(x**2 - 1)**2 + (y + 0.5)**2", bounds=(-2, 2))
    facts = L.facts
    assert facts.min_value == 0.0 and facts.complete
    np.testing.assert_allclose(sorted(facts.minimizers.tolist()), [[-1, -0.5], [1, -0.5]],
                               atol=1e-12)
    assert facts.source.startswith("critical_points on") and facts.source.endswith("proven")
    given = fs.with_facts("x**2 + y**2", min_value=0.0, minimizers=[[0.0, 0.0]])
    assert given.facts.source == "min_value given; minimizers given"
    with pytest.raises(ValueError, match="no minimum"):
        fs.with_facts("x + y", bounds=(-1, 1))
    with pytest.raises(ValueError, match="minimizers must be"):
        fs.with_facts("x**2 + y**2", minimizers=[[0.0, 0.0, 0.0]])


def test_time_to_tolerance_on_a_formula_derives_l_star_and_finds_every_run():
    L = "x**2/2 + 50*y**2"   # no facts: L* = 0 at the origin
    X = np.array([[1.0, 0.1], [-0.5, 0.2], [0.3, -0.3]])
    from flowsim.study.recipes import time_to_tolerance
    study = time_to_tolerance(L, X, tol=1e-8, methods=("gd",), eta=0.015, steps=3000,
                              progress=False)
    assert study.spec["min_value"] == 0.0 and "proven" in study.spec["min_value_source"]
    runs = study.runs
    assert runs["time_to_tol"].notna().all() and runs["iterations_to_tol"].notna().all()
    # the closed form: the slow direction shrinks by (1 - eta) per step
    gd = fs.gradient_descent(L, X[0], 0.015, 3000)
    k = int(np.argmax(gd.values <= 1e-8))
    assert runs.loc[0, "iterations_to_tol"] == k
    with pytest.raises(ValueError, match="min_value="):
        fs.sweep(L, ["gd"], starts=X, etas=[0.01], steps=10, tol=1e-8)


def test_a_basin_map_of_a_formula_derives_its_minimizers():
    from flowsim.study.recipes import basin_map, disagreement
    study = basin_map("(x**2 - 1)**2 + y**2", eta=0.05, resolution=12, bounds=(-2, 2),
                      t_end=5.0, methods=("gradient_flow", "gd"), progress=False)
    assert "proven" in study.spec["minimizers_source"]
    flow = study.runs[study.runs["method"] == "gradient_flow"]
    # the flow reaches the minimizer on its own side of x = 0 (the grid avoids x = 0)
    side = np.where(flow["x0_x"] > 0, 1.0, -1.0)
    reached = np.array(study.spec["minimizers"])[flow["minimizer"].to_numpy(), 0]
    np.testing.assert_array_equal(reached, side)
    assert set(disagreement(study)) == {"gradient_descent"}
    with pytest.raises(ValueError, match="bounds="):
        basin_map("(x**2 - 1)**2 + y**2", resolution=4)


# -- pictures with an unknown L* ---------------------------------------------------------------
def test_the_comparison_figure_axes_span_the_data_with_an_unknown_l_star():
    import matplotlib
    matplotlib.use("Agg")
    from flowsim import plot
    L = fs.Loss("x**2/2 + 50*y**2")
    comp = fs.compare(L, [1.0, 0.02], 0.02, 200, schemes=("gd", "pp"))
    fig = plot.comparison_figure(comp, L)
    ax = fig.axes[-2]
    low, high = ax.get_ylim()
    data = np.concatenate([t.values for t in (*comp.flows.values(),
                                               *comp.schemes.values())])
    positive = data[data > 0]
    assert low >= positive.min() / 10 and low > 1e-200 and high <= positive.max() * 10
    assert "L* = 0" in ax.get_ylabel() and "proven" in ax.get_ylabel()


# -- Lyapunov reports --------------------------------------------------------------------------
def test_heavy_ball_flow_checks_its_energy_not_the_loss():
    L = fs.Loss("x**2/2 + 4*y**2")
    hb = fs.heavy_ball_flow(L, [1.0, 1.0], 10.0, friction=0.5, rtol=1e-10, atol=1e-12)
    assert np.any(np.diff(hb.values) > 1e-9)          # L itself rises
    r = fs.lyapunov(L, hb)                            # friction read from the run
    assert r.V_name.startswith("E - L*") and r.monotone
    assert r.rate_name == "-gamma |v|^2" and r.max_relative_mismatch < 1e-6
    assert "energy" in r.summary()


def test_nesterov_ode_energy_rate_and_su_boyd_candes_with_a_given_minimizer():
    L = fs.Loss("(x - 1)**2 + 3*(y + 2)**2")        # convex, minimizer (1, -2), no facts
    nag = fs.nesterov_flow(L, [3.0, 1.0], 8.0, rtol=1e-10, atol=1e-12)
    r = fs.lyapunov(L, nag, minimizer=[1.0, -2.0])
    assert r.rate_name == "-(r/t) |v|^2" and r.max_relative_mismatch < 1e-5
    assert r.monotone and r.nesterov_energy_decreasing
    # the energy by hand at the end: 2 t^2 (L - L*)/(r - 1) + (r - 1)|x + t v/(r - 1) - x*|^2
    t, x, v = nag.ts[-1], nag.xs[-1], nag.extras["velocities"][-1]
    by_hand = t ** 2 * nag.values[-1] + 2 * np.sum((x + t * v / 2 - [1.0, -2.0]) ** 2)
    assert r.nesterov_energy[-1] == pytest.approx(by_hand, rel=1e-12)


def test_the_descent_lemma_at_equality_is_not_a_violation():
    q = losses.quadratic(np.diag([1.0, 10.0]))
    gd = fs.gradient_descent(q, [0.0, 1.0], 0.1, 80)   # eta = 1/lambda: equality every step
    r = fs.lyapunov(q, gd, lipschitz=10.0)
    assert r.descent_violations.size == 0


# -- frames name the loss's variables ----------------------------------------------------------
def test_every_frame_names_the_loss_variables_and_carries_attrs():
    L = fs.Loss("(w - 1)**2 + 3*(b + 2)**2", variables=["w", "b"])
    one = fs.gradient_descent(L, [0.0, 0.0], 0.1, 5).to_frame()
    assert list(one.columns[:3]) == ["t", "x_w", "x_b"]
    assert one.attrs["method"] == "gradient_descent" and one.attrs["status"] == "reached_end"
    assert one.attrs["variables"] == ["w", "b"]
    flow = fs.gradient_flow(L, [0.0, 0.0], 0.5).to_frame()
    assert "x_w" in flow and flow.attrs["label"].startswith("gradient flow")
    batch = fs.heun(L, [[0.0, 0.0], [1.0, 1.0]], 0.1, 5).to_frame()
    assert {"x0_w", "x0_b", "x_w", "x_b"} <= set(batch.columns)
    study = fs.sweep(L, ["gd"], starts=[[0.0, 0.0]], etas=[0.1], steps=5, paths=True,
                     progress=False)
    assert {"x0_w", "x0_b", "x_w", "x_b"} <= set(study.runs.columns)
    assert {"x_w", "x_b"} <= set(study.paths.columns)


# -- per-scheme options and honest classification ---------------------------------------------
def test_convergence_order_takes_the_schemes_options_and_says_when_it_failed():
    L = "x*log(x) + y*log(y) + (x - 0.3)**2"
    md = fs.convergence_order(L, [0.5, 0.7], "md",
                              options={"potential": "x*log(x) + y*log(y)"})
    assert md.order == pytest.approx(1.0, abs=0.1) and md.warning is None
    with pytest.raises(ValueError, match="set at each level"):
        fs.convergence_order("x**2", [1.0], "hb", options={"momentum": 0.5})
    # levels at which the scheme diverged are left out and named, not blamed on rounding
    steep = fs.convergence_order("10*x**2", [1.0], "gd", t_end=1.0,
                                 etas=[0.25, 0.125, 0.0625, 0.03125, 0.015625])
    assert "did not run to the end at 2 level(s)" in steep.warning
    assert "diverged at eta = 0.25" in steep.warning and np.isfinite(steep.order)


def test_classify_says_when_a_point_is_not_critical():
    off = fs.classify("x**2 - y**2 + x", [0.0, 0.0])
    assert not off.is_critical and off.summary().startswith("NOT a critical point")
    on = fs.classify("x**2 - y**2", [0.0, 0.0])
    assert on.is_critical and on.kind.value == "saddle"


# -- critical points beyond three variables ----------------------------------------------------
def test_a_convex_sum_in_fifty_variables_gets_one_proven_minimizer_quickly():
    import time
    n = 50
    terms = [f"(x{i} - {i / 10})**2 + exp(x{i})/10" for i in range(n)]
    terms += [f"x{i}*x{i + 1}/10" for i in range(n - 1)]
    L = fs.Loss(" + ".join(terms))
    start = time.perf_counter()
    found = fs.critical_points(L, [(-3, 8)] * n)
    assert time.perf_counter() - start < 20
    assert found.method == "convex" and found.status == "proven" and len(found) == 1
    point = found.points[0]
    assert point.proven and point.kind.value == "minimum"
    assert np.linalg.norm(L.grad(point.point)) < 1e-10   # the oracle: grad L = 0 there
    # a loss the certificate cannot prove convex falls back to a time-bounded sample
    start = time.perf_counter()
    sample = fs.critical_points("x1**4 - x1**2 + x2**2 + x3**2 + x4**2", [(-2, 2)] * 4,
                                time_limit=2.0)
    assert sample.status == "sampled" and time.perf_counter() - start < 10
    with pytest.raises(ValueError, match="does not prove"):
        fs.critical_points("x1**4 - x1**2 + x2**2 + x3**2", [(-2, 2)] * 3, method="convex")


def test_the_critical_command_checks_first_and_names_the_variables(capsys):
    from flowsim.cli import main
    assert main(["critical", "x**2 + y**2", "--bounds", "5,-5"]) == 2
    err = capsys.readouterr()
    assert "searching" not in err.out and "low < high" in err.err
    assert main(["critical", "(w - 1)**2 + b**2 + c**2 + d**2*(1 + w**2)", "--bounds",
                 "-2,2", "--method", "newton", "--starts", "30"]) == 0
    out = capsys.readouterr().out
    assert "points are (b, c, d, w)" in out and "newton" in out
