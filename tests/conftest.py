import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


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
