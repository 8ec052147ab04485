"""Where the JAX backend's batched gradient descent spends its time, against bare scans.

Run: python benchmarks/bench_gd_anatomy.py [--starts 100000] [--steps 1000]

Each line is one program on the same starts, best of five after a warm-up: a hand-written
scan of the Rosenbrock gradient, a scan of flowsim's compiled (vmapped) gradient, the same
with a step size per step, the same with a per-row "may have stopped" flag beside the
state (what flowsim carried before), the same with that mark folded into the state as a NaN
(what lets flowsim run blocks of steps without stop decisions now), and flowsim itself
(``gradient_descent(..., record="final", backend="jax")``), also with gtol, where starts
converge in most blocks and only their rows are replayed. Tests never assert timings.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flowsim as fs  # noqa: E402
from bench_jax import hand_gd  # noqa: E402
from bench_targets import best  # noqa: E402


def main(starts, steps):
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    from flowsim.jax_backend.compiled import jax_loss
    loss = fs.losses.rosenbrock(2)
    grad = jax.vmap(jax_loss(loss).grad)
    X = np.random.default_rng(0).uniform(-2, 2, size=(starts, 2))
    etas = jnp.full(steps, 1e-4)

    @jax.jit
    def vmapped(X0):
        return jax.lax.scan(lambda x, _: (x - 1e-4 * grad(x), None), X0, None,
                            length=steps)[0]

    @jax.jit
    def scheduled(X0, etas):
        return jax.lax.scan(lambda x, e: (x - e * grad(x), None), X0, etas)[0]

    @jax.jit
    def flagged(X0, etas):
        def body(carry, e):
            x, flag = carry
            xn = x - e * grad(x)
            return (xn, flag | jnp.any(~(jnp.abs(xn) <= 1e8), axis=-1)), None
        # the flags are returned (and waited for): otherwise XLA drops their computation
        return jax.lax.scan(body, (X0, jnp.zeros(X0.shape[0], bool)), etas)[0]

    @jax.jit
    def marked(X0, etas):
        def body(x, e):
            xn = x - e * grad(x)
            return jnp.where((jnp.abs(xn) <= 1e8) & (x == x), xn, jnp.nan), None
        X = jax.lax.scan(body, X0, etas)[0]
        return X, jnp.any(jnp.isnan(X), axis=1)

    def ready(out):
        return jax.tree_util.tree_map(np.asarray, jax.block_until_ready(out))

    rows = [("hand-written scan (the reference)", hand_gd(jax, jnp, X, 1e-4, steps)),
            ("scan of the compiled gradient", lambda: ready(vmapped(jnp.asarray(X)))),
            ("  + a step size per step", lambda: ready(scheduled(jnp.asarray(X), etas))),
            ("  + a 'may have stopped' flag per row", lambda: ready(flagged(jnp.asarray(X),
                                                                         etas))),
            ("  + that mark in the state (NaN) instead", lambda: ready(marked(jnp.asarray(X),
                                                                           etas))),
            ("flowsim gradient_descent(backend='jax')",
             lambda: fs.gradient_descent(loss, X, 1e-4, steps, record="final",
                                         backend="jax")),
            ("  with gtol=1e-3 (starts stop in most blocks)",
             lambda: fs.gradient_descent(loss, X, 1e-4, steps, record="final", gtol=1e-3,
                                         backend="jax"))]
    reference = None
    print(f"{starts:,} starts, {steps:,} steps, JAX on {jax.default_backend()}")
    for label, run in rows:
        seconds, _ = best(run, repeat=5)
        reference = reference or seconds
        print(f"  {label:44s} {seconds:8.4f} s  {seconds / reference:5.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    main(args.starts, args.steps)
