"""Studies tried as an adversary would: kill -9 a sweep and resume, kill a worker mid-chunk,
tamper with, truncate, add and rename chunk files, two writers on one store, resume with each
ingredient changed, numbers as text and numpy integers, sizes past the memory limit.

The oracle is always the uninterrupted sequential run of the same sweep.
"""
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc

import numpy as np
import pandas
import pytest

import flowsim as fs
from flowsim import losses
from flowsim.study import chunk as chunk_module
from flowsim.study.store import ChunkStore

HIMMELBLAU_STARTS = np.random.default_rng(3).uniform(-4, 4, (24, 2))


def _sweep(**kwargs):
    args = dict(starts=HIMMELBLAU_STARTS, etas=[0.01, 0.02], steps=40, progress=False,
                chunk_size=4)
    args.update(kwargs)
    return fs.sweep(args.pop("loss", losses.himmelblau()), args.pop("methods", ("gd", "hb")),
                    **args)


def _same(a, b):
    pandas.testing.assert_frame_equal(a.runs, b.runs, check_exact=True)


REFERENCE = None


def _reference():
    global REFERENCE
    if REFERENCE is None:
        REFERENCE = _sweep()
    return REFERENCE


def _manifest_lines(store):
    path = os.path.join(store, "manifest.jsonl")
    return open(path).read().count("\n") if os.path.exists(path) else 0


def _chunks_written(store):
    return len([n for n in os.listdir(store) if n.startswith("chunk-") and "runs" in n]) \
        if os.path.isdir(store) else 0


# -- kill -9 at random points, then resume ----------------------------------------------------
SLOW_SWEEP = textwrap.dedent("""
    import sys, time
    import numpy as np
    import flowsim as fs
    from flowsim import losses
    from flowsim.study import chunk, runner
    original = chunk.run_chunk
    def slow(*args, **kwargs):
        time.sleep(0.05)
        return original(*args, **kwargs)
    runner.run_chunk = slow
    X = np.random.default_rng(3).uniform(-4, 4, (24, 2))
    fs.sweep(losses.himmelblau(), ("gd", "hb"), starts=X, etas=[0.01, 0.02], steps=40,
             progress=False, chunk_size=4, store=sys.argv[1])
""")


@pytest.mark.parametrize("after", [1, 5, 11])
def test_a_sweep_killed_at_any_point_resumes_to_the_uninterrupted_rows(tmp_path, after):
    store = str(tmp_path / "store")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SWEEP, store])
    deadline = time.time() + 60
    while _chunks_written(store) < after and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < _manifest_lines(store) < 24
    partial = fs.load_study(store)
    assert not partial.complete and partial.missing and "INCOMPLETE" in partial.summary()
    resumed = _sweep(store=store, resume=True)
    assert resumed.complete
    _same(_reference(), resumed)
    assert not resumed.runs.duplicated(["task", "start"]).any()
    _same(_reference(), fs.load_study(store))


# -- workers that die --------------------------------------------------------------------------
def _dies_once(task, rows, X, **kwargs):
    """Kills its worker the first time it runs the chunk starting at row 8 (the flag file is
    named in the loss's name: a worker may start from a fork server, without the test's
    environment)."""
    flag = task.loss_name.split("=", 1)[1]
    if rows[0] == 8 and task.index == 1 and not os.path.exists(flag):
        open(flag, "w").close()
        os._exit(1)
    return chunk_module.run_chunk(task, rows, X, **kwargs)


def _always_dies(task, rows, X, **kwargs):
    """Kills its worker whenever it runs the chunk starting at row 8 of task 1."""
    if rows[0] == 8 and task.index == 1 and not kwargs.get("reason"):
        os._exit(1)
    return chunk_module.run_chunk(task, rows, X, **kwargs)


def test_a_worker_killed_mid_chunk_is_retried_and_the_rows_are_exact(tmp_path, monkeypatch):
    import flowsim.study.runner as runner
    ref = _reference().runs
    monkeypatch.setattr(runner, "run_chunk", _dies_once)
    store = str(tmp_path / "store")
    name = f"flag={tmp_path / 'died'}"
    study = _sweep(workers=2, store=store, loss={name: losses.himmelblau()})
    assert os.path.exists(tmp_path / "died")        # the worker did die
    assert study.complete
    ref = ref.assign(loss=name)
    pandas.testing.assert_frame_equal(ref, study.runs, check_exact=True)
    pandas.testing.assert_frame_equal(ref, fs.load_study(store).runs, check_exact=True)


def test_a_chunk_that_always_kills_its_worker_becomes_failed_rows(tmp_path, monkeypatch):
    import flowsim.study.runner as runner
    ref = _reference().runs
    monkeypatch.setattr(runner, "run_chunk", _always_dies)
    store = str(tmp_path / "store")
    study = _sweep(workers=2, store=store)
    assert not study.complete and "died" in study.missing[0]
    bad = (study.runs["task"] == 1) & study.runs["start"].between(8, 11)
    assert (study.runs.loc[bad, "status"] == "failed").all()
    assert study.runs.loc[bad, "message"].str.contains("worker process").all()
    pandas.testing.assert_frame_equal(study.runs[~bad].drop(columns=["nfev", "ngev", "nhev"]),
                                      ref[~bad].drop(columns=["nfev", "ngev", "nhev"]),
                                      check_exact=True)
    # every finished chunk is on disk; the failed one is not, so a resume redoes it
    loaded = fs.load_study(store)
    assert not loaded.complete and loaded.missing == ("task 1 chunk 2",)
    monkeypatch.undo()
    _same(_reference(), _sweep(store=store, resume=True))


def _dies_in_flow_chunk(run, loss, X, *args, **kwargs):
    """Kills its worker whenever it runs the chunk that starts at start 6."""
    if X[0, 0] == HIMMELBLAU_STARTS[6, 0]:
        os._exit(1)
    return _ON_COPY(run, loss, X, *args, **kwargs)


_ON_COPY = __import__("flowsim.ensemble.workers", fromlist=["_on_copy"])._on_copy


def test_a_batch_on_workers_survives_a_dying_worker(monkeypatch):
    from flowsim.ensemble import workers
    monkeypatch.setattr(workers, "_on_copy", _dies_in_flow_chunk)
    him = losses.himmelblau()
    batch = fs.gradient_descent(him, HIMMELBLAU_STARTS[:12], 0.01, 30, workers=2,
                                chunk_size=3)
    ref = fs.gradient_descent(him, HIMMELBLAU_STARTS[:12], 0.01, 30)
    assert [s.value for s in batch.status[6:9]] == ["failed"] * 3
    assert "worker process" in batch.message[6]
    keep = np.r_[0:6, 9:12]
    np.testing.assert_array_equal(batch.xs[keep], ref.xs[keep])


def test_a_loss_with_a_raised_budget_travels_to_a_fresh_process(tmp_path):
    deep = "x"
    for _ in range(120):                       # deeper than the default budget's 100
        deep = f"sin({deep})"
    loss = fs.Loss(deep + " + x**2", budget={"depth": 200, "derivative_ops": 10 ** 7})
    with pytest.raises(ValueError, match="depth"):
        fs.Loss(deep + " + x**2")
    path = tmp_path / "loss.pkl"
    path.write_bytes(pickle.dumps(loss))
    code = (f"import pickle; L = pickle.load(open({str(path)!r}, 'rb')); "
            "print(float(L.value([0.3])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == pytest.approx(float(loss.value([0.3])), rel=1e-14)


def test_a_thread_pool_counts_each_chunk_on_its_own():
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        threaded = _sweep(executor=pool)
    _same(_reference(), threaded)
    him = losses.himmelblau()
    with ThreadPoolExecutor(3) as pool:
        batch = fs.heun(him, HIMMELBLAU_STARTS, 0.01, 20, executor=pool, chunk_size=5)
    assert batch.ngev == fs.heun(him, HIMMELBLAU_STARTS, 0.01, 20).ngev


# -- a store that checks itself ----------------------------------------------------------------
@pytest.fixture
def stored(tmp_path):
    store = str(tmp_path / "store")
    _sweep(store=store)
    return store


def _chunk_files(store):
    return sorted(n for n in os.listdir(store) if n.startswith("chunk-"))


def test_a_tampered_chunk_is_refused(stored):
    name = _chunk_files(stored)[3]
    frame = pandas.read_parquet(os.path.join(stored, name))
    frame.loc[0, "L"] = -1.0
    frame.to_parquet(os.path.join(stored, name), index=False)
    with pytest.raises(ValueError, match="changed after it was written"):
        fs.load_study(stored)
    with pytest.raises(ValueError, match="changed after it was written"):
        _sweep(store=stored, resume=True)


def test_a_truncated_chunk_is_refused_in_one_sentence(stored):
    path = os.path.join(stored, _chunk_files(stored)[0])
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])
    with pytest.raises(ValueError, match="checksum") as info:
        fs.load_study(stored)
    assert "\n" not in str(info.value)


def test_extra_and_renamed_chunk_files_are_refused(stored):
    files = _chunk_files(stored)
    extra = os.path.join(stored, "chunk-00001-00099.runs.parquet")
    with open(extra, "wb") as handle:
        handle.write(open(os.path.join(stored, files[0]), "rb").read())
    with pytest.raises(ValueError, match="does not list"):
        fs.load_study(stored)
    os.remove(extra)
    os.rename(os.path.join(stored, files[1]), os.path.join(stored, "chunk-00009-00000.runs"
                                                           ".parquet"))
    with pytest.raises(ValueError, match="does not list"):
        fs.load_study(stored)


def test_a_missing_study_json_and_an_empty_folder_are_refused(stored, tmp_path):
    os.remove(os.path.join(stored, "study.json"))
    with pytest.raises(ValueError, match="no study.json"):
        fs.load_study(stored)
    with pytest.raises(ValueError, match="not a folder"):
        fs.load_study(str(tmp_path / "nowhere"))


def test_saving_over_a_study_replaces_it_entirely(tmp_path):
    folder = str(tmp_path / "s")
    with_paths = _sweep(paths=True, steps=5)
    with_paths.save(folder)
    plain = _sweep(steps=5)
    plain.save(folder)
    assert "paths.parquet" not in os.listdir(folder)
    back = fs.load_study(folder)
    assert back.paths is None
    _same(plain, back)
    _sweep(store=str(tmp_path / "sweep"))
    plain.save(str(tmp_path / "sweep"))               # a sweep's folder becomes a saved one
    assert not [n for n in os.listdir(tmp_path / "sweep") if n.startswith("chunk-")]
    _same(plain, fs.load_study(str(tmp_path / "sweep")))


def test_two_writers_on_one_store_are_refused(tmp_path):
    store = str(tmp_path / "store")
    holder = ChunkStore(store)
    holder.open({}, {"x": "1"}, [], resume=False)
    try:
        with pytest.raises(ValueError, match="being written by another sweep"):
            _sweep(store=store)
    finally:
        holder.close()
    assert not _chunk_files(store)


# -- resume refuses another sweep --------------------------------------------------------------
def _quadratic(A):
    return losses.quadratic(np.array(A, dtype=float))


CHANGES = {
    "other starts of the same shape": dict(starts=HIMMELBLAU_STARTS + 0.25),
    "another loss under the same name": dict(loss={"L": fs.Loss("(x - 1)**2 + y**2")}),
    "other parameter values": dict(loss={"L": fs.Loss("a*x**2 + y**2",
                                                       params={"a": 2.0})}),
    "a quadratic with another matrix": dict(loss={"L": _quadratic([[2, 0], [0, 3]])}),
    "another min_value": dict(min_value=1.0, tol=1e-3),
    "the variables in another order": dict(loss={"L": fs.Loss("x**2 + 3*y**2",
                                                              variables=["y", "x"])}),
    "other options": dict(options={"hb": {"momentum": 0.5}}),
    "another seed": dict(seed=7),
    "other step sizes": dict(etas=[0.01, 0.03]),
    "another chunk size": dict(chunk_size=6),
}
BASES = {
    "another loss under the same name": dict(loss={"L": fs.Loss("x**2 + y**2")}),
    "other parameter values": dict(loss={"L": fs.Loss("a*x**2 + y**2", params={"a": 1.0})}),
    "a quadratic with another matrix": dict(loss={"L": _quadratic([[2, 0], [0, 1]])}),
    "another min_value": dict(min_value=0.0, tol=1e-3),
    "the variables in another order": dict(loss={"L": fs.Loss("x**2 + 3*y**2")}),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_resume_refuses_a_store_of_another_sweep(tmp_path, change):
    store = str(tmp_path / "store")
    _sweep(store=store, steps=3, **BASES.get(change, {}))
    with pytest.raises(ValueError, match="holds another sweep") as info:
        _sweep(store=store, steps=3, resume=True, **CHANGES[change])
    assert "\n" not in str(info.value)
    assert not [n for n in os.listdir(store) if n.startswith(".tmp-")]


def test_a_basin_map_with_other_bounds_is_another_sweep(tmp_path):
    from flowsim.study.recipes import basin_map
    store = str(tmp_path / "store")
    basin_map(losses.himmelblau(), resolution=4, steps=5, methods=("gd",), store=store,
              progress=False)
    with pytest.raises(ValueError, match="starts differs"):
        basin_map(losses.himmelblau(), resolution=4, steps=5, methods=("gd",), store=store,
                  resume=True, bounds=(-4, 4), progress=False)


# -- arguments and memory -----------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, -1, 2.5, "2", False])
def test_sweep_workers_are_checked_in_one_sentence(workers):
    with pytest.raises((TypeError, ValueError), match="workers") as info:
        _sweep(workers=workers)
    assert "\n" not in str(info.value)


def test_workers_are_capped_by_the_work(monkeypatch):
    from flowsim.ensemble import workers as workers_module
    sizes = []
    original = workers_module.process_pool

    def spy(n):
        sizes.append(n)
        return original(n)
    monkeypatch.setattr(workers_module, "process_pool", spy)
    fs.sweep("x**2 + y**2", ["gd"], starts=[[1.0, 1.0]], etas=[0.1, 0.2], steps=3,
             workers=64, progress=False)
    assert sizes and max(sizes) <= min(2, os.cpu_count())


def test_numpy_integer_seeds_are_the_same_seed_and_save(tmp_path):
    fit = fs.Loss.from_samples("(a*x - y)**2", {"x": [1.0, 2.0, 3.0], "y": [2.0, 3.0, 7.0]},
                               ["a"])
    a = fs.sweep(fit, ["sgd"], starts=[[0.0]], etas=[0.05], steps=20, seed=0,
                 progress=False)
    b = fs.sweep(fit, ["sgd"], starts=[[0.0]], etas=[0.05], steps=20, seed=np.int64(0),
                 progress=False)
    _same(a, b)
    fs.load_study(b.save(str(tmp_path / "s")))


def test_options_are_refused_before_any_chunk_is_stored(tmp_path):
    for options, match in (({"gd": {"bogus": 1}}, "bogus"),
                           ({"hb": {"momentum": 2.0}}, "momentum"),
                           ({"nosuch": {}}, "nosuch")):
        store = str(tmp_path / f"store-{match}")
        with pytest.raises(ValueError, match=match):
            _sweep(store=store, options=options)
        assert not os.path.exists(store) or not _chunk_files(store)


def test_a_bad_store_path_is_refused_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    for bad, match in ((str(tmp_path / "file"), "is a file"),
                       (str(tmp_path / "no" / "such" / "place"), "does not exist")):
        with pytest.raises(ValueError, match=match):
            _sweep(store=bad)


def test_sizes_past_the_limit_are_refused_before_allocating(monkeypatch):
    import flowsim._validate as validate
    limit = 10 ** 6                  # numbers; the default is 5e8 (4 GB)
    monkeypatch.setattr(validate, "MAX_RECORDED", limit)
    X = np.ones((20_000, 2))         # 20,000 starts x 101 outputs x 4 > 1e6
    t_eval = np.linspace(0, 1, 300_000)
    tracemalloc.start()
    try:
        for call in (
                lambda: fs.sweep("x**2 + y**2", ["gd", "hb"], resolution=300, bounds=(-1, 1),
                                 etas=[0.1, 0.2], steps=3, progress=False),
                lambda: fs.sweep("x**2 + y**2", ["gd"], starts=X[:100], etas=[0.1],
                                 steps=5000, paths=True, progress=False),
                lambda: fs.gradient_flow("x**2 + y**2", X, 1.0),
                lambda: fs.gradient_flow("x**2 + y**2", [1.0, 1.0], 1.0, t_eval=t_eval),
                lambda: fs.heavy_ball_flow("x**2 + y**2", X, 1.0),
                lambda: fs.gradient_descent("x**2 + y**2", X, 0.1, 100)):
            with pytest.raises(ValueError, match="the limit is") as info:
                call()
            assert "\n" not in str(info.value)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * limit       # nothing near the refused size was allocated


def test_record_final_keeps_no_per_step_arrays():
    steps, schedule = 40_000, fs.schedules.inverse_time(1e-9, 1e-3)
    fs.heavy_ball("x**2/2 + y**2", [[1.0, 1.0]], schedule, 3, record="final")   # warm
    tracemalloc.start()
    try:
        traj = fs.gradient_descent("x**2/2 + y**2", [[1.0, 1.0], [0.5, 2.0]], 1e-9, steps,
                                   record="final")
        hb = fs.heavy_ball("x**2/2 + y**2", [[1.0, 1.0]], schedule, steps, record="final")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < steps * 8     # less than one float64 per step
    assert traj.ts.tolist() == [0.0, steps * 1e-9]
    exact = np.sum(np.sqrt(schedule(np.arange(steps))))    # the heavy ball's ODE time
    assert hb.ts[-1] == pytest.approx(exact, rel=1e-12)
