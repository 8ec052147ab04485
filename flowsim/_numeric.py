"""Overflow-safe norms, whole-row moves and blocks of rows: the numeric helpers every room
below the results uses."""
from __future__ import annotations

import numpy as np

__all__ = ["row_norms", "safe_norm", "as_rows", "row_blocks", "BLOCK_ENTRIES", "BLOCK_ROWS_MIN"]

#: Numbers of state (starts x state size) that a batch advances together: a block's arrays
#: stay in the caches. The per-start engines (Dormand-Prince, rtol 1e-6, 101 outputs): 1e5
#: Rosenbrock starts in 2 variables, 6.35 s at once, 5.3 s in blocks of 16,384 or 32,768
#: rows, 5.7 s in blocks of 8,192; 4e4 starts in 10 variables, 5.4 s at once, 2.96 s in
#: blocks of 4,096 or 8,192 rows, 3.3 s in blocks of 2,048. Gradient descent, 1e5 starts in
#: 2 variables, 1,000 steps: 0.55 s at once, 0.42 s in blocks of 25,000 rows.
BLOCK_ENTRIES = 65_536
#: Never fewer rows a block than this (a loop's Python costs a step whatever the rows).
BLOCK_ROWS_MIN = 2_048


def row_norms(a):
    """Euclidean norms along the last axis, shape ``a.shape[:-1]``.

    One einsum pass (sum of squares) then a square root: measured against ``(a * a).sum(-1)``
    and ``np.linalg.norm(a, axis=-1)``: 4 million 2-vectors 32 ms against 169 ms and 206 ms,
    100,000 8-vectors 0.52 ms against 2.5 ms and 5.2 ms. Two columns are added as two
    column products instead, bit for bit the same sums in about half einsum's time (32,768
    2-vectors 0.07 ms against 0.27 ms, 1e6 4.4 ms against 7.9 ms); from three columns on
    einsum is as fast or faster. Rows whose squares overflow (entries past 1.3e154) are
    measured again by :func:`safe_norm`, so a huge but finite row has a finite norm.
    """
    a = np.asarray(a)
    with np.errstate(over="ignore", under="ignore"):
        if a.ndim and a.shape[-1] == 2:   # two columns: half einsum's time, the same bits
            out = np.sqrt(a[..., 0] * a[..., 0] + a[..., 1] * a[..., 1])
        else:
            out = np.sqrt(np.einsum("...i,...i->...", a, a))
    if np.ndim(out) == 0:
        return out if np.isfinite(out) else safe_norm(a)
    if not out.max(initial=0.0) < np.inf:   # (one pass; NaN rows land here too)
        big = np.isinf(out)
        if big.any():  # squares overflowed for entries past 1.3e154: scale those rows
            out[big] = [safe_norm(row) for row in a[big]]
    return out


def safe_norm(x):
    """|x| without overflow or underflow: scaled by max |x_i| (inf for non-finite entries)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(all="ignore"):
        top = np.max(np.abs(x)) if x.size else 0.0
        if not np.isfinite(top):
            return np.inf
        if top == 0:
            return 0.0
        return float(top * np.sqrt(np.sum((x / top) ** 2)))


def as_rows(a):
    """The rows of a C-contiguous (m, d) float array as m single items, shape (m,).

    A view (a void dtype of d floats): writing ``as_rows(out)[at] = as_rows(Y)`` moves whole
    rows at once, which numpy's fancy indexing of a 2-D array does element by element.
    Measured for 100,000 rows of 2 floats: 0.45 ms against 20 ms; 10,000 rows: 0.018 ms
    against 0.11 ms (8 floats: 0.12 against 0.15 ms). The bytes are moved unchanged. Always
    a view (writes go through to ``a``): an array whose rows are not contiguous raises
    instead of being copied.
    """
    a = np.asarray(a)
    if not a.flags.c_contiguous:
        raise ValueError("as_rows needs a C-contiguous array (a copy would take the writes)")
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[-1]))).reshape(a.shape[:-1])


def row_blocks(m, d):
    """The slices of m starts of state size d that a batch runs one block after another
    (:data:`BLOCK_ENTRIES` numbers each, at least :data:`BLOCK_ROWS_MIN` rows); only for
    loops in which a start's numbers do not depend on the other starts'."""
    rows = max(BLOCK_ROWS_MIN, BLOCK_ENTRIES // max(d, 1))
    return [slice(i, min(i + rows, m)) for i in range(0, m, rows)] or [slice(0, 0)]
