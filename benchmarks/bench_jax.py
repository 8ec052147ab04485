"""The JAX backend against hand-written JAX programs doing the same work, and against the
numpy backend.

Run: python benchmarks/bench_jax.py [--starts 1000 100000] [--quick]

1. Flow: m starts of the 2-D Rosenbrock gradient flow to t = 1 (Tsit5, rtol 1e-6, atol 1e-9,
   101 output times): ``gradient_flow(..., method="auto", backend="jax")`` against a
   hand-written ``jax.jit(jax.vmap(diffrax.diffeqsolve))`` with the same solver, tolerances,
   outputs and divergence event (target: ratio <= 1.3).
2. Scheme: 1000 gradient-descent steps (eta = 1e-4) from m starts, final states kept:
   ``gradient_descent(..., record="final", backend="jax")`` against a hand-written
   ``lax.scan`` of x <- x - eta grad L(x), bare and with a per-step divergence stop like
   flowsim's (target: ratio <= 1.3).

Compile time (the first call less a later one) is reported apart from run time (the best of
three later calls). The numpy backend's time on the same work is given for scale. Needs JAX and
diffrax (``pip install "flowsim[jax]"``); on a machine without a GPU, JAX runs on its CPU.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flowsim as fs  # noqa: E402
from flowsim import losses  # noqa: E402


def timed(fn, repeat=3):
    """(compile seconds, run seconds, result): first call less the best later call."""
    start = time.perf_counter()
    out = fn()
    first = time.perf_counter() - start
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return max(first - best, 0.0), best, out


def hand_flow(jax, jnp, diffrax, X, t_out, rtol, atol, max_norm):
    def vf(t, y, args):
        a, b = y
        return -jnp.array([-400 * a * (b - a * a) - 2 * (1 - a), 200 * (b - a * a)])

    event = diffrax.Event(lambda t, y, args, **kw: ~(jnp.linalg.norm(y) <= max_norm))

    def solve(y0):
        return diffrax.diffeqsolve(diffrax.ODETerm(vf), diffrax.Tsit5(), 0.0, float(t_out[-1]),
                                   None, y0, saveat=diffrax.SaveAt(ts=jnp.asarray(t_out)),
                                   stepsize_controller=diffrax.PIDController(rtol=rtol,
                                                                             atol=atol),
                                   event=event, max_steps=100_000, throw=False).ys
    fn = jax.jit(jax.vmap(solve))
    return lambda: np.asarray(fn(jnp.asarray(X)).block_until_ready())


def hand_gd(jax, jnp, X, eta, steps):
    def grad(x):
        a, b = x[..., 0], x[..., 1]
        return jnp.stack([-400 * a * (b - a * a) - 2 * (1 - a), 200 * (b - a * a)], axis=-1)

    @jax.jit
    def run(X0):
        return jax.lax.scan(lambda x, _: (x - eta * grad(x), None), X0, None, length=steps)[0]
    return lambda: np.asarray(run(jnp.asarray(X)).block_until_ready())


def hand_gd_with_stops(jax, jnp, X, eta, steps, max_norm):
    """The same, with the per-step rule flowsim applies: a start whose next iterate leaves
    max_norm (or is not finite) stops and holds."""
    def grad(x):
        a, b = x[..., 0], x[..., 1]
        return jnp.stack([-400 * a * (b - a * a) - 2 * (1 - a), 200 * (b - a * a)], axis=-1)

    def step(carry, _):
        x, active = carry
        xn = x - eta * grad(x)
        ok = (jnp.abs(xn[:, 0]) <= max_norm) & (jnp.abs(xn[:, 1]) <= max_norm)
        return (jnp.where(active[:, None], xn, x), active & ok), None

    @jax.jit
    def run(X0):
        return jax.lax.scan(step, (X0, jnp.ones(len(X0), bool)), None, length=steps)[0][0]
    return lambda: np.asarray(run(jnp.asarray(X)).block_until_ready())


def row(label, compile_s, run_s, ref_run_s, ref_compile_s, note=""):
    ratio = run_s / ref_run_s
    print(f"  {label:44s} run {run_s:9.4f} s  (compile {compile_s:6.2f} s) | hand-written "
          f"{ref_run_s:9.4f} s (compile {ref_compile_s:6.2f} s) | ratio {ratio:5.2f}x "
          f"target <= 1.3 {note}")


def main(starts, quick):
    import diffrax
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    print(f"-- JAX {jax.__version__}, diffrax {diffrax.__version__}, devices "
          f"{[str(d) for d in jax.devices()]}")
    loss = losses.rosenbrock(2)
    rtol, atol, max_norm = 1e-6, 1e-9, 1e8
    t_out = np.linspace(0.0, 1.0, 101)
    for m in starts:
        X = np.random.default_rng(0).uniform(-2, 2, size=(m, 2))
        print(f"-- {m} starts, 2-D Rosenbrock flow to t = 1 (Tsit5, rtol {rtol:g}, 101 outputs)")
        c, r, traj = timed(lambda: fs.gradient_flow(loss, X, 1.0, method="auto", rtol=rtol,
                                                    atol=atol, backend="jax"))
        rc, rr, ys = timed(hand_flow(jax, jnp, diffrax, X, t_out, rtol, atol, max_norm))
        diff = np.nanmax(np.abs(traj.xs - ys))
        row("gradient_flow(backend='jax')", c, r, rr, rc, f"max |difference| {diff:.1e}")
        if m <= (2000 if quick else 20_000):
            start = time.perf_counter()
            fs.gradient_flow(loss, X, 1.0, method="RK45", rtol=rtol, atol=atol)
            print(f"  numpy backend (DP5 engine, same tolerances): "
                  f"{time.perf_counter() - start:.3f} s")
        steps, eta = (200 if quick else 1000), 1e-4
        print(f"-- {m} starts, {steps} gradient-descent steps (eta = {eta:g}), final states")
        c, r, traj = timed(lambda: fs.gradient_descent(loss, X, eta, steps, record="final",
                                                       backend="jax"))
        rc, rr, ys = timed(hand_gd(jax, jnp, X, eta, steps))
        diff = np.abs(traj.xs[:, -1] - ys).max()
        row("gradient_descent(backend='jax')", c, r, rr, rc, f"max |difference| {diff:.1e}")
        rc, rr, ys = timed(hand_gd_with_stops(jax, jnp, X, eta, steps, max_norm))
        row("  against a hand-written scan with stop rule", c, r, rr, rc)
        if m <= (2000 if quick else 20_000):
            start = time.perf_counter()
            fs.gradient_descent(loss, X, eta, steps, record="final")
            print(f"  numpy backend: {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    main(args.starts, args.quick)
