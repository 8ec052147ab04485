"""Loss: compiled derivatives against independent oracles, shapes, params, counts, errors."""
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse
import sympy as sp
from scipy.optimize import rosen, rosen_der, rosen_hess

import flowsim.loss._compile
from flowsim import Loss, losses

from .conftest import central_difference

ROSEN = "(1-x)**2 + 100*(y-x**2)**2"


@pytest.mark.parametrize("n", [2, 3, 5, 10, 25, 50])
def test_rosenbrock_matches_scipy(n, rng):
    loss = losses.rosenbrock(n)
    X = rng.uniform(-2, 2, size=(7, n))
    np.testing.assert_allclose(loss.value(X), rosen(X.T), rtol=1e-13)
    for x in X:
        np.testing.assert_allclose(loss.grad(x), rosen_der(x), rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(loss.hess(x), rosen_hess(x), rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(loss.hess(x, sparse=True).toarray(), rosen_hess(x),
                                   rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("backend", ["sympy", "symengine"])
def test_both_backends_match_scipy_on_a_string(backend, rng):
    loss = Loss(ROSEN, backend=backend)
    assert loss.backend == backend
    for x in rng.normal(size=(5, 2)):
        np.testing.assert_allclose(loss.grad(x), rosen_der(x), rtol=1e-13)
        np.testing.assert_allclose(loss.hess(x), rosen_hess(x), rtol=1e-13)


NAMED_AT_RANDOM = [losses.rosenbrock, losses.himmelblau, losses.six_hump_camel, losses.beale,
                   losses.monkey_saddle, losses.saddle, losses.double_well,
                   losses.ill_conditioned_quadratic]


@pytest.mark.parametrize("make", NAMED_AT_RANDOM, ids=lambda f: f.__name__)
def test_named_losses_match_finite_differences(make, rng):
    loss = make()
    for x in rng.uniform(-1.5, 1.5, size=(4, loss.n)):
        np.testing.assert_allclose(loss.grad(x), central_difference(loss.value, x),
                                   rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(loss.hess(x), central_difference(loss.grad, x),
                                   rtol=1e-6, atol=1e-5)


def test_data_losses_match_finite_differences(rng):
    X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    for loss in (losses.least_squares(X, y), losses.logistic_regression(X, y > 0, lam=0.1),
                 losses.lasso(X, y, 0.3).full):
        for w in rng.normal(size=(3, 3)):
            np.testing.assert_allclose(loss.grad(w), central_difference(loss.value, w),
                                       rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(loss.hess(w), central_difference(loss.grad, w),
                                       rtol=1e-6, atol=1e-6)


def test_symbolic_derivatives_equal_sympy_diff():
    loss = Loss("exp(x*y) + sin(x)**2 / (1 + y**2)")
    x, y = loss.variables
    f = loss.expr
    assert sp.simplify(loss.gradient_expr - sp.Matrix([f.diff(x), f.diff(y)])) == sp.zeros(2, 1)
    assert sp.simplify(loss.hessian_expr - sp.hessian(f, (x, y))) == sp.zeros(2, 2)
    assert all(s.is_real for s in loss.gradient_expr.free_symbols)


def test_shapes_batches_and_constant_components(rng):
    loss = Loss("3*x + y**2")  # d/dx is the constant 3: must broadcast to the batch
    X = rng.normal(size=(4, 5, 2))
    assert loss.value(X).shape == (4, 5)
    g = loss.grad(X)
    assert g.shape == (4, 5, 2)
    np.testing.assert_array_equal(g[..., 0], 3.0)
    np.testing.assert_allclose(g[..., 1], 2 * X[..., 1])
    H = loss.hess(X)
    assert H.shape == (4, 5, 2, 2)
    np.testing.assert_array_equal(H[..., 1, 1], 2.0)
    np.testing.assert_array_equal(H[..., 0, :], 0.0)
    assert isinstance(loss.value([1, 2]), float)
    assert loss.value([1, 2]) == 7.0  # integer and list input
    np.testing.assert_array_equal(loss.grad([1, 2]), [3.0, 4.0])


def test_sympy_backend_broadcasts_constants_too():
    loss = Loss("abs(x) + 2*y", backend="sympy")
    g = loss.grad(np.zeros((3, 2)))
    np.testing.assert_array_equal(g, [[0.0, 2.0]] * 3)


def test_batch_sparse_hessian_is_block_diagonal(rng):
    loss = losses.rosenbrock(4)
    X = rng.normal(size=(3, 4))
    S = loss.hess(X, sparse=True)
    assert scipy.sparse.issparse(S) and S.shape == (12, 12)
    np.testing.assert_allclose(S.toarray(), scipy.linalg.block_diag(*map(rosen_hess, X)))
    rows, cols = loss.hessian_pattern
    assert len(rows) == 3 * 4 - 2  # tridiagonal


@pytest.mark.parametrize("bad", [[1.0, 2.0, 3.0], 1.0, np.zeros((4, 3)), [[1.0], [2.0]]])
def test_wrong_dimension_raises(bad):
    loss = Loss(ROSEN)
    for method in (loss.value, loss.grad, loss.hess):
        with pytest.raises(ValueError, match=r"last dimension n = 2 \(one entry per variable "
                                             r"x, y\)"):
            method(bad)


def test_variables_order_and_params():
    loss = Loss("a*x**2 + y", variables=("y", "x"), params={"a": 2.0})
    assert [v.name for v in loss.variables] == ["y", "x"]
    np.testing.assert_array_equal(loss.grad([5.0, 1.0]), [1.0, 4.0])
    assert loss.value(np.array([[0.0, 1.0], [1.0, 2.0]])).tolist() == [2.0, 9.0]
    other = loss.with_params(a=-1.0)
    assert other.value([0.0, 3.0]) == -9.0
    assert loss.value([0.0, 3.0]) == 18.0  # the original is unchanged
    with pytest.raises(ValueError, match="'b' is not a parameter"):
        loss.with_params(b=1.0)
    with pytest.raises(ValueError, match="params: 'c' does not occur"):
        Loss("x**2", params={"c": 1.0})
    with pytest.raises(ValueError, match="the value of 'a' is nan"):
        Loss("a*x", params={"a": float("nan")})


def test_with_params_does_not_differentiate_again(monkeypatch):
    loss = Loss("a*(x - b)**2", params={"a": 1.0, "b": 0.0})
    calls = []
    monkeypatch.setattr(flowsim.loss._compile, "_termwise_diff",
                        lambda *a, **k: calls.append(1))
    moved = loss.with_params(b=3.0)
    assert calls == []
    assert moved.grad([3.0]) == pytest.approx([0.0])


def test_nonsmooth_subgradients_are_documented_choice():
    loss = Loss("abs(x) + max(y, 0)")
    assert loss.backend == "sympy"
    np.testing.assert_array_equal(loss.grad([0.0, 0.0]), [0.0, 0.5])
    np.testing.assert_array_equal(loss.grad([-2.0, 3.0]), [-1.0, 1.0])
    np.testing.assert_array_equal(loss.hess([0.3, 0.3]), np.zeros((2, 2)))


def test_counts_are_points_and_resettable():
    loss = Loss(ROSEN)
    loss.value([0, 0])
    loss.grad(np.zeros((10, 2)))
    loss.hess(np.zeros((3, 4, 2)))
    assert (loss.counts.value, loss.counts.grad, loss.counts.hess) == (1, 10, 12)
    loss.reset_counts()
    assert loss.counts.value == loss.counts.grad == loss.counts.hess == 0


def test_from_samples_mean_squared_error():
    X, Y = np.array([1.0, 2, 3, 4]), np.array([2.0, 4, 5, 4])
    mse = Loss.from_samples("(a*x + b - y)**2", {"x": X, "y": Y}, variables=("a", "b"))
    slope, intercept = np.polyfit(X, Y, 1)  # independent least-squares oracle
    assert (slope, intercept) == pytest.approx((0.7, 2.0))
    np.testing.assert_allclose(mse.grad([slope, intercept]), 0.0, atol=1e-12)
    w = np.array([[0.3, -1.0], [2.0, 0.5]])
    expected = np.mean((w[:, :1] * X + w[:, 1:] - Y) ** 2, axis=1)
    np.testing.assert_allclose(mse.value(w), expected, rtol=1e-14)
    np.testing.assert_allclose(mse.hess([0, 0]), 2 * np.array([[np.mean(X ** 2), X.mean()],
                                                                [X.mean(), 1.0]]))
    half = mse.subset([0, 2])
    direct = Loss.from_samples("(a*x + b - y)**2", {"x": X[[0, 2]], "y": Y[[0, 2]]},
                               variables=("a", "b"))
    np.testing.assert_allclose(half.grad(w), direct.grad(w), rtol=1e-14)
    assert half.n_samples == 2 and mse.n_samples == 4


def test_from_samples_errors():
    with pytest.raises(ValueError, match=r"data\['y'\] has 3 samples"):
        Loss.from_samples("(a*x - y)**2", {"x": [1, 2], "y": [1, 2, 3]}, variables=["a"])
    with pytest.raises(ValueError, match="symbol 'c' is not among"):
        Loss.from_samples("(a*x - c)**2", {"x": [1, 2]}, variables=["a"])
    with pytest.raises(ValueError, match="subset\\(\\) needs"):
        Loss("x**2").subset([0])


def test_sympy_expression_input_and_errors():
    x, y = sp.symbols("x y")  # not declared real: flowsim makes them real
    loss = Loss(sp.Abs(x) + y ** 2)
    np.testing.assert_array_equal(loss.grad([-1.0, 1.0]), [-1.0, 2.0])
    with pytest.raises(TypeError, match="formula must be a str or a sympy expression"):
        Loss(object())
    with pytest.raises(ValueError, match="imaginary unit"):
        Loss(sp.I * x)
    with pytest.raises(ValueError, match="lists a name twice"):
        Loss("x + y", variables=("x", "x", "y"))
    with pytest.raises(ValueError, match="backend must be"):
        Loss("x**2", backend="fortran")


def test_loss_is_immutable_and_readable():
    loss = Loss(ROSEN)
    with pytest.raises(AttributeError, match="immutable"):
        loss.foo = 1
    assert repr(loss) == "Loss('(1 - x)**2 + 100*(-x**2 + y)**2', variables=(x, y))"
    assert loss._repr_latex_().startswith(r"$\displaystyle L(x, y) =")


def test_undefined_at_point_gives_nan_without_warnings():
    loss = Loss("log(x) + y", backend="sympy")
    with np.errstate(all="raise"):
        assert np.isnan(loss.value([-1.0, 0.0]))


def test_large_chained_rosenbrock_is_sparse(rng):
    loss = losses.rosenbrock(300)
    x = rng.normal(size=300)
    np.testing.assert_allclose(loss.grad(x), rosen_der(x), rtol=1e-12)
    S = loss.hess(x, sparse=True)
    assert S.nnz == 3 * 300 - 2
    np.testing.assert_allclose(S.toarray(), rosen_hess(x), rtol=1e-12)


@pytest.mark.parametrize("backend", ["sympy", "symengine"])
def test_one_variable_shapes(backend):
    loss = Loss("x**3 + 1", backend=backend)
    X = np.arange(6.0).reshape(2, 3, 1)
    assert loss.value(X).shape == (2, 3)
    assert loss.grad(X).shape == (2, 3, 1)
    assert loss.hess(X).shape == (2, 3, 1, 1)
    np.testing.assert_allclose(loss.hess(X)[..., 0, 0], 6 * X[..., 0])
    assert loss.value([2.0]) == 9.0


@pytest.mark.parametrize("make", NAMED_AT_RANDOM + [lambda: Loss("abs(x - 1) + max(x, y)**2"),
                                                    lambda: Loss("a*x**2*y", params={"a": 3})],
                         ids=lambda f: getattr(f, "__name__", "formula"))
def test_single_point_path_agrees_with_batched_kernels(make, rng):
    # single points of small losses take a math-module kernel; batches the compiled one
    loss = make()
    X = rng.uniform(-1.5, 1.5, size=(5, loss.n))
    for x in X:
        np.testing.assert_allclose(loss.value(x), loss.value(x[None])[0], rtol=1e-14)
        np.testing.assert_allclose(loss.grad(x), loss.grad(x[None])[0], rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(loss.hess(x), loss.hess(x[None])[0], rtol=1e-13, atol=1e-13)


def test_single_point_outside_domain_falls_back_to_numpy_answers():
    loss = Loss("log(x) + sqrt(y) + exp(x)")
    with np.errstate(all="raise"):
        assert np.isnan(loss.value([-1.0, 1.0]))
        assert np.isnan(loss.value([1.0, -1.0]))
        assert loss.value([1000.0, 1.0]) == np.inf
    assert Loss("1/x").value([0.0]) == np.inf
    assert np.isnan(Loss("x**0.5").value([-1.0]))


def test_bookkeeping_accepts_frozen_trajectory_arrays():
    # Trajectory arrays are read-only; the compiled kernels need writeable input
    import flowsim as fs
    loss = losses.rosenbrock(2)
    traj = fs.gradient_descent(loss, [-1.2, 1.0], 1e-3, 5)
    assert not traj.xs.flags.writeable
    np.testing.assert_allclose(loss.observe_values(traj.xs), rosen(traj.xs.T), rtol=1e-14)
    values, norms = loss.observe(traj.xs)
    np.testing.assert_allclose(norms, np.linalg.norm([rosen_der(x) for x in traj.xs], axis=1))


def test_observe_in_chunks_gives_each_states_own_numbers(monkeypatch):
    # many states are observed a chunk at a time (OBSERVE_CHUNK states, fewer for a loss
    # with samples); each state's L and |grad L| are those of the state alone, whatever
    # the chunk, the shape of the stack or whether the arrays are read-only
    from flowsim.loss import _evaluation
    from flowsim import Loss
    rosen_loss = losses.rosenbrock(2)
    mse = Loss.from_samples("(a*x + b - y)**2", {"x": [1, 2, 3, 4], "y": [2, 4, 5, 4]},
                            ["a", "b"])
    xs = np.random.default_rng(3).uniform(-2, 2, size=(7, 5, 2))
    xs.setflags(write=False)
    expected = {id(rosen_loss): (rosen(xs.T).T, np.linalg.norm(
        np.moveaxis(rosen_der(np.moveaxis(xs, -1, 0)), 0, -1), axis=-1))}
    a, b = xs[..., 0], xs[..., 1]
    residual = a[..., None] * np.array([1, 2, 3, 4]) + b[..., None] - np.array([2, 4, 5, 4])
    mse_grad = np.stack([2 * (residual * np.array([1, 2, 3, 4])).mean(-1),
                         2 * residual.mean(-1)], axis=-1)
    expected[id(mse)] = ((residual ** 2).mean(-1), np.linalg.norm(mse_grad, axis=-1))
    for chunk in (_evaluation.OBSERVE_CHUNK, 6, 1):
        monkeypatch.setattr(_evaluation, "OBSERVE_CHUNK", chunk)
        for loss in (rosen_loss, mse):
            values, norms = loss.observe(xs)
            np.testing.assert_allclose(values, expected[id(loss)][0], rtol=1e-13)
            np.testing.assert_allclose(norms, expected[id(loss)][1], rtol=1e-13)
            _, grads = loss.observe(xs, full=True)
            assert grads.shape == (7, 5, 2)
            np.testing.assert_allclose(np.linalg.norm(grads, axis=-1), norms, rtol=1e-15)
            np.testing.assert_array_equal(loss.observe_values(xs[2, 3]), values[2, 3])
