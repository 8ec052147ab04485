import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# what flowsim sets when it first requires JAX (flowsim.backends._persistent_cache), before
# the test modules import diffrax and with it equinox, which reads it once
os.environ.setdefault("EQX_ON_ERROR", "nan")


def central_difference(f, x, h=1e-6):
    """Central finite-difference derivative of f (scalar or vector valued) at x."""
    x = np.asarray(x, dtype=float)
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    return np.stack(cols, axis=-1)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


BENCH = "tests/test_benchmarks.py"


def pytest_collection_modifyitems(session, config, items):
    """When the benchmark-suite tests are collected, run them last and start their quick
    benchmark run now, in a background process: the suite is single-threaded, so on two
    cores it finishes beside the other tests instead of after them."""
    bench = [item for item in items if item.nodeid.startswith(BENCH)]
    if not bench:
        return
    items[:] = [item for item in items if not item.nodeid.startswith(BENCH)] + bench
    out = Path(tempfile.mkdtemp(prefix="flowsim-bench-"))
    root = Path(__file__).parent.parent
    config.flowsim_bench = (out, subprocess.Popen(
        [sys.executable, str(root / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, MPLBACKEND="Agg")))


def pytest_sessionfinish(session, exitstatus):
    started = getattr(session.config, "flowsim_bench", None)
    if started is not None:
        out, process = started
        if process.poll() is None:
            process.kill()
        process.communicate()
        shutil.rmtree(out, ignore_errors=True)
