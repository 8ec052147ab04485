"""Compiled derivatives against scipy's hand-written rosen_der / rosen_hess, in one run.

Run: python benchmarks/bench_compile.py [--max-n 1000]

Reports ratios (ours / reference, lower is faster) for the chained Rosenbrock function:
gradient at n = 2, 100, 1000; dense and sparse Hessian; the compile time of gradient plus
sparse Hessian; and one batched call on 10,000 points against 10,000 single calls.
"""
import argparse

import numpy as np
from scipy.optimize import rosen_der, rosen_hess

import os as _os
import sys as _sys

_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
from _timing import once, per_call, row
from flowsim import losses


def peers(rng, max_n):
    """The gradient against sympy's plain lambdify and jax.jit(jax.grad) (when installed)."""
    import sympy as sp
    for n in [m for m in (2, 100, 1000) if m <= max_n]:
        loss = losses.rosenbrock(n)
        x = rng.uniform(-1, 1, n)
        plain = sp.lambdify(list(loss.variables), [loss.expr.diff(v) for v in loss.variables],
                            "numpy")
        assert np.allclose(plain(*x), loss.grad(x))
        row(f"  grad n={n} vs sympy lambdify (no cse)", per_call(loss.grad, x),
            per_call(lambda p: plain(*p), x))
        if n > 2 and max_n < 1000:
            continue   # quick run: JAX's trace of the n-term sum takes seconds to compile
        try:
            import jax
        except ImportError:
            if n == 2:
                print("  jax not installed: pip install jax to time jax.jit(jax.grad)")
            continue
        jax.config.update("jax_enable_x64", True)  # pragma: no cover - optional peer
        f = jax.jit(jax.grad(lambda z: sum(100 * (z[i + 1] - z[i] ** 2) ** 2 + (1 - z[i]) ** 2
                                           for i in range(n - 1))))
        f(x).block_until_ready()
        row(f"  grad n={n} vs jax.jit(jax.grad) (warm)", per_call(loss.grad, x),
            per_call(lambda p: f(p).block_until_ready(), x))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-n", type=int, default=1000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'case':<44s} {'flowsim':>15s} {'reference':>15s} {'ratio':>9s}")
    for n in [m for m in (2, 100, 1000) if m <= args.max_n]:
        seconds, loss = once(losses.rosenbrock, n)
        print(f"rosenbrock({n}): compile value+grad+sparse Hessian {seconds:.2f} s "
              f"(backend {loss.backend}; target < 5 s at n = 1000)")
        x = rng.uniform(-1, 1, n)
        assert np.allclose(loss.grad(x), rosen_der(x)) and np.allclose(loss.hess(x), rosen_hess(x))
        target = "< 1 (faster)" if n == 2 else "<= 1.5"
        row(f"  grad n={n} vs rosen_der", per_call(loss.grad, x), per_call(rosen_der, x), target)
        row(f"  dense hess n={n} vs rosen_hess", per_call(loss.hess, x),
            per_call(rosen_hess, x), "<= 1" if n == 100 else None)
        row(f"  sparse hess n={n} vs rosen_hess", per_call(lambda p: loss.hess(p, sparse=True), x),
            per_call(rosen_hess, x))
    peers(rng, args.max_n)
    sizes = [n for n in (2, 10, 100, 300, 1000) if n <= args.max_n]
    # b = 100.5: expressions not compiled before in this process (kernels are cached by
    # expression), so each time is a full compile
    seconds = [once(losses.rosenbrock, n, 100.5)[0] for n in sizes]
    big = [i for i, n in enumerate(sizes) if n >= 100]  # past the one-point kernels (n <= 12)
    fit = (f"; fitted exponent from n = 100 on: "
           f"{np.polyfit(np.log(np.array(sizes)[big]), np.log(np.array(seconds)[big]), 1)[0]:.2f}"
           if len(big) > 1 else " (the exponent needs --max-n 1000)")
    print("compile time against n: " + ", ".join(f"n={n}: {t:.3f} s" for n, t in
                                                 zip(sizes, seconds)) + fit)
    loss = losses.rosenbrock(2)
    X = rng.uniform(-2, 2, size=(10_000, 2))
    batch = per_call(loss.grad, X)
    singles = per_call(lambda pts: [loss.grad(p) for p in pts], X, repeat=3)
    print(f"batch of 10,000 points: one call {batch * 1e3:.3f} ms, 10,000 single calls "
          f"{singles * 1e3:.1f} ms: speed-up {singles / batch:.0f}x (target >= 100x)")


if __name__ == "__main__":
    main()
