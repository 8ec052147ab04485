"""Ensembles: many starts at once, against the references measured in the same run.

1. Explicit, 2-D Rosenbrock to t = 1 at rtol 1e-6 (RK45 / the per-start DP5 engine): one
   batched call for m starts against one ``solve_ivp`` per start (sampled on 100 starts) at
   the same per-start tolerance; and the cost per start from 1,000 to 100,000 starts.
2. Stiff, 10,000 starts to t = 10 on the 2-D Rosenbrock loss (BDF / the per-start Rosenbrock
   2(3) engine) against ``solve_ivp(method="BDF")`` with the analytic Jacobian per start.
3. Batched GD, 100,000 starts, 200 steps, final state only, against a hand-written numba loop
   (skipped when numba is not installed) and a hand-written numpy loop.
4. Parallel speed-up at 100,000 starts: ``workers=k`` against one process.

Run: ``python3 benchmarks/bench_ensemble.py [--quick] [--scaling]`` (``--scaling``: row 4
alone, as ``benchmarks/device_check.sh`` runs it on a 16-core machine). Prints ratios; a ratio
below 1 is flowsim faster where the row says "ours / reference".
"""
import os
import sys
import time

import numpy as np
import scipy.integrate

sys.path.insert(0, os.path.dirname(__file__))
from _timing import once as _once  # noqa: E402

import flowsim as fs  # noqa: E402
from flowsim import losses  # noqa: E402

QUICK = "--quick" in sys.argv
LOSS = losses.rosenbrock(2)


def once(func, *args, **kwargs):
    """Wall time of one call with keywords, and its result."""
    return _once(lambda: func(*args, **kwargs))


def starts(m, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, (m, 2))


def per_start_solve_ivp(X, t_end, method, rtol, atol, jac=False):
    """Seconds per start of one solve_ivp per start (the reference)."""
    def fun(t, x):
        return -LOSS.grad(x)
    kwargs = {"jac": lambda t, x: -LOSS.hess(x)} if jac else {}
    start = time.perf_counter()
    for x0 in X:
        scipy.integrate.solve_ivp(fun, (0, t_end), x0, method=method, rtol=rtol, atol=atol,
                                  t_eval=[t_end], **kwargs)
    return (time.perf_counter() - start) / len(X)


def explicit():
    print("1. explicit: Rosenbrock, t = 1, rtol 1e-6, RK45")
    ref = per_start_solve_ivp(starts(20 if QUICK else 100, 1), 1.0, "RK45", 1e-6, 1e-9)
    print(f"   solve_ivp per start: {ref * 1e6:9.1f} us")
    costs = {}
    for m in ((1_000, 5_000) if QUICK else (1_000, 10_000, 100_000)):
        seconds, _ = once(fs.gradient_flow, LOSS, starts(m), 1.0, method="RK45", rtol=1e-6,
                          atol=1e-9, t_eval=[0.0, 1.0], dense_output=False)
        costs[m] = seconds / m
        print(f"   m = {m:>7,}: {costs[m] * 1e6:8.1f} us per start, {ref / costs[m]:7.0f}x "
              "faster than solve_ivp per start (target >= 400x)")
    first, last = min(costs), max(costs)
    print(f"   cost per start at m = {last:,} / at m = {first:,}: "
          f"{costs[last] / costs[first]:.2f} (target <= 1.3)")
    sizes = [1, 10, 100, 1_000] + ([5_000] if QUICK else [10_000, 100_000])
    times = [once(fs.gradient_flow, LOSS, starts(m, 5), 1.0, method="RK45", rtol=1e-6,
                  atol=1e-9, t_eval=[0.0, 1.0], dense_output=False)[0] for m in sizes]
    slope = np.polyfit(np.log(sizes[2:]), np.log(times[2:]), 1)[0]
    print("   wall time against starts: " + ", ".join(f"m={m:,}: {t:.3g} s" for m, t in
                                                    zip(sizes, times)) +
          f"; fitted exponent from m = 100 on: {slope:.2f} (1 = linear in the starts)")


def stiff():
    print("2. stiff: Rosenbrock, t = 10, rtol 1e-6, BDF")
    ref = per_start_solve_ivp(starts(10 if QUICK else 30, 2), 10.0, "BDF", 1e-6, 1e-9, jac=True)
    m = 1_000 if QUICK else 10_000
    seconds, batch = once(fs.gradient_flow, LOSS, starts(m), 10.0, method="BDF", rtol=1e-6,
                          atol=1e-9, t_eval=[0.0, 10.0], dense_output=False)
    print(f"   solve_ivp BDF per start {ref * 1e6:9.1f} us; batch {seconds / m * 1e6:8.1f} us "
          f"per start (m = {m:,}): {ref / (seconds / m):6.0f}x (target >= 100x); "
          f"{sum(s is fs.Status.REACHED_END for s in batch.status)} of {m} reached t = 10")


def gd():
    print("3. batched GD, final state only, 200 steps, eta = 1e-4")
    m, steps, eta = (5_000 if QUICK else 100_000), 200, 1e-4
    X = starts(m)
    ours, batch = once(fs.gradient_descent, LOSS, X, eta, steps, record="final")
    per = ours / (m * steps)

    def numpy_loop(X):
        X = X.copy()
        for _ in range(steps):
            x, y = X[:, 0], X[:, 1]
            g0 = -2 * (1 - x) - 400 * x * (y - x * x)
            g1 = 200 * (y - x * x)
            X[:, 0] -= eta * g0
            X[:, 1] -= eta * g1
        return X

    t_np, ref = once(numpy_loop, X)
    assert np.allclose(ref, batch.xs[:, -1], rtol=1e-12, atol=1e-12)
    print(f"   flowsim {per * 1e9:6.2f} ns per start and step; hand numpy "
          f"{t_np / (m * steps) * 1e9:6.2f} ns: ratio {ours / t_np:.2f}")
    try:
        import numba
    except ImportError:
        print("   numba not installed: no numba reference")
        return

    @numba.njit(cache=False)
    def numba_loop(X, steps, eta):
        X = X.copy()
        for i in range(X.shape[0]):
            x, y = X[i, 0], X[i, 1]
            for _ in range(steps):
                g0 = -2 * (1 - x) - 400 * x * (y - x * x)
                g1 = 200 * (y - x * x)
                x, y = x - eta * g0, y - eta * g1
            X[i, 0], X[i, 1] = x, y
        return X

    numba_loop(X[:10], 2, eta)
    t_nb, _ = once(numba_loop, X, steps, eta)
    print(f"   numba {t_nb / (m * steps) * 1e9:6.2f} ns per start and step: flowsim / numba = "
          f"{ours / t_nb:.1f} (target <= 3)")


def scaling():
    print("4. parallel speed-up, explicit flow, 100,000 starts")
    m = 5_000 if QUICK else 100_000
    X = starts(m, 3)
    kwargs = dict(method="RK45", rtol=1e-6, atol=1e-9, t_eval=[0.0, 1.0], dense_output=False)
    one, _ = once(fs.gradient_flow, LOSS, X, 1.0, **kwargs)
    cores = os.cpu_count() or 1
    for workers in sorted({2, 4, 8, cores} - {1}):
        if workers > cores:
            continue
        t, _ = once(fs.gradient_flow, LOSS, X, 1.0, workers=workers, **kwargs)
        print(f"   workers = {workers:>2}: speed-up {one / t:5.2f} "
              f"(target >= {0.75 * workers:.2f})")


if __name__ == "__main__":
    if "--scaling" not in sys.argv:
        explicit()
        stiff()
        gd()
    scaling()
