"""The benchmark suite runs in quick mode and every section gives finite numbers and its
files (the numbers themselves are never asserted)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas
import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def results(request, tmp_path_factory):
    """The folder of ``benchmarks/run.py --quick``: the run conftest started in the background
    at collection (waited for here), or a run started now."""
    started = getattr(request.config, "flowsim_bench", None)
    if started is None:
        out = tmp_path_factory.mktemp("bench")
        process = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "run.py"),
                                    "--quick", "--out", str(out)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True,
                                   env=dict(os.environ, MPLBACKEND="Agg"))
    else:
        out, process = started
    try:
        _, stderr = process.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, stderr[-2000:]
    return out


def test_every_section_writes_its_files_and_finite_numbers(results):
    text = (results / "RESULTS.md").read_text()
    for section in ("Work-precision", "compile", "flow", "schemes", "ensemble", "study"):
        assert f"## {section}" in text
    assert "exit status" not in text and "Traceback" not in text
    assert (results / "work_precision.png").stat().st_size > 20_000
    for name in ("compile", "flow", "schemes", "ensemble", "study"):
        body = (results / f"{name}.txt").read_text()
        numbers = [float(v) for v in re.findall(r"(?<![\w.])\d+\.\d+(?:e[-+]?\d+)?", body)]
        assert numbers and all(np.isfinite(numbers)), name
        assert not re.search(r"\bnan\b|\binf\b", body), name


def test_work_precision_covers_every_method_and_problem(results):
    rows = pandas.read_csv(results / "work_precision.csv")
    assert rows["problem"].nunique() >= 6
    for method in ("RK45", "DOP853", "Radau", "BDF", "LSODA", "gd", "pp", "heun"):
        assert method in set(rows["method"])
    finite = np.isfinite(rows["error"])
    assert finite.mean() > 0.9 and (rows.loc[finite, "error"] >= 0).all()
    assert (rows["evaluations"] > 0).all() and (rows["seconds"] > 0).all()


def test_the_asv_classes_run():
    sys.path.insert(0, str(ROOT))
    from benchmarks import asv_benchmarks as suite
    for cls in (suite.Derivatives, suite.OneFlow, suite.ManyStarts, suite.Accuracy):
        params = getattr(cls, "params", [None])
        for p in params[:1]:
            bench = cls()
            args = () if p is None else (p,)
            bench.setup(*args)
            for name in dir(bench):
                if name.startswith(("time_", "track_")):
                    value = getattr(bench, name)(*args)
                    if name.startswith("track_"):
                        assert np.isfinite(value) and value < 1e-2
