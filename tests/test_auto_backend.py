"""backend="auto": the batch's backend chosen once, by the cost model of
flowsim.backends.choose, with the choice in the label and a refused JAX call run on numpy."""
import numpy as np
import pytest

import flowsim as fs
from flowsim import backends

pytest.importorskip("jax")
pytest.importorskip("diffrax")

ROSEN = fs.losses.rosenbrock(2)
STARTS = np.random.default_rng(3).uniform(-2, 2, size=(6, 2))


def test_choose_follows_the_cost_model(monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda: True)
    monkeypatch.setattr(backends, "numba_installed", lambda: False)   # (tests/test_compiled)
    assert backends.choose("scheme", 1, 10 ** 9, 2) == "numpy"           # one start
    assert backends.choose("scheme", 100, 100, 2) == "numpy"             # start-up dominates
    assert backends.choose("scheme", 100_000, 10_000, 2) == "jax"        # 2e9 entries
    # the model's own crossing: numpy's estimate exceeds JAX's by the start-up
    m, n = 10_000, 2
    per_step = backends.NUMPY_STEP_S + m * n * (backends.NUMPY_ENTRY_S - backends.JAX_ENTRY_S)
    startup = max(backends.JAX_STARTUP_S, backends.JAX_STARTUP_IMPORTED_S)
    steps = int(np.ceil(startup / per_step)) + 1
    assert backends.choose("scheme", m, steps, n) == "jax"
    monkeypatch.setattr(backends, "_accelerator", lambda: False)
    assert backends.choose("flow", 10 ** 6, None, 2) == "numpy"          # CPU: numpy engines
    # a loss that already ran on JAX here: its small batches of flows go to JAX on a CPU
    assert backends.choose("flow", 1000, None, 2, warm=True) == "jax"
    assert backends.choose("flow", 10_000, None, 2, warm=True) == "numpy"
    assert backends.choose("scheme", 1000, 5000, 2, warm=True) == "jax"       # 0.23 s vs 0.06 s
    assert backends.choose("scheme", 1000, 5000, 2, warm=False) == "numpy"    # + 0.4 s start-up
    monkeypatch.setattr(backends, "_accelerator", lambda: True)
    assert backends.choose("flow", backends.ACCELERATOR_FLOW_STARTS, None, 2) == "jax"
    assert backends.choose("flow", 100, None, 2) == "numpy"
    # split over worker processes: numpy's time divides, each worker starts JAX cold
    assert backends.choose("scheme", 100_000, 10_000, 2, processes=1) == "jax"
    assert backends.choose("scheme", 100_000, 10_000, 2, processes=4) == "numpy"
    assert backends.choose("flow", 1000, None, 2, warm=True, processes=2) == "numpy"
    monkeypatch.setattr(backends, "installed", lambda: False)
    assert backends.choose("scheme", 100_000, 10_000, 2) == "numpy"      # no JAX: numpy


def test_auto_on_numpy_is_the_numpy_run_and_says_so():
    auto = fs.gradient_descent(ROSEN, STARTS, 1e-3, 50, backend="auto")
    plain = fs.gradient_descent(ROSEN, STARTS, 1e-3, 50)
    assert np.array_equal(auto.xs, plain.xs)
    assert auto.label == plain.label + " [auto: numpy]"
    flow = fs.gradient_flow(ROSEN, STARTS, 0.5, method="RK45", backend="auto")
    assert flow.label.endswith("[auto: numpy]")
    one = fs.heun(ROSEN, STARTS[0], 1e-3, 5, backend="auto")
    assert one.label == "Heun [auto: numpy]" and one.xs.shape == (6, 2)


def test_auto_on_jax_is_the_jax_run(monkeypatch):
    monkeypatch.setattr(backends, "choose", lambda *args: "jax")
    auto = fs.gradient_descent(ROSEN, STARTS, 1e-3, 50, backend="auto")
    jax = fs.gradient_descent(ROSEN, STARTS, 1e-3, 50, backend="jax")
    assert np.array_equal(auto.xs, jax.xs) and auto.status == jax.status
    assert auto.label.endswith("m=6 [auto: jax]") and "[jax]" not in auto.label
    chunked = fs.gradient_descent(ROSEN, STARTS, 1e-3, 50, backend="auto", workers=1,
                                  chunk_size=2)
    assert np.array_equal(chunked.xs, jax.xs) and chunked.label == auto.label


def test_a_call_the_jax_path_refuses_runs_on_numpy(monkeypatch):
    """Kinks (and options JAX lacks) are refused before any work; auto then takes numpy."""
    monkeypatch.setattr(backends, "choose", lambda *args: "jax")
    kinked = fs.Loss("abs(x) + y**2")
    auto = fs.gradient_flow(kinked, STARTS, 0.5, backend="auto")
    plain = fs.gradient_flow(kinked, STARTS, 0.5)
    assert np.array_equal(auto.xs, plain.xs) and auto.label.endswith("[auto: numpy]")
    auto = fs.proximal_point(kinked, STARTS, 0.1, 5, backend="auto")
    assert np.array_equal(auto.xs, fs.proximal_point(kinked, STARTS, 0.1, 5).xs)
    with pytest.raises(backends.Refused, match="kinks"):
        fs.gradient_flow(kinked, STARTS, 0.5, backend="jax")


def test_an_unknown_backend_is_refused_by_name():
    with pytest.raises(ValueError, match="'numpy', 'jax', 'numba' or 'auto'"):
        fs.gradient_descent(ROSEN, STARTS, 1e-3, 5, backend="gpu")


def test_a_loss_that_ran_on_jax_is_warm(monkeypatch):
    """The warm signal is the loss's own: after one JAX program on it, a small batch of
    flows goes to JAX on a CPU; a fresh loss of the same formula stays on numpy."""
    monkeypatch.setattr(backends, "_accelerator", lambda: False)
    warm, cold = fs.Loss("x**2 + 3*y**2"), fs.Loss("x**2 + 3*y**2")
    fs.gradient_flow(warm, STARTS, 0.5, method="RK45", backend="jax")
    a = fs.gradient_flow(warm, STARTS, 0.5, method="RK45", backend="auto")
    b = fs.gradient_flow(cold, STARTS, 0.5, method="RK45", backend="auto")
    assert a.label.endswith("[auto: jax]") and b.label.endswith("[auto: numpy]")
    np.testing.assert_allclose(a.xs, b.xs, atol=1e-6)   # both within the flow's tolerance
