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
    loss = losses.rosenbrock(2)
    X = rng.uniform(-2, 2, size=(10_000, 2))
    batch = per_call(loss.grad, X)
    singles = per_call(lambda pts: [loss.grad(p) for p in pts], X, repeat=3)
    print(f"batch of 10,000 points: one call {batch * 1e3:.3f} ms, 10,000 single calls "
          f"{singles * 1e3:.1f} ms: speed-up {singles / batch:.0f}x (target >= 100x)")


if __name__ == "__main__":
    main()
