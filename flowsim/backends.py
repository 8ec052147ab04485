"""Which backend runs a method, decided without importing JAX: ``on_jax`` (the checked
``backend=`` argument), ``require`` (JAX with 64-bit floats, imported on first use),
``available`` and ``key_seed``. The JAX backend itself is :mod:`flowsim.jax_backend`; the
flows and schemes ask here, so the numpy rooms never import it.

JAX's persistent compilation cache is switched on when JAX is first required, in
:func:`cache_folder` (``$FLOWSIM_JAX_CACHE``, else ``$XDG_CACHE_HOME/flowsim/jax``, else
``~/.cache/flowsim/jax``), so a second process compiles nothing the first compiled (a diffrax
flow's first call falls from seconds to a fraction of one). ``FLOWSIM_JAX_CACHE=off`` turns it
off; a cache folder the user set for JAX itself (``jax_compilation_cache_dir``) is left alone.
"""
from __future__ import annotations

import hashlib
import os

__all__ = ["available", "require", "on_jax", "key_seed", "BACKENDS", "cache_folder"]


def cache_folder():
    """Where JAX's persistent compilation cache goes, or None when it is turned off
    (``FLOWSIM_JAX_CACHE=off``, ``0``, ``no`` or ``false``)."""
    chosen = os.environ.get("FLOWSIM_JAX_CACHE", "").strip()
    if chosen.lower() in ("off", "0", "no", "false"):
        return None
    if chosen:
        return os.path.abspath(os.path.expanduser(chosen))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flowsim", "jax")


def _persistent_cache(jax):
    """Switch on JAX's persistent compilation cache in :func:`cache_folder` (once; never
    over a folder the user configured, never an error: a read-only home only loses the
    cache).

    XLA keeps no program that calls back to the host, and equinox's runtime checks inside
    diffrax do so unless ``EQX_ON_ERROR`` says otherwise; where the user has not set it (and
    equinox is not imported yet) it is set to ``nan``: a failed check gives NaN, which the
    flows report as a status, instead of raising, and the solve becomes cacheable."""
    folder = cache_folder()
    if folder is not None:
        os.environ.setdefault("EQX_ON_ERROR", "nan")
    if folder is None or getattr(jax.config, "jax_compilation_cache_dir", None):
        return
    try:
        os.makedirs(folder, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", folder)
        # every compilation is worth keeping: flowsim's kernels compile in 0.1 s to 7 s
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except (OSError, AttributeError, ValueError):
        pass


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
    _persistent_cache(jax)
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
