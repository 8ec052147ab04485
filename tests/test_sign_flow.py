"""The sign-gradient flow x' = -sign(grad L) against its piecewise-linear closed forms, and
sign descent against it."""
import numpy as np
import pytest

import flowsim as fs


def _coupled_quadratic_path(b, x0, ts):
    """L = (x^2 + y^2)/2 + b x y, |b| < 1: straight at velocity -sign(g) until one g_j hits 0,
    then sliding along g_j = 0 (v_j = -b v_k) until g_k = 0 too, at the minimizer 0."""
    H = np.array([[1.0, b], [b, 1.0]])
    x0 = np.asarray(x0, float)
    g0 = H @ x0
    v = -np.sign(g0)
    rate = H @ v
    with np.errstate(divide="ignore"):
        hits = np.where(rate * g0 < 0, -g0 / rate, np.inf)
    j = int(np.argmin(hits))
    k = 1 - j
    t1 = hits[j]
    x1 = x0 + t1 * v
    w = np.empty(2)
    w[k] = -np.sign((H @ x1)[k])
    w[j] = -b * w[k]
    t2 = t1 + abs((H @ x1)[k]) / (1 - b * b)
    out = []
    for t in ts:
        if t <= t1:
            out.append(x0 + t * v)
        elif t <= t2:
            out.append(x1 + (t - t1) * w)
        else:
            out.append(np.zeros(2))
    return np.array(out), t1, t2


@pytest.mark.parametrize("b, x0", [(0.5, [1.0, 2.0]), (-0.3, [2.0, -0.5]), (0.8, [-1.5, 0.2]),
                                   (-0.9, [0.3, 3.0])])
def test_coupled_quadratic_crosses_then_slides_to_the_minimizer(b, x0):
    ts = np.linspace(0.0, 5.0, 401)
    exact, t1, t2 = _coupled_quadratic_path(b, x0, ts)
    assert 0 < t1 < t2 < 5.0
    tr = fs.sign_flow(f"(x**2 + y**2)/2 + {b}*x*y", x0, 5.0)
    assert tr.status.value == "reached_end"
    np.testing.assert_allclose(tr.at(ts), exact, atol=1e-8)


def test_separable_loss_each_coordinate_runs_at_unit_speed_then_stops():
    x0 = np.array([0.7, -1.3, 2.1])
    tr = fs.sign_flow("x**4/4 + 3*cosh(y) + z**2/2 + z**6", x0, 3.0, t_eval=np.linspace(0, 3, 61))
    exact = x0 - np.sign(x0) * np.minimum(tr.ts[:, None], np.abs(x0))
    np.testing.assert_allclose(tr.xs, exact, atol=1e-8)


def test_loss_falls_at_the_l1_norm_of_the_gradient_before_any_sliding():
    loss = fs.losses.rosenbrock(2)
    tr = fs.sign_flow(loss, [-1.2, 1.0], 0.05, t_eval=np.linspace(0, 0.05, 11))
    # no switch happens this early: x(t) = x0 - t sign(g0), and dL/dt = -|g|_1
    g0 = loss.grad(np.array([-1.2, 1.0]))
    np.testing.assert_allclose(tr.xs, np.array([-1.2, 1.0]) - tr.ts[:, None] * np.sign(g0),
                               atol=1e-10)
    rates = np.gradient(tr.values, tr.ts)
    l1 = np.abs(loss.grad(tr.xs)).sum(axis=1)
    np.testing.assert_allclose(rates[1:-1], -l1[1:-1], rtol=1e-3)


def test_sign_descent_stays_within_a_few_steps_of_its_flow_on_rosenbrock():
    # the flow slides along dL/dx = 0, crosses, then slides along the valley dL/dy = 0;
    # sign descent chatters across each surface (at eta = 0.004 and above it locks into a
    # 2-cycle near (-1.06, 1.14) instead: both coordinates flip at every step)
    loss = fs.losses.rosenbrock(2)
    flow = fs.sign_flow(loss, [-1.2, 1.0], 2.0, rtol=1e-11, atol=1e-13)
    for eta in (0.002, 0.0005):
        steps = int(round(2.0 / eta))
        gd = fs.sign_descent(loss, [-1.2, 1.0], eta, steps)
        gap = np.linalg.norm(gd.xs - flow.at(gd.ts), axis=1).max()
        assert gap <= 8 * eta


def test_compare_runs_sign_descent_beside_its_flow():
    result = fs.compare("(x**2 + y**2)/2 + x*y/2", [1.0, 2.0], 0.01, 300, schemes=("signgd",))
    assert list(result.flows) == ["sign_flow"]
    assert result.deviation["sign_descent"].max() <= 0.02


def test_bad_arguments_are_refused_in_one_sentence():
    with pytest.raises(ValueError, match="x0"):
        fs.sign_flow("x**2 + y**2", [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]], 1.0)
    with pytest.raises(ValueError, match="method"):
        fs.sign_flow("x**2 + y**2", [1.0, 1.0], 1.0, method="Euler")
    with pytest.raises(ValueError, match="t_end"):
        fs.sign_flow("x**2 + y**2", [1.0, 1.0], -1.0)


def test_sign_flow_batches_are_their_single_runs_start_by_start():
    X = np.array([[1.0, 2.0], [-1.0, 0.5], [2.0, -2.0]])
    t = np.linspace(0.0, 3.0, 31)
    batch = fs.sign_flow("(x**2 + y**2)/2 + x*y/2", X, 3.0, t_eval=t)
    assert batch.xs.shape == (3, 31, 2) and batch.method == "sign_flow"
    for i, x0 in enumerate(X):
        one = fs.sign_flow("(x**2 + y**2)/2 + x*y/2", x0, 3.0)
        np.testing.assert_allclose(batch.xs[i], one.at(np.minimum(t, one.ts[-1])), atol=1e-12)
        assert batch.status[i] is one.status
    np.testing.assert_allclose(batch.xs[:, -1], 0.0, atol=1e-9)   # every start at x* by t = 3
    on_workers = fs.sign_flow("(x**2 + y**2)/2 + x*y/2", X, 3.0, t_eval=t, workers=2)
    np.testing.assert_array_equal(on_workers.xs, batch.xs)


def test_a_batch_with_a_start_that_chatters_samples_its_path():
    # x' = -sign(1/x + 2x) = -1 runs x to 0 at t = 0.5, where the flow chatters; the run
    # keeps steps of zero length there. Before, it had no dense solution and the batch,
    # which samples every start's path on its grid, raised ValueError.
    loss = fs.Loss("log(x) + (y - 1)**2 + x**2")
    batch = fs.sign_flow(loss, [[0.5, 1.0], [2.0, 1.0]], 0.6)
    assert batch.status[0] == fs.Status.FAILED and "chatters" in batch.message[0]
    assert batch.status[1] == fs.Status.REACHED_END
    np.testing.assert_allclose(batch.at([0.1, 0.25, 0.4])[:, :, 0], [[0.4, 0.25, 0.1],
                                                                     [1.9, 1.75, 1.6]],
                               atol=1e-9)
    np.testing.assert_allclose(batch.at(0.6)[0], [0.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("flow, loss", [(fs.sign_flow, "(x - 1)**2 + y**2"),
                                        (fs.gradient_flow, "abs(x) + abs(y - 1)")])
def test_a_switching_flow_takes_a_tiny_rtol_without_warnings(flow, loss, recwarn):
    # scipy floors rtol at 100 eps and warns at every solver it starts (one per switch)
    run = flow(loss, [-1.2, 1.0], 0.5, rtol=1e-20)
    assert run.status == fs.Status.REACHED_END and len(recwarn) == 0
