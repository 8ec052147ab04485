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

import contextlib

from ..backends import BACKENDS, available, key_seed, on_jax, refuse, require

__all__ = ["available", "require", "on_jax", "key_seed", "BACKENDS", "untraceable"]


@contextlib.contextmanager
def untraceable(owner):
    """A block that traces ``owner`` (a rule or field, named for the message): where it asks
    Python for the value of a traced array (an ``if`` on k, x or the state, numpy called on
    them), JAX cannot compile it, and the run is refused in one sentence
    (:class:`~flowsim.backends.Refused`, so ``backend="auto"`` runs it on numpy)."""
    import jax
    try:
        yield
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
            jax.errors.TracerIntegerConversionError) as err:
        first = str(err).strip().splitlines()[0]
        refuse(f"{owner} cannot run on JAX: it asks Python for the value of a traced array "
               f"({first}); write it with ops.xp (xp.where for a branch), or use "
               "backend='numpy'.")
