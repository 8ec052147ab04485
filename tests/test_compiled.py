"""The compiled backend (backend="numba"): an update rule traced to formulas and run as one
machine-code loop. Oracles: the closed form (I - eta A)^k x0 of gradient descent on a
quadratic, and the numpy driver (statuses, messages, stop steps, counts) on every scheme of the
registry written as a rule."""
import numpy as np
import pytest

import flowsim
from flowsim import methods
from flowsim.backends import Refused
from flowsim.rules import UpdateRule
from flowsim.schemes.from_rule import RuleScheme

pytest.importorskip("numba")
import flowsim.compiled as compiled  # noqa: E402
from flowsim.compiled import kernel  # noqa: E402
from flowsim.compiled.trace import trace_step  # noqa: E402

A = np.array([[1.0, 0.0], [0.0, 3.0]])
QUADRATIC = flowsim.Loss("(x**2 + 3*y**2)/2")   # one object: its kernels compile once
ROSENBROCK = flowsim.losses.rosenbrock(2)


def test_gradient_descent_is_the_closed_form_on_a_quadratic():
    X0 = np.random.default_rng(1).uniform(-2, 2, (40, 2))
    eta, steps = 0.3, 25
    r = flowsim.gradient_descent(QUADRATIC, X0, eta, steps, backend="numba")
    M = np.eye(2) - eta * A
    expected = np.stack([X0 @ np.linalg.matrix_power(M, k).T for k in range(steps + 1)], 1)
    np.testing.assert_allclose(r.xs, expected, rtol=1e-13, atol=1e-15)
    assert r.label.endswith("[numba]") and set(r.status) == {"reached_end"}
    assert r.ngev == 40 * steps


RULE_SCHEMES = [m.name for m in methods.schemes() if "numba" in m.accepts]


def test_the_registry_says_which_methods_compile():
    assert set(RULE_SCHEMES) >= {"gradient_descent", "heun", "heavy_ball", "nesterov", "adam",
                                 "rmsprop", "adagrad", "sign_descent"}
    assert "newton" not in RULE_SCHEMES   # a linear solve per step: refused, and not claimed
    flows = {m.name for m in methods.flows() if "numba" in m.accepts}
    # (and every flow registered from a vector field or a momentum flow's coefficients)
    assert flows == {"gradient_flow", "heavy_ball_flow", "nesterov_flow"}


@pytest.mark.parametrize("name", RULE_SCHEMES)
def test_every_rule_scheme_agrees_with_the_numpy_driver(name):
    """Same statuses, messages, stop steps and evaluation counts; iterates to rounding (the
    formulas are sympy's printed ones, numpy's are symengine's)."""
    X0 = np.random.default_rng(2).uniform(-1.5, 1.5, (300, 2))
    X0[0] = [1.0, 1.0]   # at the minimum: converged at step 0
    f = methods.get(name).function
    a = f(ROSENBROCK, X0, 1e-4, 40, gtol=0.5)
    b = f(ROSENBROCK, X0, 1e-4, 40, gtol=0.5, backend="numba")
    assert b.status == a.status and b.message == a.message
    np.testing.assert_array_equal(b.t_stop, a.t_stop)
    np.testing.assert_allclose(b.xs, a.xs, rtol=1e-9, atol=1e-12)
    assert (b.nfev, b.ngev, b.nhev) == (a.nfev, a.ngev, a.nhev)
    assert a.status[0] == "converged"


def test_each_stop_rule_ends_a_start_where_the_numpy_driver_ends_it():
    X0 = np.array([[1.5, 0.0],      # stable axis: converges at gtol
                   [1.0, 1e-3],     # grows along the unstable axis past max_norm (kept)
                   [1e9, 0.0],      # beyond max_norm: held at the start
                   [0.5, 0.0]])
    kw = dict(gtol=1e-6, max_norm=1e8, record_every=3)
    a = flowsim.gradient_descent(QUADRATIC, X0, 0.9, 200, **kw)
    b = flowsim.gradient_descent(QUADRATIC, X0, 0.9, 200, backend="numba", **kw)
    assert b.status == a.status == ("converged", "diverged", "diverged", "converged")
    assert b.message == a.message
    np.testing.assert_array_equal(b.ts, a.ts)
    np.testing.assert_array_equal(b.t_stop, a.t_stop)
    np.testing.assert_allclose(b.xs, a.xs, rtol=1e-12)
    # overflow: the first non-finite iterate is not kept
    huge = dict(max_norm=1e308)
    a = flowsim.gradient_descent(QUADRATIC, X0[1:2], 0.9, 3000, **huge)
    b = flowsim.gradient_descent(QUADRATIC, X0[1:2], 0.9, 3000, backend="numba", **huge)
    assert b.message == a.message and "not finite" in b.message[0]
    np.testing.assert_array_equal(b.xs, a.xs)


def test_any_split_of_the_batch_gives_the_same_bits(monkeypatch):
    X0 = np.random.default_rng(3).uniform(-1.5, 1.5, (700, 2))
    kw = dict(gtol=1.0, record="final", backend="numba")
    whole = flowsim.heavy_ball(ROSENBROCK, X0, 1e-3, 101, **kw)
    halves = [flowsim.heavy_ball(ROSENBROCK, X0[s], 1e-3, 101, **kw)
              for s in (slice(0, 333), slice(333, None))]
    monkeypatch.setattr(compiled, "BLOCK_NUMBERS", 10)   # blocks of 256 starts
    monkeypatch.setattr(kernel, "CHUNK", 7)              # and chunks that do not divide 101
    blocks = flowsim.heavy_ball(ROSENBROCK, X0, 1e-3, 101, **kw)
    joined = np.concatenate([h.xs for h in halves])
    assert np.array_equal(whole.xs, joined) and np.array_equal(whole.xs, blocks.xs)
    assert whole.status == blocks.status == halves[0].status + halves[1].status
    assert whole.message == blocks.message


def test_a_schedule_and_a_failed_step_of_a_researchers_own_rule():
    def step(k, eta, x, state, ops, options):
        g = ops.grad(x)
        x_next = x - eta * g
        return x_next, g, state, ops.xp.abs(x_next[..., 0]) > options["wall"]
    rule = UpdateRule(step, options={"wall": 2.0}, failure="crossed the wall at step {k}")
    X0 = np.array([[-1.0, 0.5], [1.9, 0.1], [0.5, 0.5]])

    def eta(k):
        return 0.1 / (1 + k)
    run = RuleScheme("walled", "walled GD", rule)   # (the registry is not touched)
    a = run(QUADRATIC, -X0 * 3, eta, 30, wall=2.5)
    b = run(QUADRATIC, -X0 * 3, eta, 30, wall=2.5, backend="numba")
    assert "failed" in a.status and b.status == a.status and b.message == a.message
    np.testing.assert_allclose(b.xs, a.xs, rtol=1e-13)


def test_what_a_formula_cannot_be_is_refused_in_one_sentence():
    def branching(k, eta, x, state, ops, options):
        g = ops.grad(x)
        if (g > 0).any():
            g = 2 * g
        return x - eta * g, g, state, False
    run = RuleScheme("branching", "branching", UpdateRule(branching))
    with pytest.raises(Refused, match="xp.where"):
        run(QUADRATIC, [[1.0, 1.0]], 0.1, 3, backend="numba")
    with pytest.raises(ValueError, match="update rules"):
        flowsim.proximal_point(QUADRATIC, [1.0, 1.0], 0.1, 3, backend="numba")
    with pytest.raises(ValueError, match="line_search"):
        flowsim.gradient_descent(QUADRATIC, [1.0, 1.0], 0.1, 3, line_search="armijo",
                                 backend="numba")
    with pytest.raises(Refused, match="linear system"):
        flowsim.newton(QUADRATIC, [[1.0, 1.0]], 0.5, 3, backend="numba")


def test_floats_become_exact_constants_not_printed_digits():
    t = trace_step(ROSENBROCK, methods.get("heavy_ball").rule, {"momentum": 1 / 3})
    assert t.constant_values == (1 / 3,)
    assert len(t.state) == 2 and t.calls == {"value": 0, "grad": 1, "hess": 0}


def test_auto_takes_the_compiled_loop_where_its_estimate_is_the_smallest(monkeypatch):
    from flowsim import backends
    monkeypatch.setattr(backends, "_accelerator", lambda: False)
    assert backends.choose("scheme", 10 ** 6, 10 ** 5, 2) == "numba"   # 2e11 entries
    assert backends.choose("scheme", 1000, 100, 2, compiled=True) == "numpy"
    assert backends.choose("flow", 10 ** 6, None, 2) == "numba"          # 15 s against 70 s
    assert backends.choose("flow", 1000, None, 2) == "numpy"             # start-up dominates
    monkeypatch.setattr(backends, "choose", lambda *a, **k: "numba")
    X0 = np.array([[1.0, 1.0], [0.5, -0.5]])
    r = flowsim.gradient_descent(QUADRATIC, X0, 0.1, 5, backend="auto")
    assert r.label.endswith("[auto: numba]")
    np.testing.assert_allclose(r.xs[:, -1], X0 * (1 - 0.1 * np.diag(A)) ** 5, rtol=1e-14)
    # a scheme that is not a rule refuses it, and runs on numpy
    r = flowsim.proximal_point(QUADRATIC, X0, 0.1, 5, backend="auto")
    assert r.label.endswith("[auto: numpy]")


# -- flows: the per-start explicit engine, compiled ---------------------------------------

def _both(loss, X0, t_end, **kw):
    a = flowsim.gradient_flow(loss, X0, t_end, **kw)
    b = flowsim.gradient_flow(loss, X0, t_end, backend="numba", **kw)
    return a, b


@pytest.mark.parametrize("method", ["RK23", "RK45", "DOP853"])
def test_a_linear_flow_is_the_matrix_exponential_and_the_numpy_engines_steps(method):
    from scipy.linalg import expm
    X0 = np.random.default_rng(4).uniform(-2, 2, (30, 2))
    a, b = _both(QUADRATIC, X0, 2.0, method=method, rtol=1e-10, atol=1e-12)
    exact = np.stack([X0 @ expm(-t * A).T for t in b.ts], axis=1)
    np.testing.assert_allclose(b.xs, exact, rtol=1e-7, atol=1e-9)
    # the same formulas: the same steps, counts and messages as the numpy engine
    np.testing.assert_array_equal(b.extras["steps_taken"], a.extras["steps_taken"])
    assert b.message == a.message and b.ngev == a.ngev
    np.testing.assert_allclose(b.xs, a.xs, rtol=1e-13, atol=1e-15)
    assert b.label.endswith("[numba]")


def test_each_flow_stop_rule_ends_a_start_as_the_numpy_engine_does():
    stiff = flowsim.Loss("(x**2 + 1e6*y**2)/2")
    cases = [
        (QUADRATIC, [[1.0, 1.0], [1e9, 0.0]], 50.0, dict(gtol=1e-3)),     # converged; held
        (flowsim.Loss("-x**4/4 + y**2"), [[1.0, 0.5]], 5.0, dict(max_norm=1e300)),  # blow-up
        (flowsim.Loss("-(x**2 + y**2)"), [[1.0, 1.0]], 50.0, {}),         # past max_norm
        (QUADRATIC, [[1.0, 1.0]], 50.0, dict(max_steps=20)),              # budget spent
        (stiff, [[1.0, 1.0]], 1e3, dict(rtol=1e-6)),                      # stiff for RK45
    ]
    seen = []
    for loss, X0, t_end, kw in cases:
        a, b = _both(loss, np.array(X0), t_end, method="RK45", **kw)
        assert b.status == a.status and b.message == a.message, (a.message, b.message)
        np.testing.assert_allclose(b.t_stop, a.t_stop, rtol=1e-9)
        np.testing.assert_allclose(b.xs, a.xs, rtol=1e-9)
        seen += list(b.message)
    for words in ("<= gtol", "not run", "blows up in finite time", "exceeded max_norm",
                  "max_steps", "stiff"):
        assert any(words in m for m in seen), words


def test_a_nonlinear_flow_agrees_within_its_tolerance_and_one_start_is_a_batch_of_one():
    X0 = np.random.default_rng(5).uniform(-2, 2, (200, 2))
    a, b = _both(ROSENBROCK, X0, 1.0, method="RK45", rtol=1e-6, atol=1e-9, dense_output=True)
    assert b.status == a.status
    np.testing.assert_allclose(b.xs, a.xs, atol=2e-5)     # steps may differ by rounding
    np.testing.assert_allclose(b.dense(0.505), a.dense(0.505), atol=2e-5)
    one = flowsim.gradient_flow(ROSENBROCK, X0[0], 1.0, method="RK45", rtol=1e-6, atol=1e-9,
                                backend="numba")
    np.testing.assert_array_equal(one.xs, b.xs[0])


def test_what_the_compiled_engine_does_not_run_is_refused():
    with pytest.raises(Refused, match="the explicit pairs"):
        flowsim.gradient_flow(QUADRATIC, [[1.0, 1.0]], 1.0, method="BDF", backend="numba")
    with pytest.raises(Refused, match="kinks"):
        flowsim.gradient_flow("abs(x) + y**2", [[1.0, 1.0]], 1.0, method="RK45",
                              backend="numba")
    with pytest.raises(Refused, match="linear system"):   # (a field with a solve)
        flowsim.newton_flow(QUADRATIC, [[1.0, 1.0]], 1.0, backend="numba")


def test_a_researchers_own_field_with_a_guard_runs_compiled_as_on_numpy():
    from flowsim.flows.field import FieldFlow
    from flowsim.rules import VectorField

    def field(x, ops, options):   # a gradient flow with a rotation: a spiral in
        turn = ops.xp.stack([-x[..., 1], x[..., 0]], axis=-1)
        return -ops.grad(x) + options["c"] * turn

    def guard(x, ops, options):
        return x[..., 1] > options["wall"]

    flow = FieldFlow("spiral", "spiral flow",
                     VectorField(field, options={"c": 1.0, "wall": 0.1}, guard=guard))
    X0 = np.array([[1.0, 0.0], [0.1, 0.0], [0.0, 1.0], [-0.5, 0.1]])
    kw = dict(method="RK45", rtol=1e-9, atol=1e-12, gtol=1e-4)
    a = flow(QUADRATIC, X0, 20.0, **kw)
    b = flow(QUADRATIC, X0, 20.0, backend="numba", **kw)
    assert b.status == a.status and b.message == a.message
    assert b.status[:3] == ("failed", "converged", "failed")   # the guard, later and at once
    # the field's printed formula rounds apart from numpy's arithmetic: the same steps, to
    # within the steps' own rounding
    np.testing.assert_allclose(b.xs, a.xs, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b.t_stop, a.t_stop, rtol=1e-8)
    np.testing.assert_array_equal(b.extras["steps_taken"], a.extras["steps_taken"])
    assert (b.nfev, b.ngev, b.nhev) == (a.nfev, a.ngev, a.nhev)


def test_generated_modules_are_kept_in_the_cache_folder_and_checked_before_import(
        tmp_path, monkeypatch):
    from flowsim.compiled import store
    monkeypatch.setenv("FLOWSIM_NUMBA_CACHE", str(tmp_path))
    text = "VALUE = 41 + 1\n# test_generated_modules_are_kept (%s)\n" % tmp_path
    module = store.module_of(text)
    assert module.VALUE == 42 and module.__file__.startswith(str(tmp_path))
    path = module.__file__
    with open(path, "w") as handle:   # a file changed behind flowsim's back is written again
        handle.write("VALUE = 0\n")
    import sys
    del sys.modules[module.__name__]
    assert store.module_of(text).VALUE == 42 and open(path).read() == text
    monkeypatch.setenv("FLOWSIM_NUMBA_CACHE", "off")   # this process's temporary folder
    assert not store.cache_folder().startswith(str(tmp_path))


def test_a_second_process_loads_the_compiled_step_from_numbas_cache(tmp_path):
    import subprocess
    import sys
    code = ("import numpy as np, flowsim as fs\n"
            "L = fs.Loss('(x**2 + 3*y**2)/2 + x*y/7')\n"
            "r = fs.heun(L, np.ones((3, 2)), 0.1, 5, backend='numba')\n"
            "step, = L.memo('compiled_steps', dict).values()\n"
            "print(r.xs[0, -1, 0], sum(step.loop.stats.cache_hits.values()))\n")
    env = dict(__import__("os").environ, FLOWSIM_NUMBA_CACHE=str(tmp_path))
    first, second = (subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                    capture_output=True, text=True).stdout for _ in range(2))
    assert first.split()[0] == second.split()[0]
    assert (first.split()[1], second.split()[1]) == ("0", "1")   # compiled, then loaded
    cached = [p.name for p in (tmp_path / "__pycache__").iterdir()]
    assert any(name.endswith(".nbi") and ".loop-" in name for name in cached)


def test_a_nan_gradient_stops_a_start_as_numpys_sign_and_maximum_do():
    """Python's copysign and max would turn a NaN into a number and carry the start on."""
    loss = flowsim.Loss("sqrt(x) + y**2")   # grad L is NaN where x < 0
    X0 = np.array([[-1.0, 1.0], [1.0, 1.0]])

    def clipped(k, eta, x, state, ops, options):
        g = ops.grad(x)
        return x - eta * ops.xp.maximum(ops.xp.minimum(g, 1.0), -1.0), g, state, False
    def normalised(k, eta, x, state, ops, options):   # xp.max: a reduction, not a pair
        g = ops.grad(x)   # (only the largest |g_i| moves x: a NaN there must stay NaN)
        top = ops.xp.max(ops.xp.abs(g), axis=-1, keepdims=True)
        return x - eta * ops.xp.minimum(top, 1.0) * ops.xp.ones_like(x), g, state, False
    for run in (lambda **kw: flowsim.sign_descent(loss, X0, 0.1, 5, **kw),
                lambda **kw: RuleScheme("clip", "clip", UpdateRule(clipped))(loss, X0, 0.1, 5,
                                                                                **kw),
                lambda **kw: RuleScheme("norm", "norm", UpdateRule(normalised))(
                    loss, X0, 0.1, 5, **kw)):
        a, b = run(), run(backend="numba")
        assert b.message == a.message and np.array_equal(b.xs, a.xs)
        assert np.array_equal(b.xs[0, -1], X0[0])   # held at its start


def test_method_auto_hands_the_stiff_starts_to_the_numpy_rosenbrock_pair():
    stiff = flowsim.Loss("(x**2 + 1e5*y**2)/2")
    X0 = np.array([[1.0, 1.0], [2.0, 0.0], [0.5, -1.0]])
    a, b = _both(stiff, X0, 100.0, method="auto", rtol=1e-6, atol=1e-9)
    assert b.status == a.status and b.message == a.message
    np.testing.assert_array_equal(b.extras["steps_taken"], a.extras["steps_taken"])
    np.testing.assert_allclose(b.xs, a.xs, rtol=1e-9, atol=1e-12)
    assert "RODAS4" in b.label and b.label.endswith("[numba]")
    assert b.extras["steps_taken"][0, -1] < 2_000 + 1_000   # handed over, not 1e7 small steps


def test_the_nesterov_ode_compiled_is_its_bessel_solution_and_the_numpy_engines_steps():
    """x'' + (3/t) x' + lambda x = 0 from rest: x(t) = x0 2 J1(sqrt(lambda) t)/(sqrt(lambda) t)
    (Su, Boyd and Candes), per eigen-direction of the quadratic."""
    from scipy.special import j1
    X0 = np.array([[1.0, -2.0], [0.5, 0.3]])
    a = flowsim.nesterov_flow(QUADRATIC, X0, 10.0, rtol=1e-10, atol=1e-12)
    b = flowsim.nesterov_flow(QUADRATIC, X0, 10.0, rtol=1e-10, atol=1e-12, backend="numba")
    w = np.sqrt(np.diag(A))
    t = b.ts[1:, None]
    exact = X0[:, None, :] * (2 * j1(w * t) / (w * t))[None]
    np.testing.assert_allclose(b.xs[:, 1:], exact, atol=1e-7)
    assert b.status == a.status and b.message == a.message
    np.testing.assert_array_equal(b.extras["steps_taken"], a.extras["steps_taken"])
    np.testing.assert_allclose(b.xs, a.xs, rtol=1e-12, atol=1e-14)
    assert b.label.endswith("[numba]") and b.ngev == a.ngev


def test_the_heavy_ball_ode_compiled_agrees_with_numpy_and_refuses_implicit_methods():
    X0 = np.random.default_rng(6).uniform(-1.5, 1.5, (50, 2))
    kw = dict(friction=1.5, method="RK45", rtol=1e-8, atol=1e-10, max_norm=50.0)
    a = flowsim.heavy_ball_flow(ROSENBROCK, X0, 3.0, **kw)
    b = flowsim.heavy_ball_flow(ROSENBROCK, X0, 3.0, backend="numba", **kw)
    assert b.status == a.status
    np.testing.assert_allclose(b.xs, a.xs, atol=1e-6)
    np.testing.assert_allclose(b.extras["energy"], a.extras["energy"], rtol=1e-5, atol=1e-6)
    with pytest.raises(Refused, match="explicit pairs"):
        flowsim.heavy_ball_flow(QUADRATIC, X0, 1.0, method="BDF", backend="numba")


def test_text_a_rule_returns_is_refused_and_never_parsed(tmp_path):
    """What a researcher's step returns reaches no parser: text is refused where the trace
    lifts it (the payload would write a file if sympy's sympify ever evaluated it)."""
    canary = tmp_path / "fired"
    payload = f"__import__('pathlib').Path({str(canary)!r}).touch()"

    def text(k, eta, x, state, ops, options):
        return np.array([[payload, payload]], dtype=object), None, state, payload
    with pytest.raises(Refused, match="computes with a str"):
        RuleScheme("text", "text", UpdateRule(text))(QUADRATIC, [[1.0, 1.0]], 0.1, 2,
                                                     backend="numba")
    assert not canary.exists()
