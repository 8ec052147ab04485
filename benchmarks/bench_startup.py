"""Start-up, measured as whole processes against the references they are held to.

* ``import flowsim`` against ``import numpy, sympy`` (target: within 1.2x);
* ``flowsim --help`` against ``python -c "import argparse"`` (target: within 1.5x);
* ``import flowsim`` then its first real call (a compiled loss and one gradient flow), to
  show where the cost went (it is paid on first use, not at import).

Run: ``python3 benchmarks/bench_startup.py [--repeat N]``. Prints the best of N wall times
of each command and the ratios beside their targets.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

COMMANDS = {
    "import flowsim": [sys.executable, "-c", "import flowsim"],
    "import numpy, sympy": [sys.executable, "-c", "import numpy, sympy"],
    "flowsim --help": [sys.executable, "-m", "flowsim", "--help"],
    "python + argparse": [sys.executable, "-c", "import argparse"],
    "first gradient flow": [sys.executable, "-c",
                            "import flowsim as fs; fs.gradient_flow('x**2 + y**2', [1.0, 1.0], "
                            "1.0)"],
}
TARGETS = (("import flowsim", "import numpy, sympy", 1.2),
           ("flowsim --help", "python + argparse", 1.5))


def best_of(command, repeat):
    """The shortest wall time of ``repeat`` runs of ``command`` (seconds)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    measured = {name: best_of(cmd, args.repeat) for name, cmd in COMMANDS.items()}
    print("| command | best wall time (s) |\n| --- | --- |")
    for name, seconds in measured.items():
        print(f"| {name} | {seconds:.3f} |")
    print("\n| ratio | measured | target |\n| --- | --- | --- |")
    for name, reference, target in TARGETS:
        ratio = measured[name] / measured[reference]
        print(f"| {name} / {reference} | {ratio:.2f}x | <= {target}x "
              f"{'(met)' if ratio <= target else '(NOT met)'} |")


if __name__ == "__main__":
    main()
