"""Studies: a 500 x 500 basin map, and sweep throughput on each executor.

1. ``basin_map(himmelblau, eta=0.01, resolution=500)`` for the flow and GD (250,000 starts
   each), sequential and with 2 processes (target: under a minute on 2 cores).
2. Throughput (starts per second) of one sweep (GD on Himmelblau, 200 steps, 40,000 starts
   in chunks of 2,000) sequential, with 2 processes and on a 2-worker Dask LocalCluster, and
   Dask's overhead per chunk (a sweep of tiny chunks against the same work in one chunk).

Run: ``python3 benchmarks/bench_study.py [--quick]``.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import flowsim as fs  # noqa: E402
from flowsim.study.recipes import basin_map, disagreement  # noqa: E402

QUICK = "--quick" in sys.argv
HIM = fs.losses.himmelblau()


def timed(func, **kwargs):
    start = time.perf_counter()
    out = func(**kwargs)
    return time.perf_counter() - start, out


def basins():
    res = 60 if QUICK else 500
    for workers in (None, 2):
        seconds, study = timed(basin_map, loss=HIM, eta=0.01, resolution=res,
                               methods=("gradient_flow", "gd"), progress=False,
                               workers=workers, chunk_size=25_000)
        print(f"1. basin map {res} x {res}, flow + GD(0.01), workers={workers}: "
              f"{seconds:6.1f} s (target < 60 s); GD differs from the flow on "
              f"{100 * disagreement(study)['gradient_descent']:.2f}% of starts")


def throughput():
    m = 2_000 if QUICK else 40_000
    X = np.random.default_rng(0).uniform(-5, 5, (m, 2))
    kwargs = dict(losses=HIM, methods=("gd",), starts=X, etas=[0.01], steps=200,
                  chunk_size=500 if QUICK else 2_000, progress=False)
    base, reference = timed(fs.sweep, **kwargs)
    print(f"2. sweep of {m:,} GD starts: sequential {m / base:10.0f} starts/s")
    two, study = timed(fs.sweep, workers=2, **kwargs)
    assert study.runs.equals(reference.runs)
    print(f"   2 processes           {m / two:10.0f} starts/s (speed-up {base / two:.2f})")
    try:
        import distributed
    except ImportError:
        print("   dask not installed: pip install 'flowsim[dask]'")
        return
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        fs.sweep(**{**kwargs, "starts": X[:10]}, executor=client)  # warm the workers
        dask_s, study = timed(fs.sweep, executor=client, **kwargs)
        assert study.runs.equals(reference.runs)
        print(f"   Dask LocalCluster (2) {m / dask_s:10.0f} starts/s (speed-up "
              f"{base / dask_s:.2f})")
        small = dict(kwargs, starts=X[:400], steps=5)
        one, _ = timed(fs.sweep, executor=client, **{**small, "chunk_size": 400})
        many, _ = timed(fs.sweep, executor=client, **{**small, "chunk_size": 4})
        print(f"   Dask overhead per chunk: {(many - one) / 99 * 1e3:.1f} ms "
              "(100 chunks of 4 starts against 1 chunk of 400)")


if __name__ == "__main__":
    basins()
    throughput()
