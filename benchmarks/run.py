"""The benchmark suite in one command: work-precision, flowsim against the alternatives,
scaling, and RESULTS.md with every ratio beside its target.

Run: ``python3 benchmarks/run.py [--quick] [--out DIR]``. It writes to DIR (default
``benchmarks/results``): ``RESULTS.md`` (machine, date, every section's output),
``work_precision.png`` / ``.md`` / ``.csv``, and one ``<section>.txt`` per peer comparison.
The committed ``benchmarks/RESULTS.md`` is a copy of a full run.

Sections (each a script that also runs alone):

- ``work_precision.py``: error at T against evaluations and wall time, every ODE method over
  tolerances, every scheme of the gradient flow over step sizes, on the standard problems.
- ``bench_compile.py``: compiled derivatives against scipy's ``rosen_der``/``rosen_hess``.
- ``bench_flow.py``: one flow against raw ``solve_ivp``; batched starts (and diffrax, if
  installed).
- ``bench_schemes.py``: GD against hand-written loops; the proximal step against
  ``scipy.optimize.minimize``.
- ``bench_ensemble.py``: per-start engines against ``solve_ivp`` per start, numba, scaling in
  starts and workers.
- ``bench_study.py``: the 500 x 500 basin map, sweep throughput on each executor.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
#: (section, script, arguments in quick mode (None: full mode only), arguments in full mode)
PEERS = (("compile", "bench_compile.py", ["--max-n", "100"], []),
         ("flow", "bench_flow.py", ["--starts", "1000", "--quick"], []),
         ("schemes", "bench_schemes.py", ["--quick"], []),
         ("ensemble", "bench_ensemble.py", ["--quick"], []),
         ("study", "bench_study.py", ["--quick"], []),
         # JAX's compile times (seconds per program) would double the quick run
         ("jax", "bench_jax.py", None, ["--starts", "1000", "100000"]),
         # every row of the speed targets with its target (full run only, like jax)
         ("targets", "bench_targets.py", None, []),
         # where the JAX backend's batched GD spends its time against bare scans
         ("gd anatomy", "bench_gd_anatomy.py", None, []))


def machine():
    """A few lines describing where the numbers were measured."""
    import numpy
    import scipy
    import flowsim
    return (f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n"
            f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
            f"{platform.release()}\n"
            f"- Python {platform.python_version()}, numpy {numpy.__version__}, scipy "
            f"{scipy.__version__}, flowsim {flowsim.__version__}")


def run_peer(script, args, out, name):
    """Run one comparison script; its printed table, and the seconds it took."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.join(HERE, script), *args],
                          capture_output=True, text=True, cwd=HERE,
                          env=dict(os.environ, MPLBACKEND="Agg"))
    seconds = time.perf_counter() - start
    text = done.stdout + (f"\n(exit status {done.returncode}: {done.stderr.strip()[-500:]})"
                          if done.returncode else "")
    with open(os.path.join(out, f"{name}.txt"), "w") as handle:
        handle.write(text)
    return text, seconds, done.returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a minute or two")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--sections", default="all",
                        help="comma separated: work_precision," +
                             ",".join(p[0] for p in PEERS))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    wanted = None if args.sections == "all" else set(args.sections.split(","))
    sys.path.insert(0, HERE)
    parts = ["# flowsim benchmark results", "", machine(), "",
             f"Mode: {'quick' if args.quick else 'full'}. Ratios are flowsim / reference "
             "measured in the same run (below 1: flowsim is faster) unless a line says "
             "otherwise; targets are printed beside them.", ""]
    failed = 0
    if wanted is None or "work_precision" in wanted:
        import work_precision
        start = time.perf_counter()
        rows = work_precision.main(["--out", args.out] + (["--quick"] if args.quick else []))
        parts += ["## Work-precision", "",
                  f"{len(rows)} runs in {time.perf_counter() - start:.0f} s. Error at T against "
                  "evaluations and wall time: ![work-precision](work_precision.png)", "",
                  open(os.path.join(args.out, "work_precision.md")).read(), ""]
    for name, script, quick_args, full_args in PEERS:
        if (wanted is not None and name not in wanted) or (args.quick and quick_args is None):
            continue
        text, seconds, code = run_peer(script, quick_args if args.quick else full_args,
                                       args.out, name)
        failed += code != 0
        parts += [f"## {name} (`benchmarks/{script}`, {seconds:.0f} s)", "", "```",
                  text.rstrip(), "```", ""]
    with open(os.path.join(args.out, "RESULTS.md"), "w") as handle:
        handle.write("\n".join(parts))
    print(f"wrote {os.path.join(args.out, 'RESULTS.md')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
