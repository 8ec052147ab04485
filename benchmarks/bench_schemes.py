"""Discrete schemes against hand-written references, in one run.

Run: python benchmarks/bench_schemes.py

1. One GD trajectory on the 2-D Rosenbrock loss, 10^5 steps: flowsim's gradient_descent
   against a Python loop calling scipy's hand-written rosen_der (target: >= 5x faster).
2. GD on a batch of 10,000 starts: one vectorized numpy step per iteration (flowsim's batched
   gradient) against the same loop in compiled code when numba is installed, else against a
   hand-written numpy step (target: within 2x of compiled code per start).
3. One proximal-point step (backward Euler, eta = 0.1) solved by flowsim's Newton iteration
   against scipy.optimize.minimize (BFGS) on the proximal objective, at equal accuracy
   (target: >= 10x faster).
"""
import numpy as np
import scipy.optimize
from scipy.optimize import rosen_der

import os as _os
import sys as _sys

_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
from _timing import per_call, row
import flowsim as fs
from flowsim import losses
from flowsim.schemes.proximal_point import proximal_step


def rosen_grad_batch(X):
    a, b = X[:, 0], X[:, 1]
    return np.stack([-400 * a * (b - a * a) - 2 * (1 - a), 200 * (b - a * a)], axis=1)


def single_trajectory(loss, steps=100_000, eta=1e-4):
    x0 = np.array([-1.2, 1.0])

    def reference():
        x = x0.copy()
        out = [x]
        for _ in range(steps):
            x = x - eta * rosen_der(x)
            out.append(x)
        return np.array(out)

    ours = per_call(lambda: fs.gradient_descent(loss, x0, eta, steps), repeat=3) / steps
    ref = per_call(reference, repeat=3) / steps
    assert np.allclose(fs.gradient_descent(loss, x0, eta, steps).x_final, reference()[-1])
    print("-- one GD trajectory, 2-D Rosenbrock, 1e5 steps (per step)")
    row("  gradient_descent vs rosen_der loop", ours, ref, "<= 0.2 (5x faster)")


def batched(loss, m=10_000, steps=200, eta=1e-4):
    X0 = np.random.default_rng(0).uniform(-2, 2, size=(m, 2))
    grad = loss.evaluator("grad", batched=False)

    def ours():
        X = X0.copy()
        for _ in range(steps):
            X -= eta * grad(X)
        return X

    def numpy_ref():
        X = X0.copy()
        for _ in range(steps):
            X -= eta * rosen_grad_batch(X)
        return X

    def api():
        return fs.gradient_descent(loss, X0, eta, steps)

    assert np.allclose(ours(), numpy_ref()) and np.allclose(api().x_final, ours())
    t_ours = per_call(ours, repeat=3) / (steps * m)
    t_api = per_call(api, repeat=3) / (steps * m)
    print(f"-- GD on {m} starts, {steps} steps (per start and step)")
    row("  batched flowsim gradient vs hand numpy", t_ours, per_call(numpy_ref, repeat=3) /
        (steps * m))
    print(f"  gradient_descent(x0 of shape ({m}, 2)) with its bookkeeping (checks, L and "
          f"|grad L| at every iterate): {t_api * 1e9:.2f} ns")
    try:
        import numba
    except ImportError:
        print("  numba not installed: pip install numba to time the compiled loop")
        return

    @numba.njit(cache=False)
    def compiled(X, eta, steps):  # pragma: no cover - optional reference
        X = X.copy()
        for _ in range(steps):
            for i in range(X.shape[0]):
                a, b = X[i, 0], X[i, 1]
                X[i, 0] -= eta * (-400 * a * (b - a * a) - 2 * (1 - a))
                X[i, 1] -= eta * (200 * (b - a * a))
        return X

    compiled(X0, eta, 2)
    t_ref = per_call(lambda: compiled(X0, eta, steps), repeat=3) / (steps * m)
    row("  batched flowsim gradient vs numba loop", t_ours, t_ref, "<= 2")
    row("  batched gradient_descent vs numba loop", t_api, t_ref, "<= 2")


def prox_step(loss, eta=0.1):
    x = np.array([-1.2, 1.0])

    def via_minimize():
        def phi(y):
            d = y - x
            return loss.value(y) + d @ d / (2 * eta), loss.grad(y) + d / eta
        return scipy.optimize.minimize(phi, x, jac=True, method="BFGS",
                                       options={"gtol": 1e-10}).x

    y_ref = via_minimize()
    res_ref = np.linalg.norm(y_ref + eta * loss.grad(y_ref) - x)
    # equal accuracy: the loosest Newton tolerance whose residual is no larger than BFGS's
    for tol in (1e-9, 1e-10, 1e-11, 1e-12, 1e-13):
        y, inner, res = proximal_step(loss, x, eta, tol=tol)
        if res <= res_ref:
            break
    print(f"-- one proximal-point step, eta = {eta}: residual |y + eta grad L(y) - x| "
          f"{res:.1e} (Newton, tol {tol:g}, {inner} iterations) vs {res_ref:.1e} (BFGS, "
          "gtol 1e-10)")
    row("  Newton proximal_step vs minimize(BFGS)",
        per_call(lambda: proximal_step(loss, x, eta, tol=tol)), per_call(via_minimize),
        "<= 0.1 (10x faster)")


if __name__ == "__main__":
    import sys
    quick = "--quick" in sys.argv
    rosen = losses.rosenbrock(2)
    single_trajectory(rosen, steps=10_000 if quick else 100_000)
    batched(rosen, m=2_000 if quick else 10_000)
    prox_step(rosen)
