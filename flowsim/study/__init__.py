"""Studies: sweeps over losses, methods, step sizes and starts, kept and shared.

``sweep`` (the product, in chunks, on any executor), ``chunk`` (one chunk as one batch, to
tidy rows), ``store`` (``Study``, Parquet on disk, resumable chunk folders) and ``recipes``
(step-size sweeps, basin maps, time to tolerance).
"""
from .store import Study, load_study
from .runner import grid_starts, sweep

__all__ = ["sweep", "Study", "load_study", "grid_starts"]
