"""Gradient flows: wrapper overhead against raw solve_ivp, and batched starts.

Run: python benchmarks/bench_flow.py [--starts 10000]

1. The 2-D Rosenbrock flow to t = 50 at rtol 1e-8: flowsim's gradient_flow against
   solve_ivp with a hand-written numpy right-hand side (and Jacobian for BDF), same method and
   tolerances, measured in the same run (target: ratio <= 1.2).
2. m starts on the 2-D Rosenbrock loss to t = 1: one stacked, vectorized solve against one
   solve_ivp per start (timed on a subset and scaled), with the largest deviation between the
   two answers (target: >= 100x). Also the stiff case with BDF and the block-diagonal sparse
   Jacobian to t = 10. JAX's diffrax is timed on the same work when it is installed.
"""
import argparse

import numpy as np
from scipy.integrate import solve_ivp

import os as _os
import sys as _sys

_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
from _timing import once, per_call, row
import flowsim as fs
from flowsim import losses


def rosen_rhs(t, x):
    a, b = x
    return -np.array([-400 * a * (b - a * a) - 2 * (1 - a), 200 * (b - a * a)])


def rosen_jac(t, x):
    a, b = x
    return -np.array([[1200 * a * a - 400 * b + 2, -400 * a], [-400 * a, 200.0]])


def overhead(T=50.0):
    loss = losses.rosenbrock(2)
    x0 = np.array([-1.0, 1.0])
    opts = dict(rtol=1e-8, atol=1e-10)
    print(f"-- wrapper overhead, 2-D Rosenbrock flow to t = {T:g} (target <= 1.2x)")
    for method, jac in (("RK45", None), ("BDF", rosen_jac), ("LSODA", rosen_jac)):
        extra = {} if jac is None else {"jac": jac}
        for dense in (False, True):
            ours = per_call(lambda: fs.gradient_flow(loss, x0, T, method=method,
                                                     dense_output=dense, **opts), repeat=3)
            ref = per_call(lambda: solve_ivp(rosen_rhs, (0, T), x0, method=method,
                                             dense_output=dense, **opts, **extra), repeat=3)
            row(f"  {method:5s} dense_output={dense!s:5s} vs solve_ivp", ours, ref, "<= 1.2")
    traj = fs.gradient_flow(loss, x0, T, method="LSODA", **opts)
    rk = fs.gradient_flow(loss, x0, T, method="RK45", **opts)
    print(f"  gradient calls: LSODA {traj.ngev} (+{traj.nhev} Hessians), RK45 {rk.ngev}")


def batched(m, k_max=200, jax=True):
    loss = losses.rosenbrock(2)
    X = np.random.default_rng(0).uniform(-2, 2, size=(m, 2))
    ts = np.linspace(0, 1.0, 11)
    print(f"-- {m} starts, 2-D Rosenbrock flow to t = 1, RK45 rtol 1e-6 (target >= 100x)")
    def vectorized():
        return fs.gradient_flow(loss, X, 1.0, method="RK45", rtol=1e-6, atol=1e-9, t_eval=ts,
                                dense_output=False)

    batch = vectorized()
    seconds = rk_seconds = per_call(vectorized, repeat=3, min_time=0)  # best of 3: noisy VM
    k = min(m, k_max)
    single, ref = once(lambda: [solve_ivp(rosen_rhs, (0, 1.0), x, method="RK45", rtol=1e-6,
                                          atol=1e-9, t_eval=ts).y.T for x in X[:k]])
    one_by_one = single * m / k
    err = max(np.abs(batch.xs[i] - ref[i]).max() for i in range(k))
    print(f"  vectorized {seconds:.2f} s; one-by-one {one_by_one:.1f} s (from {k} starts): "
          f"speed-up {one_by_one / seconds:.0f}x; max |difference| {err:.2e}")
    for method in ("BDF", "LSODA"):
        print(f"-- stiff: {m} starts to t = 10, {method} (batch: the per-start RODAS4 "
              "engine; one by one: scipy's method with the analytic Jacobian)")
        seconds, stiff = once(lambda: fs.gradient_flow(loss, X, 10.0, method=method,
                                                       rtol=1e-6, atol=1e-9,
                                                       dense_output=False))
        single, ref = once(lambda: [solve_ivp(rosen_rhs, (0, 10.0), x, method=method,
                                              jac=rosen_jac, rtol=1e-6, atol=1e-9).y[:, -1]
                                    for x in X[:k]])
        err = np.abs(stiff.x_final[:k] - np.array(ref)).max()
        one_by_one = single * m / k
        print(f"  vectorized {seconds:.2f} s; one-by-one {one_by_one:.1f} s: speed-up "
              f"{one_by_one / seconds:.0f}x; max |difference| {err:.2e}")
    if not jax:
        print("  (diffrax is timed on the same work in the full run, and in bench_jax.py)")
        return
    try:
        import diffrax  # noqa: F401
    except ImportError:
        print("  diffrax not installed: pip install jax diffrax to time it on the same work")
    else:  # pragma: no cover - optional comparison
        theirs, ys = diffrax_time(X, ts)
        print(f"  diffrax to t = 1 (vmap + jit, Tsit5, same tolerances) {theirs:.2f} s after "
              f"compiling; flowsim RK45 / diffrax = {rk_seconds / theirs:.2f}; max |difference| "
              f"{np.abs(np.asarray(ys) - batch.xs).max():.2e}")
        # The stiff case is not timed against diffrax: its Kvaerno5 with default root-finder
        # settings hit its 100,000-step limit on this problem already for 100 starts.


def diffrax_time(X, ts):  # pragma: no cover - optional comparison
    import time

    import diffrax
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    def vf(t, y, args):
        a, b = y
        return -jnp.array([-400 * a * (b - a * a) - 2 * (1 - a), 200 * (b - a * a)])

    def solve(y0):
        return diffrax.diffeqsolve(diffrax.ODETerm(vf), diffrax.Tsit5(), 0.0, float(ts[-1]),
                                   None, y0,
                                   stepsize_controller=diffrax.PIDController(rtol=1e-6,
                                                                             atol=1e-9),
                                   saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
                                   max_steps=100_000).ys
    fn = jax.jit(jax.vmap(solve))
    ys = fn(jnp.asarray(X)).block_until_ready()
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        fn(jnp.asarray(X)).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return best, ys


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    overhead(10.0 if args.quick else 50.0)
    batched(args.starts, 30 if args.quick else 200, jax=not args.quick)
