"""The JAX backend: batched flows (diffrax) and schemes (``lax.scan``) on a GPU or JAX's CPU.

An optional extra (``pip install "flowsim[jax]"``). ``backend="jax"`` on
:func:`flowsim.gradient_flow` and on the schemes that accept it (``methods.get(name).accepts``
holds ``"jax"``) runs the same update rules as the numpy path, from the same symbolic
expressions (:mod:`flowsim.jax_backend.compiled`), in float64, and returns the same
``Trajectory`` / ``BatchTrajectory`` with per-start statuses. Rooms: ``compiled`` (the loss as
JAX functions), ``flows`` (diffrax), ``schemes`` (the scan driver), ``updates`` (each
scheme's step on JAX), ``programs`` (traced programs kept between processes).
"""
from __future__ import annotations

from ..backends import BACKENDS, available, key_seed, on_jax, require

__all__ = ["available", "require", "on_jax", "key_seed", "BACKENDS"]
