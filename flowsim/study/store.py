"""A Study's rows on disk: Parquet files (one per finished chunk while a sweep runs, two for a
saved study), read by pandas, pyarrow, polars, DuckDB or Spark alike, and a store that checks
itself.

Parquet was chosen over netCDF/HDF5 through xarray: the results are tables (one row per run,
long rows of paths), Parquet stores float64 exactly (nan and infinities included), needs one
dependency (pyarrow, which pandas already uses for it) instead of three, and a folder of chunk
files is itself a dataset other tools read without flowsim.

A sweep's folder (:class:`ChunkStore`) holds ``study.json`` (what was swept, the hashes of its
ingredients, the chunks planned), ``manifest.jsonl`` (one line per finished chunk: its key,
rows and the SHA-256 of each file) and the chunk files. A chunk is written to a temporary
name unique to its writer, listed in the manifest, then renamed, so a crash leaves either a
listed chunk or none; one writer at a time holds the folder's lock. Reading trusts nothing:
only listed chunks whose checksums match are read, any other chunk file is refused, and a
study with chunks missing is marked incomplete.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas

from ..results import Picklable

__all__ = ["Study", "load_study", "ChunkStore", "assemble", "StoreError"]

_RUNS, _PATHS, _SPEC, _MANIFEST, _LOCK = ("runs.parquet", "paths.parquet", "study.json",
                                          "manifest.jsonl", ".lock")
FORMAT = 2


class StoreError(ValueError):
    """A folder that does not hold an intact study (a ``ValueError`` in one sentence)."""


def _digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_parquet(frame, path):
    """Write ``frame`` to ``path`` durably; return its SHA-256."""
    frame.to_parquet(path, engine="pyarrow", index=False)
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    return _digest(path)


def _read_parquet(folder, name, sha256):
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        raise StoreError(f"store: {name!r} is listed in {folder!r} but missing; run the sweep "
                         "again with resume=True to redo it.")
    if _digest(path) != sha256:
        raise StoreError(f"store: {name!r} in {folder!r} was changed after it was written "
                         "(its checksum does not match); delete it and its manifest line, "
                         "or resume the sweep in a new folder.")
    return pandas.read_parquet(path, engine="pyarrow")


def _temporary(folder, name):
    return os.path.join(folder, f".tmp-{os.getpid()}-{uuid.uuid4().hex}-{name}")


def _write_json(data, path):
    tmp = _temporary(os.path.dirname(path), os.path.basename(path))
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_json(folder):
    path = os.path.join(folder, _SPEC)
    if not os.path.exists(path):
        raise StoreError(f"path: {folder!r} holds no study.json; it is not a folder written "
                         "by Study.save or a sweep's store=.")
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        raise StoreError(f"path: the study.json in {folder!r} is not readable JSON; the "
                         "folder was damaged.") from None


@dataclass(frozen=True)
class Study(Picklable):
    """The result of :func:`flowsim.sweep`: one row per run, paths when asked for.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per (loss, method, eta, start): ``task``, ``loss``, ``method``, ``eta`` (nan
        for flows), ``start``, ``x0_<variable>`` (start), ``x_<variable>`` (final state; the
        loss's variable names, as in every frame), ``L``, ``status``,
        ``message``, ``t_final`` (the time at which that start stopped), ``steps`` (taken
        by that start), ``nfev``/``ngev``/``nhev`` (that run's own evaluations for schemes
        written as an update rule, whose steps all cost the same; for the others the
        task's evaluations per start, on average),
        ``time_to_tol`` (first time with L - L* <= tol, nan if never or not asked),
        ``deviation`` (largest distance to the gradient flow, when asked), ``minimizer``
        (index of the loss's known minimizer reached, -1 for none).
    paths : pandas.DataFrame or None
        Long rows ``task, start, step, t, x_<variable>.., L`` when the sweep kept paths.
    spec : dict
        What was swept (JSON-serializable), for the record and for resuming.
    complete : bool
        False when chunks of the sweep are missing (an interrupted store, a chunk whose
        worker kept dying); ``missing`` says which.
    missing : tuple of str
        The missing chunks, ``"task T chunk C"``, or the reason they failed.
    """

    runs: pandas.DataFrame = field(repr=False)
    paths: pandas.DataFrame | None = field(default=None, repr=False)
    spec: dict = field(default_factory=dict)
    complete: bool = True
    missing: tuple = ()

    def to_frame(self):
        """The runs, one row each (a ``pandas.DataFrame``)."""
        return self.runs

    def summary(self):
        """A few lines: the size of the sweep and how the runs ended per method."""
        lines = [f"study: {len(self.runs)} runs, {self.runs['task'].nunique()} tasks "
                 f"({', '.join(map(str, self.runs['loss'].unique()))})"]
        if not self.complete:
            lines.append(f"  INCOMPLETE: {len(self.missing)} chunk(s) missing, e.g. "
                         f"{self.missing[0]}")
        table = self.runs.groupby("method")["status"].value_counts().unstack(fill_value=0)
        for method, counts in table.iterrows():
            lines.append(f"  {method:<20s} " + ", ".join(f"{int(v)} {k}" for k, v in
                                                        counts.items() if v))
        return "\n".join(lines)

    def save(self, path):
        """Write the study to the folder ``path``, replacing any study there:
        ``runs.parquet``, ``paths.parquet`` (when kept) and ``study.json`` with their
        checksums; :func:`load_study` reads it back exactly and checks them."""
        from .._validate import writable_folder
        path = writable_folder(path, "path")
        os.makedirs(path, exist_ok=True)
        with _locked(path):
            files = {}
            for name, frame in ((_RUNS, self.runs), (_PATHS, self.paths)):
                if frame is not None:
                    tmp = _temporary(path, name)
                    files[name] = (tmp, _write_parquet(frame, tmp))
            _clear(path, keep={os.path.basename(tmp) for tmp, _ in files.values()})
            for name, (tmp, _) in files.items():
                os.replace(tmp, os.path.join(path, name))
            _write_json({"format": FORMAT, "kind": "saved", "spec": self.spec,
                         "files": {name: digest for name, (_, digest) in files.items()},
                         "complete": self.complete, "missing": list(self.missing)},
                        os.path.join(path, _SPEC))
        return path

    def __repr__(self):
        more = "" if self.complete else f", incomplete: {len(self.missing)} missing"
        return f"Study(runs={len(self.runs)}, paths={self.paths is not None}{more})"


def _clear(path, keep):
    """Remove what a previous study left in ``path`` (not other files, not ``keep``)."""
    for name in os.listdir(path):
        ours = name in (_RUNS, _PATHS, _SPEC, _MANIFEST) or name.startswith("chunk-") or \
            name.startswith(".tmp-")
        if ours and name not in keep:
            os.remove(os.path.join(path, name))


@contextlib.contextmanager
def _locked(path):
    """Hold ``path``'s lock: a second writer is refused in one sentence."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    handle = open(os.path.join(path, _LOCK), "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreError(f"store: {path!r} is being written by another sweep; wait for it "
                             "to finish or use another folder.") from None
        yield
    finally:
        handle.close()


def load_study(path):
    """Read a study written by :meth:`Study.save` (or a sweep's ``store=`` folder).

    Only files the study lists, with matching checksums, are read; a store whose sweep did
    not finish loads with ``complete=False`` and ``missing`` naming the chunks.

    Raises
    ------
    ValueError
        Where ``path`` holds no study, a listed file is missing or was changed, or a chunk
        file the manifest does not list is there (a copy, a rename, a foreign file).
    """
    path = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    if not isinstance(path, str) or not os.path.isdir(path):
        raise StoreError(f"path: {path!r} is not a folder written by Study.save or a sweep's "
                         "store=.")
    meta = _read_json(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StoreError(f"path: {path!r} holds a study.json this version does not read "
                         f"(format {meta.get('format') if isinstance(meta, dict) else '?'}); "
                         "run the sweep again.")
    if meta.get("kind") == "saved":
        files = meta.get("files", {})
        runs = _read_parquet(path, _RUNS, files.get(_RUNS))
        paths = _read_parquet(path, _PATHS, files[_PATHS]) if _PATHS in files else None
        return Study(runs, paths, meta.get("spec", {}), bool(meta.get("complete", True)),
                     tuple(meta.get("missing", ())))
    return ChunkStore(path).load()


class ChunkStore:
    """A sweep's folder of finished chunks (see the module docstring).

    Parameters
    ----------
    path : str
        The folder (created by :meth:`open` when its parent exists).
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._lock = None

    # -- writing -----------------------------------------------------------------------------
    def open(self, spec, identity, planned, resume):
        """Take the folder's lock and check it holds this sweep (or nothing) before any work.

        Returns the finished chunks that may be reused: ``{(task, chunk): key}``.

        Raises
        ------
        ValueError
            When the folder holds another sweep (naming the first ingredient that differs),
            holds a study without ``resume=True``, or is being written by another sweep.
        """
        os.makedirs(self.path, exist_ok=True)
        self._lock = _locked(self.path)
        self._lock.__enter__()
        try:
            return self._open(spec, identity, planned, resume)
        except BaseException:
            self.close()
            raise

    def _open(self, spec, identity, planned, resume):
        from .identity import describe_difference
        exists = os.path.exists(os.path.join(self.path, _SPEC))
        if exists and not resume:
            raise StoreError(f"store: {self.path!r} already holds a study; pass resume=True "
                             "to continue its sweep, or use another folder.")
        if exists:
            meta = _read_json(self.path)
            if meta.get("format") != FORMAT or meta.get("kind") != "sweep":
                raise StoreError(f"store: {self.path!r} holds a saved study or an older "
                                 "format, not a sweep to resume; use another folder.")
            different = describe_difference(meta.get("identity", {}), identity)
            if different is not None:
                raise StoreError(f"store: {self.path!r} holds another sweep ({different} "
                                 "differs); resume with the same arguments, or use another "
                                 "folder.")
            done = self._listed()
            self._check_foreign(done)
        else:
            _clear(self.path, keep=())
            done = {}
        _write_json({"format": FORMAT, "kind": "sweep", "spec": spec, "identity": identity,
                     "planned": [list(k) for k in planned]}, os.path.join(self.path, _SPEC))
        for name in os.listdir(self.path):
            if name.startswith(".tmp-"):
                os.remove(os.path.join(self.path, name))   # a crashed writer's leftovers
        return {k: entry["key"] for k, entry in done.items()}

    def put(self, where, key, runs, paths):
        """Write one finished chunk: temporary files, a manifest line, then the names."""
        entry = {"task": int(where[0]), "chunk": int(where[1]), "key": key,
                 "rows": int(len(runs))}
        moves = []
        for kind, frame in (("runs", runs), ("paths", paths)):
            if frame is None:
                continue
            name = self._name(where, kind)
            tmp = _temporary(self.path, name)
            entry[kind] = {"file": name, "sha256": _write_parquet(frame, tmp)}
            moves.append((tmp, os.path.join(self.path, name)))
        with open(os.path.join(self.path, _MANIFEST), "a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        for tmp, final in moves:
            os.replace(tmp, final)

    def get(self, where):
        """The runs and paths of a listed chunk, checked against its checksums."""
        entry = self._listed()[tuple(where)]
        runs = _read_parquet(self.path, entry["runs"]["file"], entry["runs"]["sha256"])
        paths = _read_parquet(self.path, entry["paths"]["file"], entry["paths"]["sha256"]) \
            if "paths" in entry else None
        if len(runs) != entry["rows"]:   # pragma: no cover - the checksum catches it first
            raise StoreError(f"store: {entry['runs']['file']!r} holds {len(runs)} rows, the "
                             f"manifest {entry['rows']}.")
        return runs, paths

    def close(self):
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    # -- reading -----------------------------------------------------------------------------
    @staticmethod
    def _name(where, kind):
        return f"chunk-{where[0]:05d}-{where[1]:05d}.{kind}.parquet"

    def _listed(self):
        """The manifest's entries by (task, chunk), the last line for each winning; a line
        cut short by a crash is skipped."""
        out = {}
        path = os.path.join(self.path, _MANIFEST)
        if not os.path.exists(path):
            return out
        with open(path) as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    out[(int(entry["task"]), int(entry["chunk"]))] = entry
                except (ValueError, KeyError, TypeError):
                    continue
        return out

    def _check_foreign(self, listed):
        names = {e[k]["file"] for e in listed.values() for k in ("runs", "paths") if k in e}
        foreign = sorted(n for n in os.listdir(self.path)
                         if n.startswith("chunk-") and n not in names)
        if foreign:
            raise StoreError(f"store: {self.path!r} holds chunk files its manifest does not "
                             f"list ({foreign[0]}{' and more' if len(foreign) > 1 else ''}); "
                             "remove them, they are not part of this study.")

    def load(self):
        """All listed chunks as one Study, marked incomplete where planned chunks are missing.
        """
        meta = _read_json(self.path)
        listed = self._listed()
        self._check_foreign(listed)
        planned = [tuple(k) for k in meta.get("planned", [])] or sorted(listed)
        present = [k for k in planned if k in listed and os.path.exists(
            os.path.join(self.path, listed[k]["runs"]["file"]))]
        if not present:
            raise StoreError(f"path: {self.path!r} holds no finished chunk yet; run the sweep "
                             "(resume=True continues it).")
        missing = tuple(f"task {t} chunk {c}" for t, c in planned if (t, c) not in present)
        study = assemble([self.get(k) for k in present], meta.get("spec", {}))
        return Study(study.runs, study.paths, study.spec, not missing, missing)


def assemble(parts, spec, missing=()):
    """One Study from chunk results (runs, paths) in key order."""
    runs = pandas.concat([p[0] for p in parts], ignore_index=True)
    kept = [p[1] for p in parts if p[1] is not None]
    paths = pandas.concat(kept, ignore_index=True) if kept else None
    runs = runs.sort_values(["task", "start"], kind="stable").reset_index(drop=True)
    if "_ngev" in runs:  # each run's own count where exact, else the task's mean per start
        exact = runs["_exact"].fillna(False).astype(bool).to_numpy() if "_exact" in runs \
            else np.zeros(len(runs), bool)
        for name in ("nfev", "ngev", "nhev"):
            mean = runs.groupby("task")[f"_{name}"].transform("sum") / \
                runs.groupby("task")["start"].transform("size")
            runs[name] = np.where(exact, runs[f"_{name}"], mean)
        runs = runs.drop(columns=["_nfev", "_ngev", "_nhev", "_exact"], errors="ignore")
    if paths is not None:
        paths = paths.sort_values(["task", "start", "step"], kind="stable") \
            .reset_index(drop=True)
    return Study(runs, paths, spec, not missing, tuple(missing))
