"""Which backend runs a method, decided without importing JAX: ``on_jax`` (the checked
``backend=`` argument), ``choose`` (what ``backend="auto"`` runs on), ``require`` (JAX with
64-bit floats, imported on first use), ``installed``, ``available`` and ``key_seed``. The
JAX backend itself is :mod:`flowsim.jax_backend`; the flows and schemes ask here, so the
numpy rooms never import it.

JAX's persistent compilation cache is switched on when JAX is first required, in
:func:`cache_folder` (``$FLOWSIM_JAX_CACHE``, else ``$XDG_CACHE_HOME/flowsim/jax``, else
``~/.cache/flowsim/jax``), so a second process compiles nothing the first compiled (a diffrax
flow's first call falls from seconds to a fraction of one). ``FLOWSIM_JAX_CACHE=off`` turns it
off; a cache folder the user set for JAX itself (``jax_compilation_cache_dir``) is left alone.
The traced diffrax programs are kept in the same folder (:mod:`flowsim.jax_backend.programs`),
so a second process does not trace them either; the same setting turns that off.
"""
from __future__ import annotations

import hashlib
import importlib.util
import numbers
import os
import sys

__all__ = ["available", "require", "on_jax", "key_seed", "BACKENDS", "cache_folder",
           "choose", "Refused", "refuse", "numba_installed"]


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
    equinox is not imported yet) it is set to ``nan``, with the cache on or off: a failed
    check gives NaN, which the flows report as a status, instead of raising, and the solve
    becomes cacheable (so turning the cache on later in the process still keeps it)."""
    folder = cache_folder()
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


def installed():
    """Whether JAX and diffrax are installed, found without importing them."""
    return all(importlib.util.find_spec(name) is not None for name in ("jax", "diffrax"))


def numba_installed():
    """Whether numba (``backend="numba"``, :mod:`flowsim.compiled`) is installed, found
    without importing it."""
    return importlib.util.find_spec("numba") is not None


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


BACKENDS = ("numpy", "jax", "auto", "numba")


class Refused(ValueError):
    """The JAX path cannot take this call (an option it lacks, a loss with kinks); raised
    before any work, so that ``backend="auto"`` runs the call on numpy instead."""


def refuse(message):
    """Raise :class:`Refused` with ``message`` (one sentence naming the fix)."""
    raise Refused(message)


def on_jax(backend, compiled=False, **refused):
    """Whether ``backend`` asks for JAX (checked); ``refused`` names options the JAX path
    does not take, each with the value it was given (refused unless falsy or None).

    ``"auto"`` reaches here only where no batch was split (:func:`choose` resolves it for
    every method that takes a batch); it runs on numpy. ``"numba"`` (the compiled backend,
    :mod:`flowsim.compiled`) runs update rules only: a caller that runs one says so with
    ``compiled=True`` (and handles it); everywhere else it is refused.

    Raises
    ------
    ValueError
        For an unknown backend; :class:`Refused` for an option the JAX backend cannot honour,
        or for ``"numba"`` where the method is not an update rule.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'numpy', 'jax', 'numba' or 'auto', got "
                         f"{backend!r}.")
    if backend == "numba":
        if not compiled:
            refuse("backend='numba' compiles the schemes written as update rules (gradient "
                   "descent, Heun, the momentum and adaptive methods, your own rules) and the "
                   "gradient, momentum and registered flows; use backend='numpy' or 'jax' "
                   "for this method.")
        for name, value in refused.items():
            if value:
                refuse(f"{name}={value!r} is not available with backend='numba'; drop it or "
                       "use backend='numpy'.")
        return False
    if backend != "jax":
        return False
    for name, value in refused.items():
        if value:
            refuse(f"{name}={value!r} is not available with backend='jax'; drop it or use "
                   "backend='numpy'.")
    return True


#: The cost model of :func:`choose`, measured on the 2-D Rosenbrock loss on a 2-core CPU
#: (``python benchmarks/bench_targets.py``). Schemes (gradient descent, record="final"): numpy
#: pays about 40 us of Python per step plus 2 ns per start, variable and step (1e5 starts x
#: 1,000 steps: 0.42 s, run in blocks of rows since they stay in the caches); JAX's compiled
#: scan about 0.7 ns per start, variable and step, after a start-up of about 1 s in a process
#: that has not imported JAX yet (import, trace, compile or read the persistent cache), 0.4 s
#: in one that has, and 0.05 s where this loss already ran a JAX program here (``warm``).
NUMPY_STEP_S, NUMPY_ENTRY_S, JAX_ENTRY_S = 4e-5, 2e-9, 7e-10
JAX_STARTUP_S, JAX_STARTUP_IMPORTED_S, JAX_STARTUP_WARM_S = 1.0, 0.4, 0.05
#: Flows (RK45 at rtol 1e-6 to t = 1): numpy's engines about 0.2 s of Python plus 70 us a
#: start, diffrax on the CPU about 150 us a start after its compile (about 4 s: on a CPU only
#: a ``warm`` loss makes JAX worth it, below about 3,000 starts).
FLOW_NUMPY_S, FLOW_NUMPY_START_S, FLOW_JAX_START_S = 0.2, 7e-5, 1.5e-4
#: The compiled backend (``backend="numba"``, schemes written as update rules): about 0.45 ns
#: per start, variable and step (gradient descent on Rosenbrock: 0.9 ns per start and step),
#: after numba's first compile in a process (about 4.5 s: numba's own start and one kernel) or
#: about 1.5 s for another kernel where this loss already compiled one here.
NUMBA_ENTRY_S, NUMBA_STARTUP_S, NUMBA_STARTUP_WARM_S = 4.5e-10, 4.5, 1.5
#: Its flow engine (RK45 on Rosenbrock to t = 1 at rtol 1e-6): about 15 us a start against
#: numpy's 65 us (a gradient flow with an explicit method; any other call is refused and runs
#: on numpy).
FLOW_NUMBA_START_S = 1.5e-5
#: Starts from which a batched flow runs with diffrax on an accelerator (not measured here:
#: no GPU was at hand; JAX's per-start cost there is far below numpy's).
ACCELERATOR_FLOW_STARTS = 10_000


def _accelerator():
    """Whether JAX's default device is an accelerator (imports JAX)."""
    try:
        import jax
        return jax.default_backend() != "cpu"
    except Exception:   # a broken installation: no accelerator to use
        return False


def choose(kind, starts, steps=None, n=1, warm=False, processes=1, compiled=False):
    """The backend ``backend="auto"`` runs a call on: ``"numpy"``, ``"jax"`` or ``"numba"``.

    Parameters
    ----------
    kind : {"scheme", "flow"}
    starts : int
        Number of starts m (1 for x0 of shape (n,)).
    steps : int, optional
        A scheme's number of steps.
    n : int
        Number of variables.
    warm : bool
        This loss already ran a JAX program in this process (JAX imported, its kernels
        traced): little start-up left.
    processes : int
        Worker processes the batch is split over (``workers=``, an executor's): numpy's
        time divides by them, and each pays JAX's start-up of a fresh process.
    compiled : bool
        This loss already compiled a step with numba in this process.

    Returns
    -------
    str
        ``"jax"`` where JAX and diffrax are installed and the cost model says the compiled
        path finishes first, start-up included: a scheme when numpy's estimated time
        ``steps * (NUMPY_STEP_S + m n NUMPY_ENTRY_S)`` exceeds JAX's ``m n steps JAX_ENTRY_S``
        by more than JAX's start-up; a flow on an accelerator from ACCELERATOR_FLOW_STARTS
        starts (or for a ``warm`` loss), on a CPU for a ``warm`` loss where
        ``m FLOW_JAX_START_S`` is below ``FLOW_NUMPY_S + m FLOW_NUMPY_START_S``.
        ``"numba"`` where numba is installed and the compiled estimate (a scheme's
        ``m n steps NUMBA_ENTRY_S``, a flow's ``m FLOW_NUMBA_START_S``) plus its start-up is
        below the others. ``"numpy"`` otherwise,
        and always for one start. A scheme that is not an update rule refuses ``"numba"``
        (and a rule that cannot be compiled), and the call runs on numpy.

    Examples
    --------
    >>> choose("scheme", 1, 10)
    'numpy'
    """
    has_jax, has_numba = installed(), numba_installed()
    if starts < 2 or not (has_jax or has_numba):
        return "numpy"
    warm = warm and processes == 1   # a worker process starts cold
    if kind == "flow":
        if has_jax and (starts >= ACCELERATOR_FLOW_STARTS or warm) and _accelerator():
            return "jax"
        costs = {"numpy": (FLOW_NUMPY_S + starts * FLOW_NUMPY_START_S) / max(1, processes)}
        if has_jax and warm:
            costs["jax"] = starts * FLOW_JAX_START_S
        if has_numba:
            costs["numba"] = starts * FLOW_NUMBA_START_S / max(1, processes) + \
                (NUMBA_STARTUP_WARM_S if compiled and processes == 1 else NUMBA_STARTUP_S)
        return min(costs, key=costs.get)
    steps = steps if isinstance(steps, numbers.Integral) and steps > 0 else 1
    numpy_s = steps * (NUMPY_STEP_S + starts * n * NUMPY_ENTRY_S) / max(1, processes)
    jax_s = starts * n * steps * JAX_ENTRY_S
    startup = JAX_STARTUP_WARM_S if warm else JAX_STARTUP_S if processes > 1 else \
        JAX_STARTUP_IMPORTED_S if "jax" in sys.modules else JAX_STARTUP_S
    costs = {"numpy": numpy_s}
    if has_jax:
        costs["jax"] = jax_s + startup
    if has_numba:
        costs["numba"] = (starts * n * steps * NUMBA_ENTRY_S / max(1, processes) +
                          (NUMBA_STARTUP_WARM_S if compiled and processes == 1
                           else NUMBA_STARTUP_S))
    return min(costs, key=costs.get)


def key_seed(seed):
    """A seed JAX's key takes (below 2^63): the seed itself, or for a larger one a hash of
    it, so that any integer >= 0 names one stream."""
    if seed < 2 ** 63:
        return seed
    digest = hashlib.sha256(str(seed).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
