"""Stochastic (mini-batch) gradient descent on a finite-sum loss."""
from __future__ import annotations

import numpy as np

from .._validate import positive_int, seed_value
from ._driver import as_record, common_arguments, finish, iterate, jax_run, schedule_steps
from ..backends import on_jax
from ..ensemble.workers import parallel

__all__ = ["sgd"]


SAMPLINGS = ("reshuffle", "with_replacement")


@parallel
def sgd(loss, x0, eta, steps, *, batch_size=1, sampling="reshuffle", momentum=0.0,
        chains=None, seed=0, gtol=None, max_norm=1e8, record="all", record_every=1,
        backend="numpy"):
    r"""Stochastic gradient descent x_{k+1} = x_k - eta_k grad L_{B_k}(x_k) (+ momentum).

    Parameters
    ----------
    loss : Loss
        A finite-sum loss built by :meth:`Loss.from_samples`.
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together. Without ``chains`` all starts see the same
        mini-batches (m runs with one seed, a BatchTrajectory equal to m single runs).
    eta : float or callable
        Step, or a schedule ``k -> eta_k``.
    steps : int
    batch_size : int
        Samples per step; with ``sampling="reshuffle"`` and the number of samples, full-batch
        gradient descent exactly.
    sampling : {"reshuffle", "with_replacement"}
        ``reshuffle``: each epoch is a fresh permutation cut into mini-batches (sampling
        without replacement, what training loops do; the noise of an epoch sums to zero, so
        the stationary spread scales like eta^2). ``with_replacement``: every step draws
        ``batch_size`` samples independently and uniformly, the setting of the stochastic
        modified equations (:func:`flowsim.flows.sde.sgd_sde`).
    momentum : float
        beta in [0, 1): x_{k+1} = x_k - eta_k g_k + beta (x_k - x_{k-1}).
    chains : int, optional
        Run this many independent chains from the single start ``x0``, each with its own
        random mini-batches (one seeded generator: reproducible), vectorized in one process.
    seed : int
        Seed of :func:`numpy.random.default_rng`, for reproducible runs.
    gtol, max_norm : float
        As in :func:`~flowsim.schemes.gradient_descent` (gtol is not tested on the noisy
        mini-batch gradient: give None).
    record, record_every
        What a run keeps (see :func:`~flowsim.schemes.gradient_descent`).
    backend : {"numpy", "jax", "auto"}
        ``"jax"`` runs the same steps with ``jax.lax.scan`` and JAX's keyed random streams
        (``jax.random.key(seed)``, split per chain): reproducible, but other draws than
        numpy's generator makes.
        ``"auto"``: whichever of the two finishes first for this batch, start-up included
        (:func:`flowsim.backends.choose`; numpy for one start or without JAX); the label
        ends with ``[auto: numpy]`` or ``[auto: jax]``.

    Returns
    -------
    Trajectory or BatchTrajectory
        ``values`` and ``grad_norms`` of the full loss at each iterate; iterate k at time
        eta_0 + ... + eta_{k-1} on the gradient flow of the mean loss.

    Notes
    -----
    .. math:: x_{k+1} = x_k - \frac{\eta_k}{|B_k|} \sum_{i \in B_k} \nabla \ell_i(x_k)
              + \beta (x_k - x_{k-1})

    Examples
    --------
    >>> from flowsim import Loss
    >>> loss = Loss.from_samples("(w - t)**2 / 2", {"t": [1.0, 3.0]}, variables=["w"])
    >>> traj = sgd(loss, [0.0], eta=0.5, steps=2, batch_size=2)
    >>> traj.xs[:, 0].tolist()
    [0.0, 1.0, 1.5]
    >>> sgd(loss, [0.0], 0.1, 50, sampling="with_replacement", chains=1000).xs.shape
    (1000, 51, 1)
    """
    if chains is not None:
        from .._validate import int_between, start_points
        chains = int_between(chains, "chains", 1, 10 ** 8)
        x0 = np.tile(start_points(x0, np.size(x0), batch=False), (chains, 1))
    loss, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    if loss.n_samples is None:
        raise ValueError("loss: sgd needs a finite-sum loss; build it with Loss.from_samples.")
    batch_size = positive_int(batch_size, "batch_size")
    if batch_size > loss.n_samples:
        raise ValueError(f"batch_size must be at most the {loss.n_samples} samples, got "
                         f"{batch_size}.")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be 'reshuffle' or 'with_replacement', got "
                         f"{sampling!r}.")
    momentum = float(momentum)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
    etas = schedule_steps(eta, steps)
    spec = as_record(record, record_every)
    label = f"SGD (batch {batch_size}" + (", with replacement" if sampling != "reshuffle"
                                          else "") + (f", beta={momentum:g}" if momentum
                                                      else "") + ")"
    if on_jax(backend):
        return jax_run(loss, "sgd", X0, etas, etas,
                       options={"batch_size": batch_size, "sampling": sampling,
                                "momentum": momentum, "seed": seed_value(seed)},
                       gtol=None, max_norm=max_norm, spec=spec,
                       single=single and chains is None, label=label,
                       chains=chains is not None)
    rng = np.random.default_rng(seed_value(seed))
    N, m = loss.n_samples, X0.shape[0]
    own = 1 if chains is None else m      # streams: one shared, or one per chain
    per_epoch = N // batch_size
    order = []
    V = np.zeros_like(X0)

    def batches(k):
        if sampling == "with_replacement":
            return rng.integers(N, size=(own, batch_size))
        if k % per_epoch == 0:
            order[:] = [rng.permuted(np.tile(np.arange(N), (own, 1)), axis=1)]
        j = k % per_epoch
        return order[0][:, j * batch_size:(j + 1) * batch_size]

    def step(k, X, rows):
        idx = batches(k)
        idx = np.broadcast_to(idx, (m, batch_size))[rows]
        G = loss.minibatch_grad(X, np.ascontiguousarray(idx))
        if momentum:
            V[rows] = momentum * V[rows] - etas[k] * G
            return X + V[rows], None, None
        return X - etas[k] * G, None, None

    before = loss.counts
    run = iterate(loss, X0, steps, step, etas, gtol=gtol, max_norm=max_norm, record=spec)
    return finish(loss, run, "sgd", label, before, single=single and chains is None,
                  record=spec)
