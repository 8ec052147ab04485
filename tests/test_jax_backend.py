"""The JAX backend against the numpy path (schemes to 1e-12, flows within tolerance), its
statuses, and SGD's keyed streams against the stationary variance from theory."""
import os
import sys

import numpy as np
import pytest

import flowsim as fs
from flowsim import methods

pytest.importorskip("jax")
pytest.importorskip("diffrax")

LOSS = fs.Loss("x**2/2 + y**4/4 + x*y/4 + cos(x)/10")
STARTS = np.array([[1.0, 0.8], [-0.5, 1.5], [2.0, -1.0], [0.3, 0.2], [-1.2, -0.7]])
JAX_SCHEMES = [m.name for m in methods.schemes() if "jax" in m.accepts and m.name != "sgd"]


def _same(a, b):
    np.testing.assert_allclose(b.ts, a.ts, rtol=1e-13)
    np.testing.assert_allclose(b.xs, a.xs, rtol=1e-12, atol=1e-12)
    assert b.status == a.status and b.message == a.message


def test_every_scheme_that_accepts_jax_has_a_rule_and_is_covered():
    from flowsim.jax_backend.schemes import UPDATES
    # the registry says what runs on JAX: a record's own update rule, or one of the explicit
    # JAX extensions (schemes whose numpy path is not an update rule), never both
    # (proximal gradient's rule is made per penalty, mirror descent's per geometry, natural
    # gradient's per metric: rule_of / natural_rule_of in their modules)
    ruled = {m.name for m in methods.schemes() if m.rule is not None} | \
        {"proximal_gradient", "mirror_descent", "natural_gradient"}
    assert set(JAX_SCHEMES) | {"sgd"} == ruled | set(UPDATES)
    assert not ruled & set(UPDATES)
    assert len(JAX_SCHEMES) == 13


@pytest.mark.parametrize("name", JAX_SCHEMES)
def test_scheme_matches_numpy_with_a_schedule_and_gtol(name):
    record = methods.get(name)
    schedule = fs.schedules.step_decay(0.2, (40,), 0.5) if name != "proximal_point" else 0.5
    kwargs = dict(gtol=1e-3, record_every=3)
    if name == "proximal_gradient":
        kwargs["prox"] = fs.prox.GroupL1([[0], [1]], 0.05)
    a = record.function(LOSS, STARTS, schedule, 100, **kwargs)
    b = record.function(LOSS, STARTS, schedule, 100, backend="jax", **kwargs)
    # (Nesterov tests gtol only where beta_k = 0, at its first step)
    assert any(s.value == "converged" for s in a.status) or name == "nesterov"
    _same(a, b)
    assert "[jax]" in b.label


def test_one_start_gives_a_trajectory_and_final_records_only_the_ends():
    a = fs.heavy_ball(LOSS, STARTS[0], 0.05, 50, momentum=0.7, record="final")
    b = fs.heavy_ball(LOSS, STARTS[0], 0.05, 50, momentum=0.7, record="final", backend="jax")
    assert isinstance(b, fs.Trajectory) and b.xs.shape == (2, 2)
    _same(a, b)
    c = fs.nesterov(LOSS, STARTS, 0.05, 50, momentum=0.5, backend="jax")
    _same(fs.nesterov(LOSS, STARTS, 0.05, 50, momentum=0.5), c)


def test_divergence_and_overflow_end_each_start_as_numpy_does():
    # x**4 with eta = 1 overflows to inf within a few steps from 10; from 0.1 it converges
    loss = fs.Loss("x**4 + y**2")
    X0 = np.array([[10.0, 0.0], [0.1, 0.1], [3.0, 0.5]])
    for max_norm in (1e300, 1e6):
        a = fs.gradient_descent(loss, X0, 0.2, 30, max_norm=max_norm)
        b = fs.gradient_descent(loss, X0, 0.2, 30, max_norm=max_norm, backend="jax")
        assert a.status[0].value == "diverged"
        _same(a, b)


def test_newton_ends_failed_where_the_hessian_is_singular():
    # x**3 + y**2: H = diag(6x, 2) is singular on x = 0, where the start (0, 1) sits
    a = fs.newton("x**3 + y**2", [[0.0, 1.0], [2.0, 1.0]], 0.5, 5)
    b = fs.newton("x**3 + y**2", [[0.0, 1.0], [2.0, 1.0]], 0.5, 5, backend="jax")
    assert b.status[0].value == "failed"
    _same(a, b)


def test_proximal_point_reports_a_failed_newton_solve():
    tr = fs.proximal_point("cosh(3*x) + y**2", [[2.0, 1.0], [0.0, 0.0]], 1.0, 5,
                           tol=1e-15, max_inner=1, backend="jax")
    assert tr.status[0].value == "failed" and "Newton" in tr.message[0]
    assert tr.status[1].value == "reached_end"


def test_sgd_keyed_streams_match_the_stationary_variance():
    # w_{k+1} = w_k - eta (w_k - t_i), t_i drawn with replacement: variance eta s^2/(2 - eta)
    t = np.array([-1.0, 0.0, 0.5, 2.5])
    loss = fs.Loss.from_samples("(w - t)**2 / 2", {"t": t}, ["w"])
    eta = 0.2
    tr = fs.sgd(loss, [t.mean()], eta, 300, sampling="with_replacement", chains=4000,
                seed=3, record="final", backend="jax")
    assert tr.xs.shape == (4000, 2, 1)
    predicted = eta * t.var() / (2 - eta)
    assert np.var(tr.xs[:, -1, 0]) == pytest.approx(predicted, rel=0.06)
    again = fs.sgd(loss, [t.mean()], eta, 300, sampling="with_replacement", chains=4000,
                   seed=3, record="final", backend="jax")
    np.testing.assert_array_equal(again.xs, tr.xs)
    other = fs.sgd(loss, [t.mean()], eta, 300, sampling="with_replacement", chains=4000,
                   seed=4, record="final", backend="jax")
    assert not np.array_equal(other.xs, tr.xs)


def test_full_batch_reshuffled_sgd_is_gradient_descent_and_heavy_ball():
    loss = fs.losses.tanh_network(2, 8)
    x0 = [0.3, -0.2, 0.2, 0.1]
    sgd = fs.sgd(loss, x0, 0.1, 60, batch_size=8, backend="jax")
    np.testing.assert_allclose(sgd.xs, fs.gradient_descent(loss, x0, 0.1, 60).xs, atol=1e-13)
    sgd = fs.sgd(loss, x0, 0.1, 60, batch_size=8, momentum=0.6, backend="jax")
    hb = fs.heavy_ball(loss, x0, 0.1, 60, momentum=0.6)
    np.testing.assert_allclose(sgd.xs, hb.xs, atol=1e-12)


def test_gradient_flow_on_diffrax_matches_scipy_and_keeps_statuses():
    # y grows like e^t: past max_norm from y = 0.5, not from y = 1e-3; (1, 0) is a critical
    # point (converged at once)
    loss = fs.Loss("(x - 1)**2/2 - y**2/2")
    X0 = np.array([[0.0, 0.5], [3.0, -0.2], [1.0, 0.0], [0.5, 1e-3]])
    options = dict(method="RK45", rtol=1e-9, atol=1e-11, gtol=1e-6, max_norm=10.0)
    a = fs.gradient_flow(loss, X0, 4.0, **options)
    b = fs.gradient_flow(loss, X0, 4.0, backend="jax", **options)
    assert [s.value for s in b.status] == ["diverged", "diverged", "converged", "reached_end"]
    assert b.status == a.status
    np.testing.assert_allclose(b.xs[2:], a.xs[2:], atol=1e-7)
    exact = np.exp(b.ts) * 1e-3   # y(t) = y0 e^t
    np.testing.assert_allclose(b.xs[3, :, 1], exact, rtol=1e-7)
    assert np.all(np.abs(b.xs[:2, -1, 1]) > 10.0)   # held where they left max_norm
    np.testing.assert_allclose(b.at(1.234)[3], [1 - 0.5 * np.exp(-1.234),
                                                1e-3 * np.exp(1.234)], rtol=1e-6)
    one = fs.gradient_flow(loss, X0[3], 4.0, backend="jax", **options)   # one start
    assert isinstance(one, fs.Trajectory)
    np.testing.assert_allclose(one.xs, b.xs[3], rtol=1e-12)


def test_bad_backends_and_options_are_refused_in_one_sentence(monkeypatch):
    with pytest.raises(ValueError, match="backend must be 'numpy', 'jax', 'numba' or 'auto'"):
        fs.gradient_descent(LOSS, STARTS, 0.1, 5, backend="torch")
    with pytest.raises(ValueError, match="line_search"):
        fs.gradient_descent(LOSS, STARTS[0], 0.1, 5, line_search="armijo", backend="jax")
    with pytest.raises(ValueError, match="kinks"):
        fs.gradient_flow("abs(x) + y**2", STARTS, 1.0, backend="jax")
    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(ImportError, match=r"flowsim\[jax\]"):
        fs.heun(fs.Loss("x**2 + y**2"), STARTS, 0.1, 5, backend="jax")


def test_a_sweep_runs_its_chunks_on_jax_through_the_options():
    kw = dict(resolution=5, bounds=(-4, 4), etas=[0.005, 0.01], steps=60)
    loss = fs.losses.himmelblau()
    a = fs.sweep([loss], ["gd"], **kw).runs
    b = fs.sweep([loss], ["gd"], options={"gd": {"backend": "jax"}}, **kw).runs
    np.testing.assert_allclose(b[["x_x", "x_y", "L"]], a[["x_x", "x_y", "L"]], rtol=1e-12,
                               atol=1e-12)
    assert (a["status"] == b["status"]).all() and (a["ngev"] == b["ngev"]).all()


def test_implicit_names_run_kvaerno5_on_a_stiff_flow():
    # kappa = 1e4: the implicit solver needs about a hundred steps where an explicit one
    # needs thousands; the closed form x(t) = exp(-A t) x0 is the oracle
    loss = fs.losses.ill_conditioned_quadratic(1e4)
    X0 = np.array([[1.0, 1.0], [0.5, -1.0]])
    tr = fs.gradient_flow(loss, X0, 1.0, method="Radau", rtol=1e-8, atol=1e-10, backend="jax")
    assert "Kvaerno5" in tr.label and all(s.value == "reached_end" for s in tr.status)
    assert tr.extras["steps_taken"][:, -1].max() < 300
    for i in range(2):   # the end to 1e-7; the outputs between, interpolated, to 2e-6
        exact = np.array([loss.facts.flow_solution(t, X0[i]) for t in tr.ts])
        np.testing.assert_allclose(tr.xs[i], exact, atol=2e-6)
        np.testing.assert_allclose(tr.xs[i, -1], exact[-1], atol=1e-7)


def test_nesterov_ode_from_its_singular_start_matches_scipy():
    # x'' + (3/t) x' + grad L = 0 from t = 0: the mass 1 + r stands in for the limit there
    a = fs.nesterov_flow(LOSS, STARTS[:3], 5.0, method="RK45", rtol=1e-10, atol=1e-12)
    b = fs.nesterov_flow(LOSS, STARTS[:3], 5.0, method="RK45", rtol=1e-10, atol=1e-12,
                         backend="jax")
    np.testing.assert_allclose(b.xs, a.xs, atol=1e-8)
    np.testing.assert_allclose(b.extras["velocities"], a.extras["velocities"], atol=1e-8)
    assert b.status == a.status and "jax" in methods.get("nesterov_flow").accepts


def test_every_whitelisted_function_prints_to_jax_and_agrees_with_numpy():
    import jax

    from flowsim.jax_backend.compiled import jax_loss
    loss = fs.Loss("abs(x) + acos(y/3) + asin(y/4) + atan(x*y) + atan2(y, x + 5) + cos(x) "
                   "+ cosh(y/2) + erf(x) + exp(-y**2) + log(2 + x**2) + max(x, y) "
                   "+ min(x, 2*y) + relu(x - y) + sigmoid(y) + sign(x)*y + sin(x*y) "
                   "+ sinh(x/3) + softplus(x) + sqrt(1 + y**2) + tan(x/4) + tanh(y)")
    J = jax_loss(loss)
    X = np.random.default_rng(0).uniform(-1.5, 1.5, (40, 2))
    np.testing.assert_allclose(jax.vmap(J.value)(X), loss.value(X), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(jax.vmap(J.grad)(X), loss.grad(X), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(jax.vmap(J.hess)(X), loss.hess(X), rtol=1e-13, atol=1e-13)


def test_newton_flow_keeps_its_positive_definite_rule():
    # H = diag(3x^2 - 1/4, 2): not positive definite at x = 0, where the third start sits
    loss = fs.Loss("x**4/4 + y**2 - x**2/8")
    X = np.array([[1.0, 1.0], [0.8, -0.5], [0.0, 1.0]])
    a = fs.newton_flow(loss, X, 3.0, method="RK45", rtol=1e-10, atol=1e-12)
    b = fs.newton_flow(loss, X, 3.0, method="RK45", rtol=1e-10, atol=1e-12, backend="jax")
    assert b.status == a.status and b.status[2].value == "failed"
    assert b.message[2] == a.message[2]
    np.testing.assert_allclose(b.xs, a.xs, atol=1e-8)
    # the Newton flow's closed form: grad L(x(t)) = exp(-t) grad L(x0)
    np.testing.assert_allclose(b.grad_norms[:2, -1], np.exp(-3.0) * b.grad_norms[:2, 0],
                               rtol=1e-6)


def test_statuses_agree_with_numpy_where_they_used_to_differ():
    # proximal point whose Newton steps would leave the domain of log
    L = fs.Loss("x - 2*log(x)")
    X = np.array([[0.05], [0.5], [3.0], [50.0]])
    for eta in (1.0, 5.0):
        a = fs.proximal_point(L, X, eta, 30)
        b = fs.proximal_point(L, X, eta, 30, backend="jax")
        assert a.status == b.status
        np.testing.assert_allclose(b.xs, a.xs, rtol=1e-10)
    # a finite-time blow-up: diverged on both (JAX's solver gives up far out)
    numpy_flow = fs.gradient_flow("-x**4", [[1.0], [0.5]], 5.0, max_steps=3000)
    jax_flow = fs.gradient_flow("-x**4", [[1.0], [0.5]], 5.0, max_steps=3000, backend="jax")
    assert numpy_flow.status == jax_flow.status == (fs.Status.DIVERGED,) * 2
    assert "blows up" in jax_flow.message[0]
    # any integer seed, on both backends; numpy integers are the same seed
    fit = fs.Loss.from_samples("(a*x - y)**2", {"x": [1.0, 2.0], "y": [1.0, 3.0]}, ["a"])
    for backend in ("numpy", "jax"):
        big = fs.sgd(fit, [0.0], 0.1, 5, seed=2 ** 64, backend=backend)
        assert big.status is fs.Status.REACHED_END
        np.testing.assert_array_equal(fs.sgd(fit, [0.0], 0.1, 5, seed=np.int64(3),
                                             backend=backend).xs,
                                      fs.sgd(fit, [0.0], 0.1, 5, seed=3, backend=backend).xs)


def test_stiff_rosenbrock_starts_reach_the_end_on_the_implicit_jax_solver():
    # these starts spent 100,000 rejected steps at t = 0 with diffrax's default root finder
    loss = fs.losses.rosenbrock(2)
    X = np.array([[-1.94117478, 1.45456036], [-1.96018176, -0.53981537], [0.5, 0.5]])
    run = fs.gradient_flow(loss, X, 1.0, method="BDF", backend="jax", rtol=1e-6, atol=1e-8)
    assert all(s is fs.Status.REACHED_END for s in run.status), run.message
    ref = fs.gradient_flow(loss, X, 1.0, method="Radau", rtol=1e-12, atol=1e-14, t_eval=run.ts)
    np.testing.assert_allclose(run.xs, ref.xs, atol=1e-4)   # rtol 1e-6 along the valley


def test_the_persistent_compilation_cache_folder(monkeypatch, tmp_path):
    from flowsim.backends import cache_folder
    monkeypatch.setenv("FLOWSIM_JAX_CACHE", "off")
    assert cache_folder() is None
    monkeypatch.setenv("FLOWSIM_JAX_CACHE", str(tmp_path / "c"))
    assert cache_folder() == str(tmp_path / "c")
    monkeypatch.delenv("FLOWSIM_JAX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_folder() == str(tmp_path / "flowsim" / "jax")


_SECOND_PROCESS = """
import sys, numpy as np, flowsim as fs
from flowsim.jax_backend import flows, schemes
if sys.argv[1] == "read":   # this process must trace nothing: the program comes from the store
    def refuse(*args, **kwargs):
        raise AssertionError("traced again")
    flows._traced = schemes._traced = refuse
loss = fs.Loss('x**2 + y**4 + a*x*y', params={'a': 0.25})
X = np.ones((3, 2)) * [1, -0.5]
runs = [fs.gradient_flow(loss, X, 1.0, backend='jax', method=m) for m in ('RK45', 'BDF')]
runs += [fs.heavy_ball(loss, X, 0.1, 100, backend='jax')]
fit = fs.Loss.from_samples('(a*x - y)**2', {'x': [1.0, 2.0, 3.0], 'y': [1.0, 3.0, 2.0]}, ['a'])
runs += [fs.sgd(fit, [0.5], 0.05, 100, chains=3, seed=4, backend='jax')]   # typed keys
np.save(sys.argv[2], np.concatenate([r.xs.ravel() for r in runs]))
"""


def test_a_second_process_reads_the_traced_flow_from_the_store(tmp_path):
    import os
    import subprocess
    env = dict(os.environ, FLOWSIM_JAX_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    env.pop("EQX_ON_ERROR", None)

    def run(mode, out):
        subprocess.run([sys.executable, "-c", _SECOND_PROCESS, mode, str(tmp_path / out)],
                       check=True, env=env, timeout=300)
        return np.load(tmp_path / out)
    first = run("trace", "first.npy")
    programs = os.listdir(tmp_path / "cache" / "programs")
    assert len(programs) == 4, programs   # Dopri5, Kvaerno5, heavy ball's scan, SGD's
    compiled = {p for p in os.listdir(tmp_path / "cache") if p != "programs"}
    assert compiled                        # and their executables (no host callback)
    second = run("read", "second.npy")     # neither traces nor compiles: the same bits
    np.testing.assert_array_equal(second, first)
    assert {p for p in os.listdir(tmp_path / "cache") if p != "programs"} == compiled
    assert sorted(os.listdir(tmp_path / "cache" / "programs")) == sorted(programs)
    # the flows themselves: x' = -(2x + y/4, 4y^3 + x/4) by Radau, independently
    ref = fs.gradient_flow(fs.Loss("x**2 + y**4 + a*x*y", params={"a": 0.25}), [1, -0.5],
                           1.0, method="Radau", rtol=1e-12, atol=1e-14,
                           t_eval=np.linspace(0, 1, 101))   # the batches' default outputs
    flows = first[:2 * 3 * 101 * 2].reshape(2, 3, 101, 2)
    np.testing.assert_allclose(flows[:, 0], np.stack([ref.xs, ref.xs]), atol=1e-5)


def _program_files(folder):
    import os
    path = os.path.join(folder, "programs")
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def test_the_program_store_gives_the_bits_of_the_program_it_stored(monkeypatch, tmp_path):
    monkeypatch.setenv("FLOWSIM_JAX_CACHE", "off")
    X = STARTS[:3]
    plain = fs.gradient_flow(fs.Loss(LOSS.expr), X, 2.0, backend="jax", method="RK45")
    monkeypatch.setenv("FLOWSIM_JAX_CACHE", str(tmp_path))
    stored = fs.gradient_flow(fs.Loss(LOSS.expr), X, 2.0, backend="jax", method="RK45")
    assert len(_program_files(tmp_path)) == 1
    read = fs.gradient_flow(fs.Loss(LOSS.expr), X, 2.0, backend="jax", method="RK45")
    np.testing.assert_array_equal(read.xs, stored.xs)   # the program read is the one stored
    # a program compiled anew (the plain trace, the exported one) may round differently
    # (seen: 5e-15 apart, depending on what this process compiled before); the second
    # process's bits are the first's (test_a_second_process_reads_the_traced_flow...)
    np.testing.assert_allclose(stored.xs, plain.xs, rtol=1e-13, atol=1e-14)
    assert stored.status == plain.status and stored.message == plain.message
    assert read.status == plain.status and read.message == plain.message
    # an unreadable entry is replaced, never fatal; another batch size is another program
    (entry,) = _program_files(tmp_path)
    (tmp_path / "programs" / entry).write_bytes(b"not a program")
    again = fs.gradient_flow(fs.Loss(LOSS.expr), X, 2.0, backend="jax", method="RK45")
    np.testing.assert_allclose(again.xs, plain.xs, rtol=1e-13, atol=1e-14)   # compiled anew
    assert (tmp_path / "programs" / entry).stat().st_size > 1000
    fs.gradient_flow(LOSS, X[:2], 2.0, backend="jax", method="RK45")
    assert len(_program_files(tmp_path)) == 2


def test_the_program_key_holds_everything_the_trace_depends_on():
    import jax
    import jax.numpy as jnp
    from flowsim.jax_backend.programs import program_key
    from flowsim.flows.gradient import GRADIENT_FIELD
    X = jnp.zeros((4, 2))
    field = ("field", "gradient_flow", GRADIENT_FIELD, ())
    base = program_key((field, 1e-6, fs.Loss("x**2 + a*y**2", params={"a": 1.0})), X, jax)
    assert base is not None
    # the same loss written again, the same settings: the same program
    assert program_key((field, 1e-6, fs.Loss("x**2 + a*y**2", params={"a": 1.0})), X,
                       jax) == base
    others = [
        (field, 1e-6, fs.Loss("x**2 + a*y**2", params={"a": 2.0})),   # a parameter's value
        (field, 1e-6, fs.Loss("x**2 + a*y**2", variables=["y", "x"], params={"a": 1.0})),
        (field, 1e-6, fs.Loss("x**2 + b*y**2", params={"b": 1.0})),   # a symbol's name
        (field, 1e-7, fs.Loss("x**2 + a*y**2", params={"a": 1.0})),   # a tolerance
        (field, 1e-6, fs.Loss("x**2 + a*y**3", params={"a": 1.0})),   # the expression
        (field, 1e-6, fs.Loss("x**2 + a*y**2", params={"a": 1.0 + 2 ** -52})),
    ]
    keys = {program_key(parts, X, jax) for parts in others}
    assert len(keys) == len(others) and base not in keys
    assert program_key((field, 1e-6, fs.Loss("x**2 + y**2")), jnp.zeros((5, 2)), jax) != \
        program_key((field, 1e-6, fs.Loss("x**2 + y**2")), X, jax)   # the shape
    # a JAX setting that changes what a trace gives
    before = jax.config.jax_numpy_rank_promotion
    try:
        jax.config.update("jax_numpy_rank_promotion", "warn")
        assert program_key((field, 1e-6, fs.Loss("x**2 + a*y**2", params={"a": 1.0})), X,
                           jax) != base
    finally:
        jax.config.update("jax_numpy_rank_promotion", before)
    # data by value: a loss of samples whose data differ in one bit
    y = np.linspace(0.0, 1.0, 7)
    data = [fs.Loss.from_samples("(w - y)**2", {"y": v}, ["w"]) for v in (y, y + 2e-16)]
    assert program_key(data[0], X, jax) != program_key(data[1], X, jax)


def test_a_researchers_own_field_or_rule_is_traced_every_time_never_stored(monkeypatch, tmp_path):
    from flowsim.jax_backend.programs import program_key
    monkeypatch.setenv("FLOWSIM_JAX_CACHE", str(tmp_path))
    import jax
    own = fs.VectorField(lambda x, ops, options: -options["c"] * ops.grad(x),
                         options={"c": 1.0})
    # its code may change under the same name: it cannot key a program kept on disk
    assert program_key(("field", "own", own, ()), jax.numpy.zeros((2, 2)), jax) is None
    record = fs.register("own_store_flow", own)
    try:
        run = record.function(LOSS, STARTS[:2], 1.0, c=0.5, backend="jax")
    finally:
        methods.unregister("own_store_flow")
    assert all(s is fs.Status.REACHED_END for s in run.status)
    assert _program_files(tmp_path) == []
    rule = fs.register("own_store_rule", fs.UpdateRule(
        lambda k, eta, x, state, ops, options: (x - eta * ops.grad(x), None, state, False)))
    try:
        steps = rule.function(LOSS, STARTS[:2], 0.1, 20, backend="jax")
    finally:
        methods.unregister("own_store_rule")
    np.testing.assert_allclose(steps.xs, fs.gradient_descent(LOSS, STARTS[:2], 0.1, 20).xs,
                               rtol=1e-12)
    assert _program_files(tmp_path) == []
    # a built-in one is stored (the momentum ODEs' coefficients are flowsim's code)
    fs.heavy_ball_flow(LOSS, STARTS[:2], 1.0, backend="jax")
    assert len(_program_files(tmp_path)) == 1


def test_a_program_that_cannot_be_exported_runs_plainly(monkeypatch, tmp_path):
    import jax

    def refuse(*args, **kwargs):
        raise ValueError("cannot serialize a host callback")
    monkeypatch.setenv("FLOWSIM_JAX_CACHE", str(tmp_path))
    monkeypatch.setattr(jax.export, "export", refuse)
    run = fs.gradient_flow(fs.Loss(LOSS.expr), STARTS[:2], 1.0, backend="jax")
    ref = fs.gradient_flow(LOSS, STARTS[:2], 1.0, rtol=1e-10, atol=1e-12, t_eval=run.ts)
    np.testing.assert_allclose(run.xs, ref.xs, atol=1e-5)
    assert _program_files(tmp_path) == []


def test_the_program_store_keeps_within_its_size(monkeypatch, tmp_path):
    from flowsim.jax_backend import programs
    monkeypatch.setenv("FLOWSIM_JAX_CACHE", str(tmp_path))
    monkeypatch.setattr(programs, "STORE_BYTES", 1)   # room for the newest program only
    seen = []
    for m in (1, 2, 3):
        fs.gradient_flow(fs.Loss(LOSS.expr), STARTS[:m], 1.0, backend="jax")
        kept = _program_files(tmp_path)
        assert len(kept) == 1 and kept[0] not in seen   # the newest only
        seen += kept


@pytest.mark.parametrize("record", ["all", "final"])
def test_stops_inside_the_blocks_of_the_jax_driver_are_exact(record):
    # x_{k+1} = (1 - 2 eta) x on x^2 + y^2: with eta = 1.05 every start grows by 1.1 a step
    # and leaves max_norm = 1e8 at a step set by its size (spread over many 32-step blocks);
    # with eta = 0.1 starts converge (gtol) at steps set by their size
    sizes = np.logspace(0, 7, 23)
    X = np.stack([sizes, -sizes / 3], axis=1)
    for eta, kw in ((1.05, {}), (0.1, {"gtol": 1e-3})):
        a = fs.gradient_descent("x**2 + y**2", X, eta, 300, record=record, **kw)
        b = fs.gradient_descent("x**2 + y**2", X, eta, 300, record=record, backend="jax", **kw)
        _same(a, b)
        assert len(set(a.message)) > 10    # the starts really stop at different steps
        # a start's run does not depend on the others' (whether its block was replayed)
        for i in (0, 11, 22):
            alone = fs.gradient_descent("x**2 + y**2", X[i], eta, 300, record=record,
                                        backend="jax", **kw)
            k = len(alone.xs)
            np.testing.assert_allclose(alone.xs, b.xs[i, :k], rtol=1e-13)
            assert np.all(b.xs[i, k:] == b.xs[i, k - 1])   # held after its stop
            assert alone.status is b.status[i] and alone.message == b.message[i]


def _doubling_with_reset(k, eta, x, state, ops, options):
    """x_{k+1} = 2 x_k while |x_k| <= 6, else 1: leaves max_norm = 5 at 8 and, unchecked,
    comes back to 1 at the next step (a NaN, where the driver marks a stop, becomes 1 too)."""
    xp = ops.xp
    return xp.where(xp.abs(x) <= 6.0, 2.0 * x, 1.0), None, state, False


def test_a_stop_inside_a_block_is_found_whatever_the_rule_makes_of_it():
    # the JAX driver's unchecked blocks mark a start that may stop in its state (NaN); this
    # rule turns a NaN back into 1 and its path crosses max_norm and returns inside a block,
    # yet every start ends diverged at its own step, as on numpy (x0 = 2^-j: 8 at step j + 3;
    # record="final": the steps run in blocks of 32)
    record = fs.register("doubling", fs.UpdateRule(_doubling_with_reset))
    try:
        X = 2.0 ** -np.arange(12.0)[:, None]
        a = record.function("x**2", X, 1.0, 100, max_norm=5.0, record="final")
        b = record.function("x**2", X, 1.0, 100, max_norm=5.0, record="final", backend="jax")
        _same(a, b)
        assert all(s is fs.Status.DIVERGED for s in b.status)
        np.testing.assert_array_equal(b.t_final, np.arange(12.0) + 3)
        for i, x0 in enumerate(X):   # alone, no other start's stop replays its block
            alone = record.function("x**2", x0, 1.0, 100, max_norm=5.0, record="final",
                                    backend="jax")
            assert alone.status is fs.Status.DIVERGED and alone.t_final == i + 3
            assert alone.message == a.message[i]
    finally:
        methods.unregister("doubling")


def test_momentum_stops_inside_blocks_match_numpy():
    # heavy-ball paths overshoot: with max_norm = 20 on Rosenbrock (eta = 2e-3, not yet
    # chaotic) starts leave it or converge at some 70 different steps, others come close and
    # turn back inside a block of 32 unchecked steps; every start ends at the same step,
    # with the same status and sentence, as on numpy
    X = np.random.default_rng(1).uniform(-2, 2, size=(300, 2))
    kw = dict(record="final", max_norm=20.0, gtol=1e-2)
    a = fs.heavy_ball(fs.losses.rosenbrock(2), X, 2e-3, 400, **kw)
    b = fs.heavy_ball(fs.losses.rosenbrock(2), X, 2e-3, 400, backend="jax", **kw)
    assert list(a.status) == list(b.status) and list(a.message) == list(b.message)
    np.testing.assert_allclose(b.t_final, a.t_final, rtol=1e-12)
    assert len(set(a.extras["steps_taken"][:, -1])) > 30
    assert {fs.Status.DIVERGED, fs.Status.CONVERGED} <= set(a.status)


@pytest.mark.parametrize("replay_rows", [0, 1, 64, 10 ** 6])
def test_replaying_few_or_all_rows_of_a_block_gives_numpys_stops(monkeypatch, replay_rows):
    # the rows that may have stopped in a block are replayed apart (up to REPLAY_ROWS of
    # them) or all together: either way each start stops at numpy's step with its sentence
    # (gtol met by some starts at scattered steps, max_norm crossed by others)
    from flowsim.jax_backend import schemes
    monkeypatch.setattr(schemes, "REPLAY_ROWS", replay_rows)
    X = np.random.default_rng(1).uniform(-2, 2, size=(300, 2))
    kw = dict(record="final", max_norm=3.0, gtol=0.5)
    loss = fs.Loss("100*(y - x**2)**2 + (1 - x)**2")   # fresh: its own compiled programs
    a = fs.heavy_ball(loss, X, 1e-3, 300, **kw)
    b = fs.heavy_ball(loss, X, 1e-3, 300, backend="jax", **kw)
    assert list(a.status) == list(b.status) and list(a.message) == list(b.message)
    np.testing.assert_allclose(b.t_final, a.t_final, rtol=1e-12)
    np.testing.assert_allclose(b.x_final, a.x_final, rtol=1e-10, atol=1e-12)
    assert len(set(a.extras["steps_taken"][:, -1])) > 100   # stops at 100+ different steps
    assert {fs.Status.CONVERGED, fs.Status.DIVERGED} <= set(a.status)


def test_the_newton_flow_rule_is_one_on_every_path():
    # H = diag(2, -2) is not positive definite: every path refuses the start in one sentence
    loss = fs.Loss("x**2 - y**2 + x*y/10")
    X = np.array([[1.0, 0.5], [0.2, -0.3]])
    single = [fs.newton_flow(loss, x, 1.0) for x in X]
    batch = fs.newton_flow(loss, X, 1.0)
    on_jax = fs.newton_flow(loss, X, 1.0, backend="jax")
    for i, run in enumerate(single):
        assert run.status is batch.status[i] is on_jax.status[i] is fs.Status.FAILED
        assert run.message == batch.message[i] == on_jax.message[i]
        assert "not positive definite" in run.message


class _HalfL1:
    """A researcher's own penalty, numpy only: 0.5 |x|_1 (no prox_xp)."""

    def value(self, x):
        return 0.5 * np.abs(x).sum(axis=-1)

    def prox(self, v, eta):
        return np.sign(v) * np.maximum(np.abs(v) - 0.5 * eta, 0.0)


def test_proximal_gradient_on_jax_is_one_rule_per_penalty(monkeypatch):
    """Forward-backward splitting runs its one update rule on JAX for the penalties written
    over an array namespace: the lasso's closed form (x - 3)^2/2 + |x| from 0 with eta = 1
    is 0, 2, 2; a penalty of one's own without prox_xp runs on numpy (refused on JAX, taken
    by backend='auto')."""
    one = fs.proximal_gradient("(x - 3)**2 / 2", [[0.0], [5.0]], 1.0, 2, prox=fs.prox.L1(1.0),
                               backend="jax")
    np.testing.assert_array_equal(one.xs[:, :, 0], [[0.0, 2.0, 2.0], [5.0, 2.0, 2.0]])
    own = fs.proximal_gradient(LOSS, STARTS, 0.1, 50, prox=_HalfL1())
    same = fs.proximal_gradient(LOSS, STARTS, 0.1, 50, prox=fs.prox.L1(0.5))
    np.testing.assert_allclose(own.xs, same.xs, rtol=0, atol=1e-15)
    with pytest.raises(fs.backends.Refused, match="prox_xp"):
        fs.proximal_gradient(LOSS, STARTS, 0.1, 50, prox=_HalfL1(), backend="jax")
    monkeypatch.setattr(fs.backends, "choose", lambda *args: "jax")
    auto = fs.proximal_gradient(LOSS, STARTS, 0.1, 50, prox=_HalfL1(), backend="auto")
    assert auto.label.endswith("[auto: numpy]") and np.array_equal(auto.xs, own.xs)


def test_mirror_descent_on_jax_is_its_one_rule_per_geometry(monkeypatch):
    """Mirror descent runs its rule on JAX for the simplex and closed-form potentials: the
    unnormalized exponentiated gradient's closed form x0 exp(-eta k c) on a linear loss, the
    simplex's x0 exp(-eta k c) / Z, numpy's iterates to 1e-15; a potential whose inverse
    mirror map needs Newton's method runs on numpy (refused on JAX, taken by 'auto')."""
    X0 = np.array([[1.0, 2.0], [0.5, 0.25]])
    run = fs.mirror_descent("2*x + 3*y", X0, 0.1, 10, potential="x*log(x) + y*log(y)",
                            backend="jax")
    np.testing.assert_allclose(run.xs[:, -1], X0 * np.exp(-1.0 * np.array([2.0, 3.0])),
                               rtol=1e-13)
    c, P = np.array([1.0, -0.5, 2.0]), np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    simplex = fs.mirror_descent("x - y/2 + 2*z", P, 0.1, 30, potential="simplex",
                                backend="jax")
    expected = P * np.exp(-3.0 * c)
    np.testing.assert_allclose(simplex.xs[:, -1], expected / expected.sum(1, keepdims=True),
                               rtol=1e-13)
    for potential in ("x*log(x) + y*log(y)", None, "simplex"):
        loss = "x - y/2" if potential == "simplex" else LOSS
        X = np.array([[0.3, 0.7], [0.6, 0.4]]) if potential == "simplex" else \
            np.abs(STARTS) + 0.1
        _same(fs.mirror_descent(loss, X, 0.05, 60, potential=potential, gtol=1e-3),
              fs.mirror_descent(loss, X, 0.05, 60, potential=potential, gtol=1e-3,
                                backend="jax"))
    newton = "x**2/2 + exp(x) + y**2/2"   # grad psi = x + e^x: no closed-form inverse
    with pytest.raises(fs.backends.Refused, match="closed form"):
        fs.mirror_descent(LOSS, STARTS, 0.05, 5, potential=newton, backend="jax")
    monkeypatch.setattr(fs.backends, "choose", lambda *args: "jax")
    auto = fs.mirror_descent(LOSS, STARTS, 0.05, 5, potential=newton, backend="auto")
    assert auto.label.endswith("[auto: numpy]")


def test_natural_gradient_on_jax_is_its_one_rule_per_metric():
    """G = diag(2, 1) on x^2 + y^2 from (1, 1) with eta = 1/4 is (3/4, 1/2) exactly; a
    state-dependent metric equals numpy's iterates to 1e-12, and a singular one ends that
    start failed with the same message on both backends."""
    one = fs.natural_gradient("x**2 + y**2", [1.0, 1.0], 0.25, 1, metric=[[2, 0], [0, 1]],
                              backend="jax")
    assert one.xs[-1].tolist() == [0.75, 0.5]
    metric = [["1 + x**2", "x*y/4"], ["x*y/4", "1 + y**2"]]
    _same(fs.natural_gradient(LOSS, STARTS, 0.05, 80, metric=metric, gtol=1e-3),
          fs.natural_gradient(LOSS, STARTS, 0.05, 80, metric=metric, gtol=1e-3,
                              backend="jax"))
    singular = [["x", "0"], ["0", "1"]]
    X = np.array([[1.0, 1.0], [0.0, 1.0]])
    _same(fs.natural_gradient("x**2 + y**2", X, 0.1, 5, metric=singular),
          fs.natural_gradient("x**2 + y**2", X, 0.1, 5, metric=singular, backend="jax"))


def test_failed_checks_give_a_status_with_the_cache_off_too(monkeypatch):
    # EQX_ON_ERROR=nan (a failed diffrax check is a NaN, reported as a status, and the solve
    # has no host callback) was set only with the cache on: with FLOWSIM_JAX_CACHE=off at the
    # first JAX use, equinox raised instead, and a cache turned on later kept nothing
    jax = pytest.importorskip("jax")
    from flowsim import backends
    monkeypatch.delenv("EQX_ON_ERROR", raising=False)
    monkeypatch.setenv("FLOWSIM_JAX_CACHE", "off")
    backends._persistent_cache(jax)
    assert os.environ["EQX_ON_ERROR"] == "nan"
    monkeypatch.setenv("EQX_ON_ERROR", "raise")   # the user's own choice stays
    backends._persistent_cache(jax)
    assert os.environ["EQX_ON_ERROR"] == "raise"
