"""A Study's rows on disk: Parquet files (one per finished chunk while a sweep runs, two for a
saved study), read by pandas, pyarrow, polars, DuckDB or Spark alike.

Parquet was chosen over netCDF/HDF5 through xarray: the results are tables (one row per run,
long rows of paths), Parquet stores float64 exactly (nan and infinities included), needs one
dependency (pyarrow, which pandas already uses for it) instead of three, and a folder of chunk
files is itself a dataset other tools read without flowsim.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pandas

from ..results import Picklable

__all__ = ["Study", "load_study", "ChunkStore", "assemble"]

_RUNS, _PATHS, _SPEC = "runs.parquet", "paths.parquet", "study.json"


def _write(frame, path):
    frame.to_parquet(path, engine="pyarrow", index=False)


def _read(path):
    return pandas.read_parquet(path, engine="pyarrow")


@dataclass(frozen=True)
class Study(Picklable):
    """The result of :func:`flowsim.sweep`: one row per run, paths when asked for.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per (loss, method, eta, start): ``task``, ``loss``, ``method``, ``eta`` (nan
        for flows), ``start``, ``x0_1..``, ``x_1..`` (final state), ``L``, ``status``,
        ``message``, ``t_final``, ``steps`` (taken by that start), ``nfev``/``ngev``/``nhev``
        (the task's evaluations per start, on average),
        ``time_to_tol`` (first time with L - L* <= tol, nan if never or not asked),
        ``deviation`` (largest distance to the gradient flow, when asked), ``minimizer``
        (index of the loss's known minimizer reached, -1 for none).
    paths : pandas.DataFrame or None
        Long rows ``task, start, step, t, x_1.., L`` when the sweep kept paths.
    spec : dict
        What was swept (JSON-serializable), for the record and for resuming.
    """

    runs: pandas.DataFrame = field(repr=False)
    paths: pandas.DataFrame | None = field(default=None, repr=False)
    spec: dict = field(default_factory=dict)

    def to_frame(self):
        """The runs, one row each (a ``pandas.DataFrame``)."""
        return self.runs

    def summary(self):
        """A few lines: the size of the sweep and how the runs ended per method."""
        lines = [f"study: {len(self.runs)} runs, {self.runs['task'].nunique()} tasks "
                 f"({', '.join(map(str, self.runs['loss'].unique()))})"]
        table = self.runs.groupby("method")["status"].value_counts().unstack(fill_value=0)
        for method, counts in table.iterrows():
            lines.append(f"  {method:<20s} " + ", ".join(f"{int(v)} {k}" for k, v in
                                                        counts.items() if v))
        return "\n".join(lines)

    def save(self, path):
        """Write the study to the folder ``path``: ``runs.parquet``, ``paths.parquet`` (when
        kept) and ``study.json``; :func:`load_study` reads it back exactly."""
        os.makedirs(path, exist_ok=True)
        _write(self.runs, os.path.join(path, _RUNS))
        if self.paths is not None:
            _write(self.paths, os.path.join(path, _PATHS))
        with open(os.path.join(path, _SPEC), "w") as handle:
            json.dump(self.spec, handle, indent=1)
        return path

    def __repr__(self):
        return f"Study(runs={len(self.runs)}, paths={self.paths is not None})"


def load_study(path):
    """Read a study written by :meth:`Study.save` (or a sweep's ``store=`` folder).

    Raises
    ------
    ValueError
        Where ``path`` holds no study.
    """
    if not os.path.isdir(path):
        raise ValueError(f"path: {path!r} is not a folder written by Study.save or a sweep's "
                         "store=.")
    if os.path.exists(os.path.join(path, _RUNS)):
        runs = _read(os.path.join(path, _RUNS))
        paths_file = os.path.join(path, _PATHS)
        paths = _read(paths_file) if os.path.exists(paths_file) else None
        with open(os.path.join(path, _SPEC)) as handle:
            spec = json.load(handle)
        return Study(runs, paths, spec)
    store = ChunkStore(path)
    if not store.keys():
        raise ValueError(f"path: {path!r} holds no study (no runs.parquet, no chunk files).")
    return store.study(store.spec())


class ChunkStore:
    """A folder of finished chunks: ``chunk-TTTTT-CCCCC.runs.parquet`` (and ``.paths``), with
    the sweep's spec in ``study.json``, so an interrupted sweep keeps what was done."""

    def __init__(self, path):
        self.path = path

    def open(self, spec, resume):
        """Create the folder, or check it holds a sweep of this ``spec`` when resuming."""
        os.makedirs(self.path, exist_ok=True)
        file = os.path.join(self.path, _SPEC)
        if os.path.exists(file):
            if not resume:
                raise ValueError(f"store: {self.path!r} already holds a sweep; pass "
                                 "resume=True to continue it, or another folder.")
            if self.spec() != spec:
                raise ValueError(f"store: {self.path!r} holds a different sweep; resume with "
                                 "the same arguments, or use another folder.")
        else:
            with open(file, "w") as handle:
                json.dump(spec, handle, indent=1)

    def spec(self):
        with open(os.path.join(self.path, _SPEC)) as handle:
            return json.load(handle)

    def _file(self, key, kind):
        return os.path.join(self.path, f"chunk-{key[0]:05d}-{key[1]:05d}.{kind}.parquet")

    def keys(self):
        """Keys (task, chunk) of the finished chunks."""
        if not os.path.isdir(self.path):
            return set()
        out = set()
        for name in os.listdir(self.path):
            if name.startswith("chunk-") and name.endswith(".runs.parquet"):
                task, chunk = name[len("chunk-"):-len(".runs.parquet")].split("-")
                out.add((int(task), int(chunk)))
        return out

    def put(self, key, runs, paths):
        """Write one finished chunk (paths first: the runs file marks the chunk done)."""
        if paths is not None:
            _write(paths, self._file(key, "paths"))
        tmp = self._file(key, "runs") + ".tmp"
        _write(runs, tmp)
        os.replace(tmp, self._file(key, "runs"))

    def get(self, key):
        runs = _read(self._file(key, "runs"))
        paths_file = self._file(key, "paths")
        return runs, (_read(paths_file) if os.path.exists(paths_file) else None)

    def study(self, spec):
        """All finished chunks as one Study, in key order."""
        parts = [self.get(key) for key in sorted(self.keys())]
        return assemble(parts, spec)


def assemble(parts, spec):
    """One Study from chunk results (runs, paths) in key order."""
    runs = pandas.concat([p[0] for p in parts], ignore_index=True)
    kept = [p[1] for p in parts if p[1] is not None]
    paths = pandas.concat(kept, ignore_index=True) if kept else None
    runs = runs.sort_values(["task", "start"], kind="stable").reset_index(drop=True)
    if "_ngev" in runs:  # chunk totals -> the task's mean evaluations per start
        for name in ("nfev", "ngev", "nhev"):
            runs[name] = runs.groupby("task")[f"_{name}"].transform("sum") / \
                runs.groupby("task")["start"].transform("size")
        runs = runs.drop(columns=["_nfev", "_ngev", "_nhev"])
    if paths is not None:
        paths = paths.sort_values(["task", "start", "step"], kind="stable") \
            .reset_index(drop=True)
    return Study(runs, paths, spec)

