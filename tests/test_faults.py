"""Numerical faults end runs with a status and a message, never a hang, a NaN trail or a
warning (every test here runs with warnings turned into errors)."""
import re

import numpy as np
import pytest

import flowsim as fs
from flowsim import Loss, Status, losses

pytestmark = pytest.mark.filterwarnings("error")

BLOW_UP = Loss("-(x**2 + y**2)**2")  # x' = 4 r^2 x: 1/r^2 = 1/r0^2 - 8 t, blow-up at 1/(8 r0^2)
BLOW_UP_TIME = 1 / (8 * 1.25)        # from (1, 0.5)


@pytest.mark.parametrize("method", ["LSODA", "RK45", "DOP853", "RK23", "BDF", "Radau", "auto"])
def test_finite_time_blow_up_is_diverged_with_its_time(method):
    traj = fs.gradient_flow(BLOW_UP, [1.0, 0.5], 1.0, method=method)
    assert traj.status is Status.DIVERGED
    found = re.search(r"blow-up time t\* = ([0-9.e+-]+)", traj.message)
    assert found, traj.message
    assert float(found.group(1)) == pytest.approx(BLOW_UP_TIME, rel=0.05)
    assert traj.ts[-1] < BLOW_UP_TIME * 1.001 and np.all(np.isfinite(traj.values))


@pytest.mark.parametrize("flow", [fs.heavy_ball_flow, fs.nesterov_flow])
def test_blow_up_of_momentum_flows_is_diverged_with_its_time(flow):
    traj = flow(BLOW_UP, [1.0, 0.5], 5.0)
    assert traj.status is Status.DIVERGED and np.all(np.isfinite(traj.xs))
    found = re.search(r"blow-up time t\* = ([0-9.e+-]+)", traj.message)
    assert found and abs(float(found.group(1)) - traj.ts[-1]) < 1e-3


@pytest.mark.parametrize("method", ["RK45", "LSODA", "Radau"])
def test_exponential_growth_is_not_called_a_finite_time_blow_up(method):
    # L = -x^2: x' = 2x, x = e^(2t) grows without bound but never blows up (the growth fit's
    # exponent is 1 up to its secants' error; it read "blows up in finite time ... t* = 2e12")
    traj = fs.gradient_flow("-x**2", [1.0], 200.0, method=method, max_norm=1e10)
    assert traj.status is Status.DIVERGED and "exceeded max_norm" in traj.message
    assert "finite time" not in traj.message and "t*" not in traj.message
    from flowsim.flows._solver import _blow_up
    ts = np.linspace(0.0, 10.0, 50)
    status, message = _blow_up(list(ts), [np.array([np.exp(2 * t)]) for t in ts])
    assert status is Status.DIVERGED and "no blow-up in finite time" in message


@pytest.mark.parametrize("method", ["RK45", "LSODA"])
@pytest.mark.parametrize("n", [1, 20])            # a short state (floats) and a long one (dot)
@pytest.mark.parametrize("max_norm", [1e152, 1e160])   # |y|^2 finite, and past overflow
def test_a_huge_max_norm_is_still_tested(method, n, max_norm):
    # y' = 10 y passes max_norm long before float overflow: values past 1e150 were not
    # tested at all (the squared bound was taken as inf)
    from flowsim.flows._solver import integrate
    from flowsim._numeric import safe_norm
    run = integrate(lambda t, y: 10.0 * y, np.ones(n), 100.0, method=method, rtol=1e-8,
                    atol=1e-10, max_norm=max_norm)
    assert run.status is Status.DIVERGED and f"exceeded max_norm = {max_norm:g}" in run.message
    assert max_norm < safe_norm(run.ys[-1]) < 1e10 * max_norm
    assert run.ts[-1] == pytest.approx(np.log(max_norm / np.sqrt(n)) / 10, rel=1e-2)


@pytest.mark.parametrize("method", ["RK45", "DOP853", "RK23"])
def test_stiff_flows_stop_explicit_methods_early_and_name_implicit_ones(method):
    loss = losses.ill_conditioned_quadratic(1e8)  # RK45 would need about 3e7 steps
    traj = fs.gradient_flow(loss, [1.0, 1.0], 10.0, method=method)
    assert traj.status is Status.FAILED
    assert "stiff" in traj.message and "LSODA" in traj.message and traj.n_points < 3000


def test_auto_switches_to_an_implicit_method_and_matches_the_closed_form():
    loss = losses.ill_conditioned_quadratic(1e8)
    traj = fs.gradient_flow(loss, [1.0, 1.0], 10.0, method="auto", rtol=1e-10, atol=1e-12)
    assert traj.status is Status.REACHED_END and "switched from DOP853 to Radau" in traj.message
    for t in (1e-8, 1e-3, 1.0, 10.0):
        np.testing.assert_allclose(traj.at(t), loss.facts.flow_solution(t, [1.0, 1.0]),
                                   rtol=1e-6, atol=1e-9)


def test_stiff_but_finishing_explicit_runs_are_left_alone():
    # RK45 finishes the 2-D Rosenbrock flow to t = 50 in about 17,000 stiff steps
    traj = fs.gradient_flow(losses.rosenbrock(2), [-1.0, 1.0], 50.0, method="RK45")
    assert traj.status is Status.REACHED_END


def test_compare_on_stiff_and_blowing_up_losses_ends_quietly():
    stiff = fs.compare("1e8*x**2 + y**2", [1.0, 1.0], 1e-3, 200)
    assert "Radau" in next(iter(stiff.flows.values())).message
    blow = fs.compare(BLOW_UP, [1.0, 0.5], 1e-2, 100)
    assert blow.schemes["gradient_descent"].status is Status.DIVERGED
    assert next(iter(blow.flows.values())).status is Status.DIVERGED
    assert "> 1e308" in blow.factors.summary()   # an overflowing factor, said in words


def test_every_flow_has_a_step_budget():
    traj = fs.gradient_flow("x**2 + y**2", [1.0, 1.0], 1e6, method="RK45", rtol=1e-12, atol=1e-14,
                            max_steps=500)
    assert traj.status is Status.FAILED and "max_steps = 500" in traj.message
    assert traj.n_points == 501
    from flowsim.flows._solver import default_max_steps
    assert default_max_steps(2) == 100_000 and default_max_steps(10 ** 6) == 1000


@pytest.mark.parametrize("max_norm", [1e154, 1e200, 1e300])
def test_huge_bounds_and_starts_do_not_overflow(max_norm):
    flow = fs.gradient_flow("x**2 + y**2", [1.0, 1.0], 1.0, max_norm=max_norm)
    assert flow.status is Status.REACHED_END
    gd = fs.gradient_descent("x**2 + y**2", [1e155, 1.0], 0.1, 10, max_norm=max_norm)
    expected = Status.REACHED_END if max_norm > 1e155 else Status.DIVERGED
    assert gd.status is expected and np.all(np.isfinite(gd.xs))
    np.testing.assert_allclose(gd.xs[-1, 0], 1e155 * 0.8 ** 10 if expected is
                               Status.REACHED_END else 1e155, rtol=1e-12)


def test_a_non_finite_implicit_solve_fails_with_the_iterates_kept():
    traj = fs.proximal_point("sqrt(x) + y**2", [1.0, 1.0], 0.1, 50)
    assert traj.status is Status.FAILED and "could not be solved" in traj.message
    assert traj.n_points > 1 and np.all(np.isfinite(traj.values))


def test_one_bad_start_does_not_spoil_a_gd_batch():
    loss = "log(x) + y**2"
    batch = fs.gradient_descent(loss, [[0.5, 1.0], [5.0, 1.0]], 0.1, 100)
    single = [fs.gradient_descent(loss, x0, 0.1, 100) for x0 in ([0.5, 1.0], [5.0, 1.0])]
    assert batch.status == (Status.DIVERGED, Status.REACHED_END)
    assert single[0].status is Status.DIVERGED
    assert np.all(np.isfinite(batch.values)) and np.all(np.isfinite(batch.grad_norms))
    np.testing.assert_array_equal(batch.xs[0, -1], single[0].x_final)  # held where it left
    np.testing.assert_allclose(batch.xs[1], single[1].xs, rtol=1e-14)


def test_non_smooth_flows_keep_their_step_budget():
    traj = fs.gradient_flow("abs(x) + (y - 1)**2", [1.0, 0.0], 50.0, max_steps=20)
    assert traj.status is Status.FAILED and "max_steps = 20" in traj.message
    assert traj.n_points == 21 and np.all(np.isfinite(traj.xs))


def test_one_singular_start_does_not_spoil_a_flow_batch():
    # x' = -1/x reaches the singularity x = 0 at t = x0^2 / 2: 0.125 for x0 = 0.5, 4.5 for
    # x0 = 3, never before t = 10 for x0 = 5
    loss = "log(x) + y**2"
    batch = fs.gradient_flow(loss, [[0.5, 1.0], [5.0, 1.0], [3.0, -2.0]], 10.0)
    assert batch.status == (Status.FAILED, Status.REACHED_END, Status.FAILED)
    assert batch.message[0].startswith("stopped at t = 0.125")
    assert batch.message[2].startswith("stopped at t = 4.5")
    assert batch.ts[-1] == 10.0 and np.all(np.isfinite(batch.values))
    for i, x0 in ((1, [5.0, 1.0]), (2, [3.0, -2.0])):
        alone = fs.gradient_flow(loss, x0, 10.0)
        assert alone.status is batch.status[i]
        if alone.status is Status.REACHED_END:
            np.testing.assert_allclose(batch.xs[i, -1], alone.x_final, rtol=1e-5, atol=1e-8)
        else:  # where a solver stalls at the singularity depends on its tolerances
            assert abs(batch.xs[i, -1, 0]) < 1e-3 and abs(alone.x_final[0]) < 1e-3
        # closed form: x^2 = x0^2 - 2t, y = y0 e^{-2t} (the batch's stiff engine is of order
        # 2: at rtol 1e-8 its global error is about 1e-6)
        np.testing.assert_allclose(batch.dense(2.0)[i], [np.sqrt(x0[0] ** 2 - 4.0),
                                                         x0[1] * np.exp(-4.0)], rtol=1e-5)
    # the stopped start is held where it stopped, in the samples and the dense solution
    np.testing.assert_array_equal(batch.dense(9.0)[0], batch.xs[0, -1])
    assert batch.xs[0, -1, 0] == pytest.approx(0.0, abs=1e-3)


def test_a_batch_without_dense_output_is_stitched_from_its_steps():
    batch = fs.gradient_flow("log(x) + y**2", [[0.5, 1.0], [5.0, 1.0]], 1.0,
                             dense_output=False)
    assert batch.dense is None and batch.status[1] is Status.REACHED_END
    assert np.all(np.isfinite(batch.xs)) and np.all(np.diff(batch.ts) > 0)


@pytest.mark.parametrize("method", ["interval", "newton"])
def test_critical_points_skip_starts_outside_the_domain(method):
    # sqrt(x^2 + y^2 - 1) is undefined inside the unit disc: those Newton starts are drawn
    # again (and those boxes skipped) instead of breaking the SVD; it has no critical point
    # (x / sqrt(x^2 - 1) = -1 has no solution)
    points = fs.critical_points("sqrt(x**2 + y**2 - 1) + x", (-2, 2), method=method)
    assert len(points) == 0 and points.n_skipped > 0
    found = fs.critical_points("log(x) + (x - 2)**2 + y**2", (-1, 3), method=method)
    x_star = (2 + np.sqrt(2)) / 2  # 1/x + 2(x - 2) = 0
    assert any(np.allclose(p.point, [x_star, 0.0], atol=1e-8) for p in found)


def test_pictures_of_losses_with_undefined_regions():
    import matplotlib.pyplot as plt
    from flowsim import plot
    ax = plot.contour(Loss("sqrt(x) + y**2"), bounds=(-1, 1))
    assert ax.get_xlim() == (-1.0, 1.0)
    with pytest.raises(ValueError, match="no minimum was found"):
        plot.basins(Loss("log(x**2 + y**2) + (x**2 + y**2 - 2)**2"), bounds=(-2, 2),
                    resolution=10, t_end=1.0)
    plt.close("all")


def test_order_needs_a_reference_that_reaches_t_end():
    with pytest.raises(ValueError, match="reference ODE ended at t = 0.1"):
        fs.convergence_order(BLOW_UP, [1.0, 0.5], "gd", t_end=0.2)


# -- every run ends with a true status (issue: runs that do not end, statuses that lie) ------
def test_a_scheme_started_outside_the_domain_fails_saying_so():
    for scheme in (fs.gradient_descent, fs.heun):
        traj = scheme("x - log(x)", [-1.0], 0.1, 10)
        assert traj.status is Status.FAILED and "outside the loss's domain" in traj.message
    batch = fs.gradient_descent("x - log(x)", [[-1.0], [2.0]], 0.1, 10)
    assert batch.status == (Status.FAILED, Status.REACHED_END)


def test_flows_that_need_derivatives_refuse_kinks_and_end_within_their_budget():
    import time
    for call in (lambda: fs.mirror_flow("abs(x) + y**2", [1.0, 1.0], 1.0),
                 lambda: fs.adam_flow("abs(x) + y**2", [1.0, 1.0], 1.0),
                 lambda: fs.central_flow("abs(x) + y**2", [1.0, 1.0], 0.1, 1.0)):
        with pytest.raises(ValueError, match="kinks"):
            call()
    wide = " + ".join(f"x{i}**2*(1 + x{(i + 1) % 30}**2)" for i in range(30))
    with pytest.raises(ValueError, match="third derivatives"):
        fs.central_flow(wide, np.ones(30), 0.1, 1.0)
    start = time.perf_counter()
    traj = fs.central_flow("(x*y - 1)**2/2", [0.2, 3.0], 0.4, 5.0, gain=1e12, max_steps=200)
    assert time.perf_counter() - start < 20   # an absurd gain is stiff: the budget ends it
    assert traj.status is Status.FAILED and "max_steps = 200" in traj.message
    blow = fs.adam_flow("-x**4 - y**4", [1.0, 1.0], 50.0, max_norm=20.0)  # |x'| ~ 1
    assert blow.status is Status.DIVERGED and np.all(np.isfinite(blow.xs))
    spent = fs.mirror_flow("x**2 + y**2", [1.0, 1.0], 10.0, max_steps=5)
    assert spent.status is Status.FAILED and "max_steps" in spent.message


def test_a_singular_mirror_potential_is_refused_in_one_sentence():
    for potential in ("x + y", "3"):
        with pytest.raises(ValueError, match="potential: its Hessian is not positive definite"):
            fs.mirror_descent("x**2 + y**2", [1.0, 1.0], 0.1, 5, potential=potential)


def test_stability_at_a_maximum_and_a_saddle_says_what_holds():
    top = fs.stability("-x**2 - 3*y**2", [0.0, 0.0], eta=0.1)
    assert top.kind == "maximum" and top.unstable == 2 and np.isnan(top.max_stable_step)
    text = top.summary()
    assert "inf" not in text and "--" not in text and "2 direction(s)" in text
    saddle = fs.stability("x**2 - 3*y**2", [0.0, 0.0])
    assert saddle.kind == "saddle" and saddle.max_stable_step == pytest.approx(1.0)
    assert "no step size makes it attract" in saddle.summary()
    from flowsim.study.recipes import step_size_sweep
    s = step_size_sweep("-x**2 - 3*y**2", [0.1, 0.1], [0.1], ("gd",), 5)
    assert s.spec["max_stable_step"] is None and s.spec["stability"] == "maximum"


def test_critical_points_on_a_huge_box_end_without_warnings():
    for formula in ("exp(x) + y**2", "sin(x)*cos(y)"):
        found = fs.critical_points(formula, [(-1e300, 1e300)] * 2, time_limit=2,
                                   max_boxes=2000)   # warnings are errors in this file
        assert found.status == "budget" and "max_boxes" in found.message
        assert all(np.isfinite(p.value) and p.is_critical for p in found.points)


_OUT, _IN = [3.0, 4.0], [0.1, 0.2]   # |_OUT| = 5
_KINK = Loss("abs(x) + abs(y - 1)")


def _method_calls():
    """(name, call(x0, **kw)) for every registered method, and the paths with their own loop
    (kinks, a prox, samples, a line search, record_every)."""
    rosen = losses.rosenbrock(2)
    rng = np.random.default_rng(0)
    fit = Loss.from_samples("(w*a + b - t)**2", variables=["w", "b"],
                            data={"a": rng.normal(size=8), "t": rng.normal(size=8)})
    calls = []
    for rec in fs.methods.schemes() + fs.methods.flows():
        loss = fit if "samples" in rec.accepts else rosen
        kw = {"prox": fs.prox.L1(0.1)} if "prox" in rec.accepts else {}
        if rec.kind == "scheme":
            calls.append((rec.name, lambda x0, f=rec.function, l=loss, kw=kw, **more:
                          f(l, x0, 1e-3, 5, **kw, **more)))
        else:
            calls.append((rec.name, lambda x0, f=rec.function, **more: f(rosen, x0, 0.1, **more)))
    calls += [("subgradient flow", lambda x0, **kw: fs.gradient_flow(_KINK, x0, 0.5, **kw)),
              ("gd on kinks", lambda x0, **kw: fs.gradient_descent(_KINK, x0, 0.01, 5, **kw)),
              ("gd every 3", lambda x0, **kw: fs.gradient_descent(rosen, x0, 1e-3, 10,
                                                                  record_every=3, **kw)),
              ("flow RK45", lambda x0, **kw: fs.gradient_flow(rosen, x0, 0.1, method="RK45",
                                                              **kw)),
              ("central flow", lambda x0, **kw: fs.central_flow(rosen, x0, 0.1, 1e-3, **kw))]
    return calls


@pytest.mark.parametrize("name, call", _method_calls(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_a_start_beyond_max_norm_is_held_there_on_every_path(name, call):
    # before: schemes took one step from it and said "exceeded max_norm at step 1" (GD's
    # single start said step 0), flows took a step (or, on DOP853, came back inside)
    one = call(_OUT, max_norm=4.0)
    assert one.status == Status.DIVERGED and "|x0| = 5 > max_norm = 4" in one.message
    np.testing.assert_array_equal(one.xs, [_OUT])
    np.testing.assert_array_equal(one.ts, [0.0])
    both = call([_OUT, _IN], max_norm=4.0)
    assert both.status[0] == Status.DIVERGED and both.message[0] == one.message
    np.testing.assert_array_equal(both.xs[0], np.broadcast_to(_OUT, both.xs[0].shape))
    assert both.t_stop[0] == 0.0
    alone = call([_IN], max_norm=4.0)   # the start inside runs as it runs alone
    np.testing.assert_array_equal(both.xs[1], alone.xs[0])
    assert both.status[1] == alone.status[0]
    edge = call([3.0, 4.0], max_norm=5.0)   # on the bound is inside: it runs
    assert "not run" not in edge.message and len(edge.ts) > 1


def test_a_scheme_spends_nothing_on_a_start_beyond_max_norm():
    rosen = losses.rosenbrock(2)
    both = fs.gradient_descent(rosen, [_OUT, _IN], 1e-3, 7, max_norm=4.0, record="final")
    alone = fs.gradient_descent(rosen, [_IN], 1e-3, 7, record="final")
    assert both.ngev == alone.ngev == 7
    # nor do the batch engines: the flow's evaluations are those of the start inside alone
    flows = [fs.gradient_flow(rosen, X, 0.5, method="RK45", max_norm=4.0)
             for X in ([_OUT, _IN, [5.0, 0.0]], [_IN])]
    assert flows[0].ngev == flows[1].ngev > 0


@pytest.mark.parametrize("method", ["gradient_descent", "heavy_ball", "gradient_flow",
                                    "heavy_ball_flow"])
def test_a_start_beyond_max_norm_is_held_there_on_jax(method):
    pytest.importorskip("diffrax")
    f = getattr(fs, method)
    args = (1e-3, 5) if method in ("gradient_descent", "heavy_ball") else (0.1,)
    rosen = losses.rosenbrock(2)
    on_jax = f(rosen, [_OUT, _IN], *args, max_norm=4.0, backend="jax")
    on_numpy = f(rosen, [_OUT, _IN], *args, max_norm=4.0)
    assert on_jax.status[0] == Status.DIVERGED and on_jax.message[0] == on_numpy.message[0]
    np.testing.assert_array_equal(on_jax.xs[0], np.broadcast_to(_OUT, on_jax.xs[0].shape))
    assert on_jax.t_stop[0] == 0.0


def test_a_flow_that_reaches_t_end_says_the_same_sentence_alone_and_in_a_batch():
    # (stops.py: every path says the same sentence for the same ending; the single run said
    # "reached t_end = 1" without its steps)
    quad = Loss("(x - 1)**2 + 10*y**2")
    for call in (lambda x0: fs.gradient_flow(quad, x0, 1.0),
                 lambda x0: fs.gradient_flow(_KINK, x0, 0.2)):
        one = call([2.0, 0.5])
        assert re.fullmatch(r"reached t_end = [0-9.]+ in [0-9]+ steps", one.message)
        assert one.message == f"reached t_end = {one.ts[-1]:g} in {len(one.ts) - 1} steps"
        batch = call([[2.0, 0.5], [0.3, 0.1]])
        assert re.fullmatch(r"reached t_end = [0-9.]+ in [0-9]+ steps", batch.message[0])


@pytest.mark.parametrize("kw", [dict(t_end=1e300), dict(t_end=1e300, etas=[0.1, 0.05, 0.025]),
                                dict(t_end=100.0, levels=16)])
def test_a_ladder_too_long_for_any_run_is_refused_in_one_sentence(kw, recwarn):
    # t_end = 1e300 raised OverflowError (a step count past any int), or with etas cast the
    # count to a garbage int with a warning
    with pytest.raises(ValueError, match=r"^the ladder of step sizes needs [0-9.e+]+ steps"):
        fs.convergence_order("(x - 1)**2 + 10*y**2", [1.5, 0.5], "gd", **kw)
    assert len(recwarn) == 0


def test_compare_refuses_a_start_outside_the_domain_before_running_any_scheme():
    loss = Loss("log(x) + y**2")
    with pytest.raises(ValueError, match="^x0: the loss or its gradient is not finite"):
        fs.compare(loss, [-1.0, 1.0], 1e-3, 2000)
    assert loss.counts.grad <= 1   # before: gradient descent ran its 2,000 steps first


def test_a_start_whose_derived_state_overflows_is_held_not_run_forever():
    # the Adam ODE's state (x0, g0, g0^2): g0^2 overflows. Before, the single run raised
    # scipy's "y0 must be finite" and the batch never ended: its first step size was NaN,
    # and a NaN step is never "below the float spacing"
    loss = Loss("1e300*(x**2 + y**2)")
    one = fs.adam_flow(loss, [0.5, 0.5], 1.0)
    assert one.status == Status.DIVERGED and "state at the start is not finite" in one.message
    np.testing.assert_array_equal(one.xs, [[0.5, 0.5]])
    batch = fs.adam_flow(loss, [[0.5, 0.5], [0.5, 0.5]], 1.0, method="RK45")
    assert batch.message == (one.message,) * 2 and np.all(batch.t_stop == 0)
    np.testing.assert_array_equal(batch.xs[:, -1], [[0.5, 0.5]] * 2)


def test_the_engines_end_a_row_whose_step_size_is_nan():
    from flowsim.ensemble.explicit import TABLEAUS, explicit
    Y0 = np.array([[np.inf, 1.0], [1.0, 1.0]])
    ens, _ = explicit(lambda t, Y: -Y, Y0, 0.0, 1.0, TABLEAUS["RK45"], 1e-6, 1e-9,
                      np.linspace(0, 1, 5), max_steps=10 ** 9)
    assert ens.status[0] == Status.FAILED and ens.steps_taken[0] == 0
    np.testing.assert_allclose(ens.out[1, -1], np.exp(-1.0) * Y0[1], rtol=1e-5)


def test_a_huge_velocity_gives_an_infinite_energy_without_a_warning(recwarn):
    run = fs.heavy_ball_flow("x**2 + y**2", [1.0, 1.0], 1.0, v0=[1e300, 1e300])
    assert run.extras["energy"][0] == np.inf and len(recwarn) == 0


@pytest.mark.parametrize("method", ["LSODA", "DOP853", "RK45"])
def test_a_step_size_that_underflows_says_the_same_sentence_alone_and_in_a_batch(method):
    # x' = -(1/x + 2x) reaches x = 0, where log(x) ends, at t = ln(1 + 2 x0^2)/4 = 0.1014;
    # alone LSODA said "made no progress for 50 steps", DOP853 scipy's "Required step size
    # is less than spacing between numbers", the batch engines a third sentence
    loss = Loss("log(x) + (y - 1)**2 + x**2")
    one = fs.gradient_flow(loss, [0.5, 1.0], 1.0, method=method)
    batch = fs.gradient_flow(loss, [[0.5, 1.0], [2.0, 1.0]], 1.0, method=method)
    sentence = r"^stopped at t = 0\.101\d*: the step size fell below the spacing of floats"
    assert one.status == batch.status[0] == Status.FAILED
    assert re.match(sentence, one.message) and re.match(sentence, batch.message[0])
