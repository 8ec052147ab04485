"""A researcher's own scheme and flow, defined here (outside the package) in a few lines each
and registered with flowsim.register, through every consumer: batches, workers, JAX,
compare, convergence_order, modified_equation, sweep, the pictures and the command, each
against a closed form."""
import contextlib
import inspect
import sys

import numpy as np
import pytest
import scipy.linalg

import flowsim as fs
from flowsim import methods

A = np.array([[3.0, 1.0], [1.0, 2.0]])
QUAD = "3*x**2/2 + x*y + y**2 + 0*x"   # L = x^T A x / 2, minimizer 0
STARTS = np.array([[1.0, 0.5], [-2.0, 1.0], [0.3, -0.7], [1.5, 1.5], [-1.0, -1.0]])


# --- the researcher's file: one scheme, one flow, one more scheme on that flow -------------

def extragradient_step(k, eta, x, state, ops, options):
    """x_{k+1} = x_k - eta grad L(x_k - eta grad L(x_k))."""
    g = ops.grad(x)
    return x - eta * ops.grad(x - eta * g), g, state, False


def scaled_field(x, ops, options):
    """x' = -c grad L(x)."""
    return -options["c"] * ops.grad(x)


def scaled_jacobian(x, ops, options):
    return -options["c"] * ops.hess(x)


def scaled_step(k, eta, x, state, ops, options):
    g = ops.grad(x)
    return x - options["c"] * eta * g, g, state, False


def scaled_reference(options, h):
    return "scaled_flow", {"c": options.get("c", 1.0)}


@pytest.fixture(scope="module", autouse=True)
def registered():
    records = [
        fs.register("scaled_flow", fs.VectorField(scaled_field, scaled_jacobian,
                                                  options={"c": 1.0})),
        fs.register("extragradient", fs.UpdateRule(extragradient_step, grads_per_step=2),
                    short="eg", flow="gradient_flow", order=1,
                    one_step=lambda f, x, h, depth: x + h * f(x + h * f(x))),
        fs.register("scaled_gd", fs.UpdateRule(scaled_step, options={"c": 1.0}),
                    flow="scaled_flow", reference=scaled_reference, order=1),
    ]
    yield records
    for record in records[::-1]:
        methods.unregister(record.name)


def _extragradient_closed_form(x0, eta, k):
    # on L = x^T A x / 2 one step multiplies by I - eta A + eta^2 A^2
    M = np.eye(2) - eta * A + eta ** 2 * A @ A
    return np.linalg.matrix_power(M, k) @ x0


# --- the checks -----------------------------------------------------------------------------

def test_registered_records_carry_their_rule_and_capabilities(registered):
    eg = methods.get("eg")
    assert eg.kind == "scheme" and {"batch", "jax", "schedule"} <= eg.accepts
    assert methods.get("scaled_flow").kind == "flow"
    params = inspect.signature(methods.get("scaled_gd").function).parameters
    assert params["c"].default == 1.0 and params["c"].kind is inspect.Parameter.KEYWORD_ONLY
    with pytest.raises(ValueError, match="already registered"):
        fs.register("extragradient", fs.UpdateRule(extragradient_step))
    with pytest.raises(ValueError, match="identifier"):
        fs.register("bad name", fs.UpdateRule(extragradient_step))
    with pytest.raises(TypeError, match="UpdateRule"):
        fs.register("nothing", lambda x: x)
    with pytest.raises(ValueError, match="no flow named"):
        fs.register("orphan", fs.UpdateRule(extragradient_step), flow="nowhere")


def test_own_scheme_matches_its_closed_form_one_start_and_a_batch():
    eg = methods.get("eg").function
    one = eg(QUAD, STARTS[0], 0.1, 30)
    np.testing.assert_allclose(one.xs[-1], _extragradient_closed_form(STARTS[0], 0.1, 30),
                               rtol=1e-12, atol=1e-15)
    assert one.ngev == 60 and one.method == "extragradient"
    batch = eg(QUAD, STARTS, 0.1, 30)
    for i, x0 in enumerate(STARTS):
        np.testing.assert_allclose(batch.xs[i, -1], _extragradient_closed_form(x0, 0.1, 30),
                                   rtol=1e-12, atol=1e-15)


def test_own_scheme_in_chunks_over_workers_equals_the_unchunked_run():
    eg = methods.get("eg").function
    whole = eg(QUAD, STARTS, 0.1, 20)
    chunked = eg(QUAD, STARTS, 0.1, 20, workers=1, chunk_size=2)
    np.testing.assert_array_equal(whole.xs, chunked.xs)
    two = eg(QUAD, STARTS, 0.1, 20, workers=2, chunk_size=2)   # processes: pickled by value
    np.testing.assert_array_equal(whole.xs, two.xs)


def test_own_scheme_options_are_checked_and_bad_steps_end_in_a_status():
    sgd_ = methods.get("scaled_gd").function
    with pytest.raises(ValueError, match="option c"):
        sgd_(QUAD, STARTS[0], 0.1, 5, c="2")
    with pytest.raises(ValueError, match="no option 'd'"):
        sgd_(QUAD, STARTS[0], 0.1, 5, d=1.0)
    run = sgd_(QUAD, STARTS[0], 0.1, 500, c=10.0)   # c eta lambda_max = 3.6 > 2
    assert run.status.value == "diverged"
    ok = sgd_(QUAD, STARTS[0], 0.1, 500, c=2.0, gtol=1e-8)
    assert ok.status.value == "converged" and "scaled gd (c=2)" in ok.label


def test_own_flow_matches_the_matrix_exponential_one_start_batch_and_implicit():
    flow = methods.get("scaled_flow").function
    t = np.linspace(0, 2, 9)
    for kwargs in ({}, {"method": "Radau"}, {"method": "DOP853"}):
        one = flow(QUAD, STARTS[1], 2.0, c=0.5, t_eval=t, rtol=1e-10, atol=1e-12, **kwargs)
        exact = np.array([scipy.linalg.expm(-0.5 * A * s) @ STARTS[1] for s in t])
        np.testing.assert_allclose(one.xs, exact, atol=1e-8)
    batch = flow(QUAD, STARTS, 2.0, c=0.5, t_eval=t, rtol=1e-10, atol=1e-12)
    for i, x0 in enumerate(STARTS):
        exact = np.array([scipy.linalg.expm(-0.5 * A * s) @ x0 for s in t])
        np.testing.assert_allclose(batch.xs[i], exact, atol=1e-7)
    stiff = flow(QUAD, STARTS, 2.0, c=0.5, t_eval=t, method="BDF", rtol=1e-8)
    np.testing.assert_allclose(stiff.xs, batch.xs, atol=1e-5)
    assert one.at(1.3).shape == (2,)   # dense output


def test_own_flow_stops_on_gtol_and_max_norm_with_statuses():
    flow = methods.get("scaled_flow").function
    done = flow(QUAD, STARTS[0], 100.0, gtol=1e-6)
    assert done.status.value == "converged" and done.ts[-1] < 100
    away = flow("-x**2 - y**2", STARTS[0], 100.0, max_norm=1e3)
    assert away.status.value == "diverged"
    spent = flow(QUAD, STARTS[0], 100.0, max_steps=5)
    assert spent.status.value == "failed" and "max_steps" in spent.message
    batch = flow(QUAD, STARTS, 100.0, gtol=1e-6)
    assert all(s.value == "converged" for s in batch.status)


def test_own_methods_in_compare_order_and_the_modified_equation():
    comp = fs.compare(QUAD, [1.0, 0.5], 0.05, 40, schemes=("eg", "scaled_gd"),
                      options={"scaled_gd": {"c": 0.5}})
    assert {"extragradient", "scaled_gd"} <= set(comp.schemes)
    order = fs.convergence_order(QUAD, [1.0, 0.5], "eg", t_end=1.0)
    assert abs(order.order - 1.0) < 0.1
    order = fs.convergence_order(QUAD, [1.0, 0.5], "scaled_gd", t_end=1.0,
                                 options={"c": 0.5})
    assert abs(order.order - 1.0) < 0.1
    # extragradient's modified loss: L - (h/4)|grad L|^2 (gradient descent's has +h/4)
    me = fs.modified_equation(QUAD, "eg", 0.1, order=1)
    pts = np.random.default_rng(0).normal(size=(6, 2))
    L = fs.Loss(QUAD)
    g = L.grad(pts)
    np.testing.assert_allclose(me.modified_loss.value(pts),
                               L.value(pts) - 0.1 / 4 * np.sum(g * g, axis=1), rtol=1e-12)
    gd = fs.modified_equation(QUAD, "gd", 0.1, order=1)
    np.testing.assert_allclose(gd.modified_loss.value(pts),
                               L.value(pts) + 0.1 / 4 * np.sum(g * g, axis=1), rtol=1e-12)


def test_own_methods_on_jax_equal_numpy():
    pytest.importorskip("jax")
    pytest.importorskip("diffrax")
    eg = methods.get("eg").function
    a, b = eg(QUAD, STARTS, 0.1, 30), eg(QUAD, STARTS, 0.1, 30, backend="jax")
    np.testing.assert_allclose(b.xs, a.xs, rtol=1e-12, atol=1e-14)
    assert b.ngev == a.ngev and "[jax]" in b.label
    flow = methods.get("scaled_flow").function
    t = np.linspace(0, 2, 5)
    j = flow(QUAD, STARTS, 2.0, c=0.5, t_eval=t, backend="jax", rtol=1e-10, atol=1e-12)
    exact = np.array([[scipy.linalg.expm(-0.5 * A * s) @ x0 for s in t] for x0 in STARTS])
    np.testing.assert_allclose(j.xs, exact, atol=1e-7)


def test_own_methods_in_a_sweep_and_a_picture(tmp_path):
    study = fs.sweep(QUAD, ("eg", "scaled_flow"), starts=STARTS[:3], etas=(0.05, 0.1),
                     steps=20, t_end=1.0)
    frame = study.runs
    assert set(frame["method"]) == {"extragradient", "scaled_flow"}
    eg_rows = frame[(frame["method"] == "extragradient") & (frame["eta"] == 0.1)]
    np.testing.assert_allclose(eg_rows[["x_x", "x_y"]].to_numpy(),
                               [_extragradient_closed_form(x0, 0.1, 20) for x0 in STARTS[:3]],
                               rtol=1e-12, atol=1e-15)
    import matplotlib
    matplotlib.use("Agg")
    comp = fs.compare(QUAD, [1.0, 0.5], 0.05, 40, schemes=("eg",))
    fig = fs.plot.lines.comparison_figure(comp, fs.Loss(QUAD))
    fig.savefig(tmp_path / "own.png")
    assert (tmp_path / "own.png").stat().st_size > 1000


def test_own_method_on_the_command_line(tmp_path, capsys, monkeypatch):
    from flowsim import cli
    plugin = tmp_path / "my_methods_plugin.py"
    plugin.write_text(
        "import flowsim as fs\n"
        "def step(k, eta, x, state, ops, options):\n"
        "    g = ops.grad(x)\n"
        "    return x - eta * ops.grad(x - eta * g), g, state, False\n"
        "if 'cli_eg' not in fs.methods.REGISTRY:\n"
        "    fs.register('cli_eg', fs.UpdateRule(step, grads_per_step=2),"
        " flow='gradient_flow', order=1)\n")
    # found in the current folder, as a researcher runs the command next to the file
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        assert cli.main(["--plugin", "my_methods_plugin", "compare", QUAD, "--x0", "1,0.5",
                         "--eta", "0.05", "--steps", "20", "--schemes", "cli_eg"]) == 0
        assert "cli_eg" in capsys.readouterr().out
        assert cli.main(["--plugin", "not a module!", "compare"]) == 2
        assert "plugin" in capsys.readouterr().err
    finally:
        if "cli_eg" in methods.REGISTRY:
            methods.unregister("cli_eg")


# --- a flow with its own guard: x' = -1 on x > 1/2, the field undefined below ---------------

def march_field(x, ops, options):
    return -ops.xp.ones_like(x)


def march_guard(x, ops, options):
    return x[..., 0] < options["floor"]


def march_why(x, ops, options):
    return f"fell below the floor at x = {x[0]:.4f}"


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_own_flow_guard_ends_a_start_failed_on_every_path(backend):
    """x(t) = x0 - t exactly (any Runge-Kutta pair integrates a constant field exactly); the
    guard ends each start at the first state below the floor, its path kept, and a start
    that begins below it at t = 0; single runs, batches and JAX say the same."""
    if backend == "jax":
        pytest.importorskip("diffrax")
    field = fs.VectorField(march_field, options={"floor": 0.5}, guard=march_guard,
                           why=march_why)
    fs.register("march_flow", field)
    try:
        flow = methods.get("march_flow").function
        x0 = np.array([[2.0], [3.0], [0.2]])
        batch = flow("x**2 / 2", x0, 4.0, method="RK45", backend=backend)
        singles = [flow("x**2 / 2", x, 4.0, method="RK45") for x in x0]
        for i, (start, run) in enumerate(zip(x0[:, 0], singles)):
            assert run.status is batch.status[i] is fs.Status.FAILED
            assert run.message.startswith("fell below the floor at x = ")
            assert batch.message[i].startswith("fell below the floor at x = ")
            if start < 0.5:    # undefined at its start: ends there
                assert run.t_final == 0.0 and batch.t_final[i] == 0.0
                assert run.xs.shape == (1, 1) and np.all(batch.xs[i] == start)
                continue
            # the first accepted state below the floor ends it; every earlier one is above
            assert run.x_final[0] < 0.5 and np.all(run.xs[:-1, 0] >= 0.5)
            assert np.allclose(run.xs[:, 0], start - run.ts, atol=1e-12)  # exact
            assert np.isclose(run.x_final[0], start - run.t_final, atol=1e-12)
            reached = batch.ts <= batch.t_final[i]
            assert np.allclose(batch.xs[i, reached, 0], start - batch.ts[reached],
                               atol=1e-9)
            assert np.all(batch.xs[i, reached, 0][:-1] >= 0.5) and batch.xs[i, -1, 0] < 0.5
        with pytest.raises(ValueError, match="guard"):
            fs.VectorField(march_field, why=march_why)
    finally:
        methods.unregister("march_flow")


# --- a momentum ODE of one's own: its friction and mass, written once over xp --------------

def bessel_coefficients(t, options, xp):
    """x'' + (r/t) x' + x = 0 on L = x^2/2 (c = r/t, m = 1; the limit m(0) = 1 + r)."""
    moving = t > 0
    return (xp.where(moving, options["r"] / xp.where(moving, t, 1.0), 0.0),
            xp.where(moving, 1.0, 1.0 + options["r"]))


def wwj_coefficients(t, options, xp):
    """Wibisono-Wilson-Jordan x'' + (p+1)/t x' + C p^2 t^(p-2) grad L = 0, divided through."""
    p, C = options["p"], options["C"]
    safe = xp.where(t > 0, t, 1.0)
    return (p + 1) * safe ** (1 - p) / (C * p * p), safe ** (2 - p) / (C * p * p)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_own_second_order_flow_matches_bessel_on_every_path(backend):
    """With r = 1 on L = x^2/2 the flow is Bessel's equation of order 0: x(t) = x0 J0(t)
    (r = 3: 2 x0 J1(t)/t, Nesterov's ODE); one start, a batch, chunks with per-start v0."""
    if backend == "jax":
        pytest.importorskip("diffrax")
    from scipy.special import j0, j1
    record = fs.register("bessel_flow", fs.SecondOrderField(bessel_coefficients,
                                                             options={"r": 1.0}))
    try:
        assert record.kind == "flow" and {"batch", "jax"} <= record.accepts
        flow = record.function
        X0 = np.array([[1.0], [-2.0], [0.5]])
        batch = flow("x**2 / 2", X0, 10.0, rtol=1e-10, atol=1e-12, backend=backend)
        np.testing.assert_allclose(batch.xs[:, :, 0], X0 * j0(batch.ts), atol=1e-7)
        np.testing.assert_allclose(batch.extras["velocities"][:, :, 0], -X0 * j1(batch.ts),
                                   atol=1e-7)
        nesterov = flow("x**2 / 2", X0, 10.0, r=3.0, rtol=1e-10, atol=1e-12,
                        backend=backend)
        t = nesterov.ts[1:]
        np.testing.assert_allclose(nesterov.xs[:, 1:, 0], X0 * 2 * j1(t) / t, atol=1e-7)
        one = flow("x**2 / 2", [1.0], 10.0, method="RK45", rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(one.xs[:, 0], j0(one.ts), atol=1e-8)
        assert one.label == "bessel flow (r=1, RK45)"
        # x(t) = cos t from v0 = 0 and sin t from v0 = 1 on the undamped r = 0
        V0 = np.array([[0.0], [1.0], [2.0]])
        split = flow("x**2 / 2", np.zeros((3, 1)) + [[1.0], [0.0], [0.0]], 3.0, r=0.0,
                     v0=V0, rtol=1e-10, atol=1e-12, workers=1, chunk_size=2)
        expected = np.stack([np.cos(split.ts), np.sin(split.ts), 2 * np.sin(split.ts)])
        np.testing.assert_allclose(split.xs[:, :, 0], expected, atol=1e-7)
        with pytest.raises(ValueError, match="no option 'q'"):
            flow("x**2 / 2", [1.0], 1.0, q=1.0)
    finally:
        methods.unregister("bessel_flow")


def test_wibisono_wilson_jordan_p2_is_the_nesterov_ode():
    """p = 2, C = 1/4 in the Wibisono-Wilson-Jordan family is x'' + 3/t x' + grad L = 0: the
    registered family from t0 = 1 against the built-in Nesterov ODE from t0 = 1, and the
    built-in records now carry their coefficients."""
    record = fs.register("wwj_flow", fs.SecondOrderField(wwj_coefficients,
                                                          options={"p": 2.0, "C": 0.25}))
    try:
        ours = record.function(QUAD, STARTS, 6.0, t0=1.0, rtol=1e-10, atol=1e-12)
        theirs = fs.nesterov_flow(QUAD, STARTS, 6.0, t0=1.0, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.xs, theirs.xs, atol=1e-7)
    finally:
        methods.unregister("wwj_flow")
    assert isinstance(methods.get("nesterov_flow").rule, fs.SecondOrderField)
    assert isinstance(methods.get("heavy_ball_flow").rule, fs.SecondOrderField)
    assert isinstance(methods.get("newton_flow").rule, fs.VectorField)


def shrinking_mass(t, options, xp):
    """m(t) = 1 - t: the flow is singular at t = 1."""
    return 1.0 + 0 * t, 1.0 - t


def test_own_second_order_flow_outside_its_domain_is_refused_or_ends_with_a_status():
    """A mass <= 0 at the start is refused in one sentence before any work; a mass that
    reaches 0 later ends every path with a status at t = 1, without a warning."""
    import warnings
    record = fs.register("shrinking_flow", fs.SecondOrderField(shrinking_mass))
    try:
        with pytest.raises(ValueError, match="mass > 0 at its start t0 = 2"):
            record.function("x**2", [1.0], 3.0, t0=2.0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            one = record.function("x**2", [1.0], 3.0)
            # LSODA's batch: DOP853 (whose blended error norm once read NaN as 0 and looped),
            # RODAS4 once stiff
            batch = record.function("x**2", [[1.0], [0.5]], 3.0)
        assert one.status is fs.Status.FAILED and "mass must stay > 0" in one.message
        assert one.t_final == pytest.approx(1.0, abs=1e-6)
        assert all(s is fs.Status.FAILED for s in batch.status)
        assert all("singular" in m for m in batch.message)
        np.testing.assert_allclose(batch.t_final, 1.0, atol=1e-6)
        assert np.all(np.isfinite(batch.xs))   # held at the last finite state
    finally:
        methods.unregister("shrinking_flow")


def wrong_guard(x, ops, options):
    return np.zeros(7, dtype=bool)


def wrong_coefficients(t, options, xp):
    return np.ones(5), 1.0


def test_a_wrong_guard_or_coefficients_are_named_in_one_sentence():
    record = fs.register("wrong_guard_flow", fs.VectorField(scaled_field, options={"c": 1.0},
                                                            guard=wrong_guard))
    try:
        for x0 in (STARTS, STARTS[0]):
            with pytest.raises(ValueError, match="guard must return one bool per state"):
                record.function(QUAD, x0, 1.0)
    finally:
        methods.unregister("wrong_guard_flow")
    record = fs.register("wrong_momentum", fs.SecondOrderField(wrong_coefficients))
    try:
        for x0 in (STARTS, STARTS[0]):
            with pytest.raises(ValueError, match=r"coefficients must return two numbers"):
                record.function(QUAD, x0, 1.0)
    finally:
        methods.unregister("wrong_momentum")
    with pytest.raises(ValueError, match=r"v0 must have shape \(2,\) or the shape of x0"):
        fs.heavy_ball_flow(QUAD, STARTS, 1.0, v0=np.ones((3, 2)))


# --- a step that breaks its contract: one sentence naming the part, on numpy and on JAX ------

@contextlib.contextmanager
def _registered(name, rule):
    """``rule`` registered as ``name`` for one test: its method record, unregistered after."""
    record = fs.register(name, rule)
    try:
        yield record
    finally:
        methods.unregister(name)


_BROKEN = {
    "three things": (lambda k, e, x, s, ops, o: (x, ops.grad(x), s),
                     r"must return \(x_next, g, state, failed\), got 3 things"),
    "nothing": (lambda k, e, x, s, ops, o: None, r"got NoneType"),
    "complex": (lambda k, e, x, s, ops, o: (x + 0j, None, s, False), r"x_next is complex"),
    "gradient shape": (lambda k, e, x, s, ops, o: (x, ops.grad(x)[..., :1], s, False),
                       r"g \(grad L at x, or None\) must have the shape of x"),
    "state shape": (lambda k, e, x, s, ops, o: (x, None, x[..., :1], False),
                    r"a state of the shapes it was given"),
    "failed text": (lambda k, e, x, s, ops, o: (x, None, s, "yes"),
                    r"failed must be False or a boolean mask"),
}


@pytest.mark.parametrize("case", sorted(_BROKEN))
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_a_step_that_breaks_its_contract_is_named_in_one_sentence(case, backend):
    if backend == "jax":
        pytest.importorskip("jax")
    step, says = _BROKEN[case]
    init = (lambda X0, o, xp: xp.zeros_like(X0)) if case == "state shape" else None
    with _registered("broken_rule", fs.UpdateRule(step, init)) as record:
        for x0 in (STARTS[0], STARTS):
            with pytest.raises(TypeError, match="^the update rule of 'broken_rule': .*" + says):
                record.function(QUAD, x0, 0.1, 3, backend=backend)


def test_a_step_that_returns_lists_or_integers_runs_as_floats():
    lists = fs.UpdateRule(
        lambda k, e, x, s, ops, o: (np.round(x - e * ops.grad(x), 6).tolist(), None, s, False))
    ints = fs.UpdateRule(lambda k, e, x, s, ops, o: (np.rint(10 * x).astype(int), None, s,
                                                     False))
    with _registered("list_rule", lists) as record:
        got = record.function(QUAD, STARTS, 0.1, 4, record="final")
    # GD on L = x^T A x / 2: x_4 = (I - 0.1 A)^4 x_0, up to the rule's rounding to 1e-6
    step = np.linalg.matrix_power(np.eye(2) - 0.1 * A, 4)
    np.testing.assert_allclose(got.xs[:, -1], STARTS @ step.T, atol=1e-5)
    with _registered("int_rule", ints) as record:
        # x -> rint(10 x): 1.0 -> 10 -> 100 -> 1000 -> 10000, as floats
        np.testing.assert_array_equal(record.function(QUAD, [1.0, 0.0], 0.1, 4).xs[:, 0],
                                      [1.0, 10.0, 100.0, 1000.0, 10000.0])


def test_a_rule_that_branches_in_python_is_refused_on_jax_and_auto_runs_it_on_numpy(
        monkeypatch):
    pytest.importorskip("diffrax")
    from flowsim import backends
    from flowsim.backends import Refused

    def branching(k, eta, x, state, ops, options):
        g = ops.grad(x)
        return (x - eta * g if k < 2 else x - 0.5 * eta * g), g, state, False
    with _registered("branching_rule", fs.UpdateRule(branching)) as record:
        with pytest.raises(Refused, match="^the update rule of 'branching_rule' cannot run on "
                                          "JAX: it asks Python for the value of a traced"):
            record.function(QUAD, STARTS, 0.1, 4, backend="jax")
        chosen = []
        monkeypatch.setattr(backends, "choose", lambda *a, **k: chosen.append("jax") or "jax")
        auto = record.function(QUAD, STARTS, 0.1, 4, backend="auto", record="final")
    assert chosen == ["jax"] and auto.label.endswith("[auto: numpy]")
    x = STARTS[1]
    for k in range(4):   # the closed form of the branching steps on L = x^T A x / 2
        x = x - (0.1 if k < 2 else 0.05) * A @ x
    np.testing.assert_allclose(auto.xs[1, -1], x, rtol=1e-13)


_BROKEN_FIELDS = {
    "wrong shape": lambda x, ops, o: -ops.grad(x)[..., :1],
    "scalar": lambda x, ops, o: 1.0,
    "nothing": lambda x, ops, o: None,
    "complex": lambda x, ops, o: -ops.grad(x) + 0j,
}


@pytest.mark.parametrize("case", sorted(_BROKEN_FIELDS))
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_a_field_that_breaks_its_contract_is_named_in_one_sentence(case, backend):
    # on JAX a field of the wrong shape was broadcast into a wrong answer without a word
    if backend == "jax":
        pytest.importorskip("diffrax")
    says = "is complex" if case == "complex" else "must have the shape of x"
    with _registered("broken_field", fs.VectorField(_BROKEN_FIELDS[case])) as record:
        for x0 in (STARTS[0], STARTS[:2]):
            with pytest.raises(TypeError, match="^the vector field of 'broken_field': the "
                                                f"field's value dx/dt {says}"):
                record.function(QUAD, x0, 0.5, backend=backend)


def test_a_field_that_returns_lists_runs_on_numpy_and_is_refused_on_jax():
    from flowsim.backends import Refused
    field = fs.VectorField(lambda x, ops, o: (-ops.grad(x)).tolist())
    with _registered("list_field", field) as record:
        one = record.function(QUAD, STARTS[1], 1.0, method="RK45", rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(one.x_final, scipy.linalg.expm(-A) @ STARTS[1],
                                   rtol=1e-8, atol=1e-10)
        if fs.backends.available():
            with pytest.raises(Refused, match="^the vector field of 'list_field' cannot run "
                                              "on JAX"):
                record.function(QUAD, STARTS[:2], 1.0, backend="jax")


def test_coefficients_that_return_text_are_refused_on_every_backend():
    # float("1") read the text on numpy (the run went on), JAX failed on '-"1"'
    text = fs.SecondOrderField(lambda t, options, xp: ("1", 1.0))
    with _registered("text_friction", text) as record:
        for backend in ["numpy", "jax"] if fs.backends.available() else ["numpy"]:
            for x0 in (STARTS[0], STARTS[:2]):
                with pytest.raises(ValueError, match=r"^coefficients must return two numbers "
                                                     r"\(c, m\).*got \('1', 1.0\)"):
                    record.function(QUAD, x0, 1.0, backend=backend)


def test_a_jacobian_of_the_wrong_shape_is_named_in_one_sentence():
    field = fs.VectorField(lambda x, ops, o: -ops.grad(x), lambda x, ops, o: -ops.hess(x)[..., 0])
    with _registered("bad_jacobian", field) as record:
        for x0 in (STARTS[0], STARTS[:2]):
            with pytest.raises(TypeError, match=r"^the vector field of 'bad_jacobian': the "
                                                r"field's jacobian must have the shape"):
                record.function(QUAD, x0, 1.0, method="Radau")


def _timed_friction(rate):
    """m x'' + (1 + t) x' + grad L = 0 with m = 1 and the rate of its coefficients ``rate``."""
    return fs.SecondOrderField(lambda t, o, xp: (1.0 + t, 1.0 + 0 * t), rate=rate)


def test_a_rate_that_returns_text_or_the_wrong_shape_is_refused():
    with _registered("timed_friction", _timed_friction(lambda t, o, xp: (1.0 + 0 * t, 0.0))) \
            as good:
        batch = good.function(QUAD, STARTS[:2], 1.0, method="Radau")   # reads the rate
        alone = [good.function(QUAD, x, 1.0, method="Radau", rtol=1e-10, atol=1e-12).x_final
                 for x in STARTS[:2]]   # scipy's Radau: no rate
    np.testing.assert_allclose(batch.xs[:, -1], alone, atol=1e-8)   # (a wrong rate: 1e-5)
    bad = {"text": lambda t, o, xp: ("1", 0.0), "shape": lambda t, o, xp: (np.ones(7), 0.0),
           "one thing": lambda t, o, xp: 1.0}
    for rate in bad.values():
        with _registered("bad_rate", _timed_friction(rate)) as record:
            with pytest.raises(ValueError, match=r"^rate must return \(dc/dt, dm/dt\)"):
                record.function(QUAD, STARTS[:2], 1.0, method="Radau")
