"""Every Loss and result type survives pickle, deepcopy and a real process pool, exactly."""
import copy
import pickle

import numpy as np
import pytest

import flowsim as fs
from flowsim.ensemble.workers import process_pool
from flowsim import Loss, losses


def _same(a, b):
    """Exact equality: arrays bitwise, dataclasses field by field, mappings key by key."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and \
            a.tobytes() == b.tobytes()
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(
            _same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__
            if f != "dense" and a.__dataclass_fields__[f].compare or f in ("extras",))
    if isinstance(a, (dict, type(fs.Trajectory.__dict__))) or hasattr(a, "keys"):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return a == b


def _results():
    him = losses.himmelblau()
    flow = fs.gradient_flow(him, [0.0, 0.0], 0.5)
    gd = fs.gradient_descent(him, [0.0, 0.0], 1e-3, 50)
    batch = fs.gradient_flow(him, [[0.0, 0.0], [1.0, 1.0]], 0.5)
    hb = fs.heavy_ball_flow(him, [0.0, 0.0], 0.5)
    return {
        "flow": flow, "gd": gd, "batch": batch, "heavy_ball_flow": hb,
        "prox": fs.proximal_point(him, [0.0, 0.0], 0.1, 5),
        "comparison": fs.compare(him, [0.0, 0.0], 1e-2, 20),
        "lyapunov": fs.lyapunov(him, flow),
        "classify": fs.classify(him, [3.0, 2.0]),
        "stability": fs.stability(him, [3.0, 2.0], 0.01),
        "sharpness": fs.sharpness(him, gd),
        "saddle": fs.saddle_escape(losses.saddle(), [0.0, 0.0]),
        "lipschitz": fs.lipschitz_estimate(him, (-1, 1), n_samples=50, seed=0),
        "order": fs.convergence_order(him, [0.0, 0.0], "gd", t_end=0.05, levels=3),
        "facts": losses.quadratic(np.diag([1.0, 3.0])).facts,
    }


@pytest.fixture(scope="module")
def results():
    return _results()


def test_results_round_trip_exactly_by_pickle_and_deepcopy(results):
    for name, obj in results.items():
        for twin in (pickle.loads(pickle.dumps(obj)), copy.deepcopy(obj)):
            assert _same(obj, twin), name


def test_dense_solutions_travel(results):
    flow = pickle.loads(pickle.dumps(results["flow"]))
    np.testing.assert_array_equal(flow.at(0.25), results["flow"].at(0.25))
    batch = pickle.loads(pickle.dumps(results["batch"]))
    np.testing.assert_array_equal(batch.dense(0.25), results["batch"].dense(0.25))
    np.testing.assert_array_equal(batch.trajectory(1).at(0.2), results["batch"].dense(0.2)[1])
    hb = pickle.loads(pickle.dumps(results["heavy_ball_flow"]))
    np.testing.assert_array_equal(hb.at(0.3), results["heavy_ball_flow"].at(0.3))


def test_facts_flow_solution_travels(results):
    facts = pickle.loads(pickle.dumps(results["facts"]))
    np.testing.assert_array_equal(facts.flow_solution(0.7, [1.0, 1.0]),
                                  results["facts"].flow_solution(0.7, [1.0, 1.0]))


def test_loss_round_trip_keeps_expression_params_data_counts():
    loss = Loss("a*(x - b)**2 + y**2", params={"a": 2.0, "b": 1.0})
    loss.grad([[0.0, 0.0], [1.0, 2.0]])
    twin = pickle.loads(pickle.dumps(loss))
    assert twin.expr == loss.expr and dict(twin.params) == dict(loss.params)
    assert twin.counts == loss.counts and twin.variables == loss.variables
    np.testing.assert_array_equal(twin.hess([0.3, 0.4]), loss.hess([0.3, 0.4]))
    mse = Loss.from_samples("(a*x + b - y)**2", {"x": [1, 2, 3], "y": [2, 4, 5]}, ("a", "b"))
    twin = copy.deepcopy(mse)
    assert twin.n_samples == 3 and twin.value([0.5, 0.1]) == mse.value([0.5, 0.1])
    lasso = losses.lasso(np.eye(3), np.ones(3), 0.1)
    twin = pickle.loads(pickle.dumps(lasso))
    assert twin.value(np.ones(3)) == lasso.value(np.ones(3))


def test_unpickled_loss_passes_the_gate_again():
    # a pickle names the rebuilding function and its arguments; a forged expression in them
    # meets the same gate as any input
    import sympy as sp
    from flowsim.loss._construction import rebuild_loss
    x = sp.Symbol("x", real=True)
    func, state = Loss("x**2").__reduce__()
    assert func is rebuild_loss and func(*state).value([2.0]) == 4.0
    forged = (sp.Function("f")(x),) + tuple(state[1:])
    with pytest.raises(ValueError, match="undefined function"):
        func(*forged)


def _work(args):
    loss, x0 = args
    traj = fs.gradient_descent(loss, x0, 1e-2, 30)
    return loss, traj


def test_through_a_real_process_pool():
    loss = losses.rosenbrock(2)
    sent = loss.counts
    starts = [[-1.0, 1.0], [0.0, 0.0], [1.5, 1.5]]
    with process_pool(2) as pool:   # a fork server once JAX runs threads here
        remote = list(pool.map(_work, [(loss, x0) for x0 in starts]))
    for (back, traj), x0 in zip(remote, starts):
        here = fs.gradient_descent(loss, x0, 1e-2, 30)
        assert _same(traj, here)
        assert back.counts.grad == sent.grad + traj.ngev and back.expr == loss.expr
