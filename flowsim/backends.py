"""Which backend runs a method, decided without importing JAX: ``on_jax`` (the checked
``backend=`` argument), ``require`` (JAX with 64-bit floats, imported on first use),
``available`` and ``key_seed``. The JAX backend itself is :mod:`flowsim.jax_backend`; the
flows and schemes ask here, so the numpy rooms never import it.
"""
from __future__ import annotations

import hashlib

__all__ = ["available", "require", "on_jax", "key_seed", "BACKENDS"]


def available():
    """Whether JAX (and diffrax, for flows) can be imported here."""
    try:
        import diffrax  # noqa: F401
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def require():
    """``(jax, jax.numpy)`` with 64-bit floats on, or an ImportError that says how to install.

    Raises
    ------
    ImportError
        Where JAX is not installed.
    """
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise ImportError('backend="jax" needs JAX: pip install "flowsim[jax]" (or jax and '
                          'diffrax), or use the default backend="numpy".') from None
    jax.config.update("jax_enable_x64", True)
    return jax, jnp


BACKENDS = ("numpy", "jax")


def on_jax(backend, **refused):
    """Whether ``backend`` asks for JAX (checked); ``refused`` names options the JAX path
    does not take, each with the value it was given (refused unless falsy or None).

    Raises
    ------
    ValueError
        For an unknown backend, or an option the JAX backend cannot honour.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'numpy' or 'jax', got {backend!r}.")
    if backend != "jax":
        return False
    for name, value in refused.items():
        if value:
            raise ValueError(f"{name}={value!r} is not available with backend='jax'; drop it "
                             "or use backend='numpy'.")
    return True


def key_seed(seed):
    """A seed JAX's key takes (below 2^63): the seed itself, or for a larger one a hash of
    it, so that any integer >= 0 names one stream."""
    if seed < 2 ** 63:
        return seed
    digest = hashlib.sha256(str(seed).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
