"""Studies: the same rows on every executor and chunking, resumable, saved exactly."""
import os

import numpy as np
import pandas
import pytest

import flowsim as fs
from flowsim.ensemble.workers import process_pool
from flowsim import losses
from flowsim.study.recipes import (basin_map, disagreement, step_size_sweep,
                                   time_to_tolerance)

ROWS_KEY = ["task", "start"]


def _small_sweep(**kwargs):
    X = np.random.default_rng(0).uniform(-3, 3, (23, 2))
    return fs.sweep(losses.himmelblau(), ("gradient_flow", "gd", "hb", "pp"), starts=X,
                    etas=[0.005, 0.02], steps=60, t_end=0.5, progress=False, **kwargs)


def _same(a, b):
    pandas.testing.assert_frame_equal(a.runs, b.runs, check_exact=True)


def test_a_sweep_is_the_product_and_its_rows_follow_the_runs():
    study = _small_sweep(chunk_size=10)
    runs = study.runs
    # the flow once per start, each scheme once per step size and start
    assert len(runs) == 23 * (1 + 3 * 2)
    assert runs.groupby(["method", "eta"], dropna=False).size().tolist() == [23] * 7
    gd = runs[(runs["method"] == "gradient_descent") & (runs["eta"] == 0.02)]
    X = gd[["x0_x", "x0_y"]].to_numpy()
    direct = fs.gradient_descent(losses.himmelblau(), X, 0.02, 60)
    np.testing.assert_array_equal(gd[["x_x", "x_y"]].to_numpy(), direct.x_final)
    assert gd["status"].tolist() == [s.value for s in direct.status]
    np.testing.assert_allclose(gd["L"], direct.values[:, -1])
    assert "study: 161 runs" in study.summary()


def test_the_same_rows_sequentially_in_processes_and_chunked():
    one = _small_sweep(chunk_size=100)
    chunked = _small_sweep(chunk_size=4)
    _same(one, chunked)
    with process_pool(2) as pool:   # a fork server once JAX runs threads here
        _same(one, _small_sweep(chunk_size=5, executor=pool))


def test_the_same_rows_on_a_dask_local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        on_dask = _small_sweep(chunk_size=6, executor=client)
    _same(_small_sweep(chunk_size=100), on_dask)


def test_an_interrupted_sweep_resumes_to_the_same_rows(tmp_path, monkeypatch):
    from flowsim.study import chunk as chunk_module
    store = str(tmp_path / "sweep")
    calls = {"n": 0}
    original = chunk_module.run_chunk

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # the sweep stops after four chunks
        return original(*args)

    import flowsim.study.runner as runner
    monkeypatch.setattr(runner, "run_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        _small_sweep(chunk_size=8, store=store)
    kept = [name for name in os.listdir(store) if name.endswith(".runs.parquet")]
    assert len(kept) == 4
    monkeypatch.setattr(runner, "run_chunk", original)
    with pytest.raises(ValueError, match="resume=True"):
        _small_sweep(chunk_size=8, store=store)
    with pytest.raises(ValueError, match="another sweep .chunk_size differs"):
        _small_sweep(chunk_size=9, store=store, resume=True)
    resumed = _small_sweep(chunk_size=8, store=store, resume=True)
    _same(_small_sweep(chunk_size=8), resumed)
    _same(resumed, fs.load_study(store))


def test_save_and_load_are_exact_with_nan_inf_and_paths(tmp_path):
    study = fs.sweep("x**2 + 10*y**2", ("gd",), starts=[[1.0, 1.0], [0.5, -0.2]],
                     etas=[0.05, 0.3], steps=400, paths=True, tol=1e-8, min_value=0.0,
                     progress=False)
    runs = study.runs
    assert (runs["status"] == "diverged").any()  # eta = 0.3 > 2/20 blows up
    assert runs["time_to_tol"].isna().any() and np.isfinite(runs["time_to_tol"]).any()
    back = fs.load_study(study.save(str(tmp_path / "s")))
    _same(study, back)
    odd = runs.copy()
    odd.loc[0, "L"], odd.loc[1, "L"], odd.loc[2, "deviation"] = np.inf, -np.inf, np.nan
    odd_back = fs.load_study(fs.Study(odd, None, {"note": "inf"}).save(str(tmp_path / "o")))
    pandas.testing.assert_frame_equal(odd, odd_back.runs, check_exact=True)
    pandas.testing.assert_frame_equal(study.paths, back.paths, check_exact=True)
    assert back.spec == study.spec
    path = study.paths[(study.paths["task"] == 0) & (study.paths["start"] == 0)]
    np.testing.assert_allclose(path["x_x"], (1 - 0.1) ** np.arange(401), rtol=1e-12)
    with pytest.raises(ValueError, match="holds no study"):
        fs.load_study(str(tmp_path))


def test_a_basin_map_agrees_with_the_batched_flow():
    him = losses.himmelblau()
    study = basin_map(him, eta=0.01, resolution=100, methods=("gradient_flow", "gd"),
                      progress=False)
    flow = study.runs[study.runs["method"] == "gradient_flow"].sort_values("start")
    X = fs.study.grid_starts(him, 100)
    direct = fs.gradient_flow(him, X, 20.0, method="RK45", rtol=1e-6, atol=1e-9, gtol=1e-4,
                              t_eval=[0.0, 20.0], dense_output=False)
    mins = him.facts.minimizers
    dist = np.linalg.norm(direct.x_final[:, None] - mins[None], axis=2)
    labels = np.where(dist.min(axis=1) < 1e-3 * (1 + np.abs(mins).max()), dist.argmin(axis=1),
                      -1)
    np.testing.assert_array_equal(flow["minimizer"].to_numpy(), labels)
    counts = np.bincount(labels[labels >= 0], minlength=4)
    assert counts.sum() > 0.99 * len(X) and np.all(counts > 0.15 * len(X))
    assert disagreement(study)["gradient_descent"] < 0.02


def test_step_size_sweep_marks_the_stability_limit():
    study = step_size_sweep("x**2/2 + 2*y**2", [1.0, 1.0], [0.2, 0.45, 0.55, 0.8],
                            ("gd", "hb"), 300, progress=False)
    assert study.spec["max_stable_step"] == pytest.approx(0.5)
    gd = study.runs[study.runs["method"] == "gradient_descent"]
    assert gd["status"].tolist() == ["reached_end", "reached_end", "diverged", "diverged"]
    import matplotlib
    matplotlib.use("Agg")
    from flowsim import plot
    ax = plot.step_size_picture(study)
    assert any("2/lambda_max" in t.get_text() for t in ax.get_legend().get_texts())


def test_time_to_tolerance_matches_the_closed_form():
    # GD on |x|^2/2 from |x0| = 1: L = (1 - eta)^(2k) / 2 <= tol first at k* below
    tol, eta = 1e-6, 0.1
    study = time_to_tolerance("x**2/2 + y**2/2", [[1.0, 0.0], [0.0, 1.0]], tol=tol,
                              methods=("gd",), eta=eta, steps=500, min_value=0.0,
                              progress=False)
    k = np.ceil(np.log(2 * tol) / (2 * np.log(1 - eta)))
    np.testing.assert_allclose(study.runs["time_to_tol"], eta * k, rtol=1e-12)


def test_sweep_arguments_are_checked_first():
    with pytest.raises(ValueError, match="etas and steps are required"):
        fs.sweep("x**2", ("gd",), starts=[[1.0]])
    with pytest.raises(ValueError, match="unknown method"):
        fs.sweep("x**2", ("adamw",), starts=[[1.0]], etas=[0.1], steps=3)
    with pytest.raises(ValueError, match="starts"):
        fs.sweep("x**2", ("gd",), etas=[0.1], steps=3)
    with pytest.raises(TypeError, match="executor"):
        fs.sweep("x**2", ("gd",), starts=[[1.0]], etas=[0.1], steps=3, executor=3)
