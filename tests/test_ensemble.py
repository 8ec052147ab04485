"""Ensembles: every flow and scheme on m starts, each start on its own steps, every core."""

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import flowsim as fs
from flowsim.ensemble.workers import process_pool
from flowsim import Status, losses, methods

ROSEN = "(1 - x)**2 + 100*(y - x**2)**2"
STARTS = np.array([[-1.2, 1.0], [0.5, 0.5], [1.001, 1.0], [-0.5, 2.0], [1.5, 1.5]])


@pytest.mark.parametrize("name", [m.name for m in methods.flows() if "batch" in m.accepts])
def test_every_flow_takes_a_batch_equal_to_single_runs_within_tolerance(name):
    record = methods.get(name)
    loss = fs.Loss("x**2/2 + y**4/4 + x*y/4")
    X = np.array([[1.0, 0.8], [-0.5, 1.2], [0.3, -0.9]])
    t = np.linspace(0.0, 2.0, 9)
    kwargs = dict(method="RK45", rtol=1e-9, atol=1e-12, t_eval=t)
    batch = record.function(loss, X, 2.0, **kwargs)
    assert isinstance(batch, fs.BatchTrajectory) and batch.method == name
    assert batch.xs.shape == (3, t.size, 2) and len(batch.status) == 3
    for i in range(3):
        tight = record.function(loss, X[i], 2.0, method="DOP853", rtol=1e-13, atol=1e-15,
                                t_eval=t)
        single = record.function(loss, X[i], 2.0, **kwargs)
        own = np.abs(single.xs - tight.xs).max()
        # the batch's error is of the size of scipy's own at the same tolerance
        assert np.abs(batch.xs[i] - tight.xs).max() <= 10 * own + 1e-9, (i, own)
        assert batch.status[i] is single.status


def test_each_start_takes_its_own_steps_and_finished_starts_cost_nothing():
    # on |x|^2 with gtol 1e-6 the start at 1e-5 converges at t = 1.5, the one at 1e3 at 10.7
    easy, hard = [1e-5, 0.0], [1e3, 0.0]
    opts = dict(method="RK45", rtol=1e-8, atol=1e-10, gtol=1e-6, t_eval=[0.0, 20.0])
    alone = [fs.gradient_flow("x**2 + y**2", x, 20.0, **opts).ngev for x in (easy, hard)]
    both = fs.gradient_flow("x**2 + y**2", [easy, hard], 20.0, **opts)
    assert both.status == (Status.CONVERGED, Status.CONVERGED)
    assert alone[0] < alone[1] / 5
    # a shared step would cost 2 x the hard start; per-start steps cost about the sum
    assert both.ngev < 1.3 * sum(alone)
    assert both.ngev < 0.7 * 2 * alone[1]


def test_a_batch_reports_each_start_its_own_way():
    X = np.array([[0.5, 1.0], [5.0, 1.0], [2.0, 0.0]])
    batch = fs.gradient_flow("log(x) + y**2", X, 10.0, method="RK45", gtol=1e-6)
    # x' = -1/x from 0.5 hits the singularity at t = 0.125; y -> 0 makes |grad| -> 1/x, never
    # below gtol before t = 10 for x0 = 5 (x(10) = sqrt(5)); x0 = 2 meets 0 at t = 2
    assert batch.status[0] is Status.FAILED and batch.message[0].startswith("stopped at t = 0.125")
    assert batch.status[1] is Status.REACHED_END
    assert batch.status[2] is Status.FAILED and batch.message[2].startswith("stopped at t = 2")
    np.testing.assert_allclose(batch.xs[1, -1], [np.sqrt(5.0), 0.0], atol=1e-5)
    conv = fs.gradient_flow("x**2 + y**2", [[1.0, 1.0], [1e-9, 0.0]], 50.0, method="RK45",
                           gtol=1e-6)
    assert conv.status == (Status.CONVERGED, Status.CONVERGED)
    assert all("gtol" in text for text in conv.message)


def test_the_stiff_engine_matches_the_matrix_exponential_in_few_steps():
    A = np.diag([1.0, 1e5])
    q = losses.quadratic(A)
    X = np.array([[1.0, 1.0], [-2.0, 0.5], [0.3, -1.0]])
    t = np.linspace(0.0, 5.0, 6)
    stiff = fs.gradient_flow(q, X, 5.0, method="BDF", rtol=1e-6, atol=1e-9, t_eval=t)
    exact = np.stack([np.stack([scipy.linalg.expm(-s * A) @ x for s in t]) for x in X])
    assert np.abs(stiff.xs - exact).max() < 1e-4
    assert stiff.ngev / 3 < 2_000  # an explicit method needs lambda_max t / 3.3 = 150,000
    auto = fs.gradient_flow(q, X, 5.0, method="auto", rtol=1e-6, atol=1e-9, t_eval=t)
    assert all(s is Status.REACHED_END for s in auto.status)
    assert np.abs(auto.xs - exact).max() < 1e-4
    explicit = fs.gradient_flow(q, X[:1], 500.0, method="RK45", rtol=1e-6, atol=1e-9)
    assert explicit.status[0] is Status.FAILED and "stiff" in explicit.message[0]


def test_the_stiff_engine_is_as_accurate_as_scipy_bdf_at_the_same_tolerance():
    loss = losses.rosenbrock(2)
    x0, t = np.array([-1.2, 1.0]), np.linspace(0.0, 3.0, 7)
    truth = scipy.integrate.solve_ivp(lambda s, x: -loss.grad(x), (0, 3), x0, method="DOP853",
                                      rtol=1e-13, atol=1e-15, t_eval=t).y.T
    for rtol in (1e-5, 1e-7):
        ours = fs.gradient_flow(loss, x0[None], 3.0, method="BDF", rtol=rtol, atol=rtol * 1e-3,
                                t_eval=t).xs[0]
        bdf = scipy.integrate.solve_ivp(lambda s, x: -loss.grad(x), (0, 3), x0, method="BDF",
                                        jac=lambda s, x: -loss.hess(x), rtol=rtol,
                                        atol=rtol * 1e-3, t_eval=t).y.T
        assert np.abs(ours - truth).max() < 30 * max(np.abs(bdf - truth).max(), rtol)


def test_workers_and_chunks_give_the_same_numbers():
    X = np.random.default_rng(4).uniform(-2, 2, (40, 2))
    one = fs.gradient_flow(ROSEN, X, 1.0, method="RK45", rtol=1e-6, atol=1e-9)
    # a user's own executor (flowsim's pool helper: a fork server once JAX is imported, as
    # an earlier test may have done, where a plain fork could deadlock)
    with process_pool(2) as pool:
        split = fs.gradient_flow(ROSEN, X, 1.0, method="RK45", rtol=1e-6, atol=1e-9,
                                 executor=pool, chunk_size=7)
        gd = fs.gradient_descent(ROSEN, X, 1e-3, 50, executor=pool, chunk_size=9)
    np.testing.assert_array_equal(split.xs, one.xs)
    assert split.status == one.status and split.ngev == one.ngev
    np.testing.assert_array_equal(gd.xs, fs.gradient_descent(ROSEN, X, 1e-3, 50).xs)
    chunked = fs.heavy_ball(ROSEN, X, 1e-3, 50, workers=1, chunk_size=6)
    np.testing.assert_array_equal(chunked.xs, fs.heavy_ball(ROSEN, X, 1e-3, 50).xs)
    assert chunked.label.endswith("m=40")
    with pytest.raises(ValueError, match="workers"):
        fs.gradient_descent(ROSEN, X, 1e-3, 5, workers=0)
    with pytest.raises(TypeError, match="executor"):
        fs.gradient_descent(ROSEN, X, 1e-3, 5, executor="pool")


@pytest.mark.parametrize("method", ["RK45", "auto", "BDF"])
def test_the_engines_row_blocks_give_the_numbers_of_one_block(monkeypatch, method):
    from flowsim import _numeric
    from flowsim.ensemble import run
    # starts that converge (gtol), start beyond max_norm (held there on every method), reach
    # the end, and (auto) turn stiff in the valley and are handed to the Rosenbrock pair:
    # every kind of ending, across the blocks' edges
    rng = np.random.default_rng(7)
    X = np.concatenate([rng.uniform(-2, 2, (50, 2)), [[1.0, 1.0 + 1e-9]] * 3,
                        [[2.0, 2.0], [-2.0, 2.0]], rng.uniform(-2, 2, (40, 2))])
    kw = dict(method=method, rtol=1e-6, atol=1e-9, gtol=1e-4, max_norm=2.75)
    handed = []
    engine = run.rosenbrock

    def spy(fun, jac, Y, *args, **kwargs):
        handed.append(len(Y))
        return engine(fun, jac, Y, *args, **kwargs)
    monkeypatch.setattr(run, "rosenbrock", spy)
    whole = fs.gradient_flow(ROSEN, X, 20.0, **kw)
    assert len(_numeric.row_blocks(len(X), 2)) == 1 and len(handed) == (method != "RK45")
    monkeypatch.setattr(_numeric, "BLOCK_ROWS_MIN", 1)
    monkeypatch.setattr(_numeric, "BLOCK_ENTRIES", 2 * 17)   # blocks of 17 starts
    assert [b.stop - b.start for b in _numeric.row_blocks(len(X), 2)] == [17] * 5 + [10]
    handed.clear()
    blocked = fs.gradient_flow(ROSEN, X, 20.0, **kw)
    kinds = {s.value for s in whole.status}
    assert kinds == {"converged", "reached_end", "diverged"}
    assert all("so it was not run" in whole.message[i] for i in (53, 54))
    if method == "auto":   # most starts turn stiff, in every block
        assert len(handed) == 6 and sum(handed) > len(X) / 2
    np.testing.assert_array_equal(blocked.xs, whole.xs)
    np.testing.assert_array_equal(blocked.t_stop, whole.t_stop)
    np.testing.assert_array_equal(blocked.extras["steps_taken"], whole.extras["steps_taken"])
    np.testing.assert_array_equal(blocked.dense(0.37), whole.dense(0.37))
    assert blocked.status == whole.status and blocked.message == whole.message
    assert blocked.ngev == whole.ngev


@pytest.mark.parametrize("record", [{"record": "final"}, {"record_every": 7}, {}])
def test_chunks_whose_starts_stop_at_different_steps_join_as_one_run(record):
    # each chunk ends at its own step (36, 67, 47, 53 under gtol): a chunk's own end lies
    # between two kept iterates of the batch, where the run in one process holds its starts
    X = np.array([[1.0, 1.0], [1e3, 1e3], [3.0, 1.0], [-40.0, 2.0]])
    one = fs.gradient_descent("x**2 + y**2", X, 0.1, 100, gtol=1e-3, **record)
    ends = one.extras["steps_taken"][:, -1]
    assert len(set(ends.tolist())) == 4
    # GD on |x|^2: x_k = 0.8^k x_0, and a start holds x_(its end) after it
    ks = np.round(one.ts / 0.1).astype(int)
    exact = 0.8 ** np.minimum(ks[None, :], ends[:, None])[..., None] * X[:, None, :]
    np.testing.assert_allclose(one.xs, exact, rtol=1e-12)
    for order in (slice(None), slice(None, None, -1)):
        split = fs.gradient_descent("x**2 + y**2", X[order], 0.1, 100, gtol=1e-3, workers=1,
                                    chunk_size=1, **record)
        np.testing.assert_array_equal(split.ts, one.ts)
        np.testing.assert_array_equal(split.xs, one.xs[order])
        np.testing.assert_array_equal(split.values, one.values[order])
        for name in one.extras:
            np.testing.assert_array_equal(split.extras[name], one.extras[name][order])
        assert split.message == one.message[order] and split.status == one.status[order]


def test_a_run_keeps_only_what_is_asked():
    X = np.random.default_rng(5).uniform(-1, 1, (20, 2))
    full = fs.gradient_descent("x**2 + 3*y**2", X, 0.1, 30)
    final = fs.gradient_descent("x**2 + 3*y**2", X, 0.1, 30, record="final")
    assert final.xs.shape == (20, 2, 2)
    np.testing.assert_array_equal(final.xs[:, -1], full.xs[:, -1])
    np.testing.assert_allclose(final.ts, [0.0, 3.0])
    np.testing.assert_array_equal(final.values[:, -1], full.values[:, -1])
    every = fs.heun("x**2 + 3*y**2", X, 0.1, 30, record_every=7)
    np.testing.assert_allclose(every.ts, 0.1 * np.array([0, 7, 14, 21, 28, 30]))
    np.testing.assert_array_equal(every.xs, fs.heun("x**2 + 3*y**2", X, 0.1, 30).xs[:, [0, 7, 14, 21, 28, 30]])
    states = fs.gradient_descent("x**2 + 3*y**2", X, 0.1, 30, record=("x",))
    assert states.values is None and states.grad_norms is None
    assert "20 reached_end" in states.summary()
    with pytest.raises(ValueError, match="record: unknown series"):
        fs.gradient_descent("x**2", [[1.0]], 0.1, 3, record=("speed",))


@pytest.mark.parametrize("name", [m.name for m in methods.schemes()
                                  if "samples" not in m.accepts and "prox" not in m.accepts])
def test_starts_that_stop_at_different_steps_equal_their_single_runs(name):
    # eta = 0.3 on x^2 + 10 y^2: the y direction grows, each start leaves max_norm at its own
    # step; the converging start goes on; every row equals the start's own run, held after
    # its stop
    record = methods.get(name)
    X = np.array([[1.0, 1.0], [0.5, -0.2], [1e-3, 0.0], [0.2, 3.0]])
    eta = 0.3 if name != "newton" else 1.0
    # proximal point solves each step to tol = 1e-12 (batched Newton against one start's)
    rtol = 1e-11 if name == "proximal_point" else 1e-14
    batch = record.function("x**2 + 10*y**2", X, eta, 40, max_norm=1e6)
    for i, x0 in enumerate(X):
        single = record.function("x**2 + 10*y**2", x0, eta, 40, max_norm=1e6)
        k = len(single.ts)
        np.testing.assert_allclose(batch.xs[i, :k], single.xs, rtol=rtol, atol=1e-300)
        np.testing.assert_array_equal(batch.xs[i, k:], np.broadcast_to(single.xs[-1],
                                                                       batch.xs[i, k:].shape))
        assert batch.status[i] is single.status


def test_momentum_batches_are_as_accurate_as_their_single_runs_and_name_their_engine():
    # the default (LSODA) batch runs DOP853, handing stiff starts to RODAS4; it used to run
    # an order-2 Rosenbrock pair alone, 100x less accurate than single runs
    loss = losses.rosenbrock(2)
    X = np.array([[-1.2, 1.0], [0.0, 0.0], [2.0, 2.0], [-1.5, 2.5]])
    t = np.linspace(0.0, 5.0, 11)
    for flow in (fs.heavy_ball_flow, fs.nesterov_flow):
        batch = flow(loss, X, 5.0, t_eval=t)
        assert "batched on DOP853, RODAS4 once stiff" in batch.label
        for i, x0 in enumerate(X):
            exact = flow(loss, x0, 5.0, method="DOP853", rtol=1e-12, atol=1e-14).at(t)
            single = flow(loss, x0, 5.0, t_eval=t).xs
            assert np.abs(batch.xs[i] - exact).max() <= 2 * max(np.abs(single - exact).max(),
                                                                1e-7)


@pytest.mark.parametrize("rtol", [1e-3, 1e-5, 1e-7, 1e-9])
def test_the_stiff_batch_engine_is_of_order_four_against_expm(rtol):
    # a stiff quadratic (eigenvalues about 1 and 1e4): the batch (RODAS4) at rtol must be
    # as close to the closed form expm(-2A) x0 as scipy's single BDF runs at the same rtol
    import scipy.integrate
    import scipy.linalg
    A = np.array([[1.0, 50.0], [50.0, 1e4]])
    X = np.random.default_rng(0).normal(size=(8, 2))
    exact = X @ scipy.linalg.expm(-2 * A).T
    batch = fs.gradient_flow(losses.quadratic(A), X, 2.0, method="BDF", rtol=rtol,
                             atol=rtol * 1e-3, t_eval=[0.0, 2.0])
    assert "RODAS4" in batch.label
    single = [scipy.integrate.solve_ivp(lambda t, x: -A @ x, (0, 2), x, method="BDF",
                                        rtol=rtol, atol=rtol * 1e-3).y[:, -1] for x in X]
    assert np.abs(batch.xs[:, -1] - exact).max() <= np.abs(np.array(single) - exact).max()


def test_batched_dop853_is_dop853():
    # the engine runs scipy's DOP853 tableau and error norm: its error is the single runs'
    from scipy.integrate import solve_ivp
    loss = losses.himmelblau()
    X = np.array([[0.0, 0.0], [-1.0, 3.5], [2.0, -3.0]])
    ref = np.array([solve_ivp(lambda t, x: -loss.grad(x), (0, 3), x, method="DOP853",
                              rtol=1e-13, atol=1e-15).y[:, -1] for x in X])
    for method, tableau in (("DOP853", "DOP853"), ("RK45", "DP5")):
        batch = fs.gradient_flow(loss, X, 3.0, method=method, rtol=1e-8, atol=1e-10,
                                 t_eval=[0.0, 3.0])
        assert f"batched on {tableau}" in batch.label
        single = np.array([solve_ivp(lambda t, x: -loss.grad(x), (0, 3), x, method=method,
                                     rtol=1e-8, atol=1e-10).y[:, -1] for x in X])
        err, err_single = np.abs(batch.xs[:, -1] - ref).max(), np.abs(single - ref).max()
        assert err <= 3 * err_single + 1e-12
