"""Compile a named loss and print its gradient and Hessian at a point.

Usage: python examples/inspect_loss.py [NAME] [--x0 X1,X2,...]
"""
import argparse

import numpy as np

from flowsim import losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="rosenbrock", choices=sorted(losses.NAMED))
    parser.add_argument("--x0", default=None, help="point, comma separated (default: zeros)")
    args = parser.parse_args(argv)
    loss = losses.NAMED[args.name]()
    x = np.zeros(loss.n) if args.x0 is None else np.array(args.x0.split(","), dtype=float)
    print(f"{loss.facts.name}: L = {loss.expr}   (backend: {loss.backend})")
    print(f"at x = {x}:")
    print(f"  L(x)      = {loss.value(x):.12g}")
    print(f"  grad L(x) = {loss.grad(x)}")
    print(f"  hess L(x) =\n{loss.hess(x)}")
    for cp in loss.facts.critical_points:
        print(f"  known {cp.kind:<10s} at {np.round(cp.point, 9)}, L = {loss.value(cp.point):.9g}")


if __name__ == "__main__":
    main()
