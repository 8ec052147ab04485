"""Stochastic (mini-batch) gradient descent on a finite-sum loss."""
from __future__ import annotations

import numpy as np

from .._validate import positive_int, seed_value
from ._driver import as_record, common_arguments, finish, iterate, schedule_steps
from ..ensemble.workers import parallel

__all__ = ["sgd"]


@parallel
def sgd(loss, x0, eta, steps, *, batch_size=1, seed=0, gtol=None, max_norm=1e8,
        record="all", record_every=1):
    r"""Stochastic gradient descent x_{k+1} = x_k - eta_k grad L_{B_k}(x_k).

    Each step draws ``batch_size`` samples without replacement from a reshuffled epoch
    (seeded) and steps along the mean gradient over that mini-batch B_k.

    Parameters
    ----------
    loss : Loss
        A finite-sum loss built by :meth:`Loss.from_samples`.
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together (a BatchTrajectory equal to m single runs).
    eta : float or callable
        Step, or a schedule ``k -> eta_k``.
    steps : int
    batch_size : int
        1 for SGD; the number of samples for full-batch gradient descent.
    seed : int
        Seed of :func:`numpy.random.default_rng`, for reproducible runs.
    gtol, max_norm : float
        As in :func:`~flowsim.schemes.gradient_descent` (gtol is not tested on the noisy
        mini-batch gradient: give None).
    record, record_every
        What a run keeps (see :func:`~flowsim.schemes.gradient_descent`).

    Returns
    -------
    Trajectory
        ``values`` and ``grad_norms`` of the full loss at each iterate; iterate k at time
        eta_0 + ... + eta_{k-1} on the gradient flow of the mean loss.

    Notes
    -----
    .. math:: x_{k+1} = x_k - \frac{\eta_k}{|B_k|} \sum_{i \in B_k} \nabla \ell_i(x_k)

    With ``batch_size`` equal to the number of samples it is gradient descent exactly.

    Examples
    --------
    >>> from flowsim import Loss
    >>> loss = Loss.from_samples("(w - t)**2 / 2", {"t": [1.0, 3.0]}, variables=["w"])
    >>> traj = sgd(loss, [0.0], eta=0.5, steps=2, batch_size=2)
    >>> traj.xs[:, 0].tolist()
    [0.0, 1.0, 1.5]
    """
    loss, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    if loss.n_samples is None:
        raise ValueError("loss: sgd needs a finite-sum loss; build it with Loss.from_samples.")
    batch_size = positive_int(batch_size, "batch_size")
    if batch_size > loss.n_samples:
        raise ValueError(f"batch_size must be at most the {loss.n_samples} samples, got "
                         f"{batch_size}.")
    etas = schedule_steps(eta, steps)
    spec = as_record(record, record_every)
    rng = np.random.default_rng(seed_value(seed))
    per_epoch = loss.n_samples // batch_size
    order = []

    def step(k, X, rows):  # every start sees the same mini-batches: m runs with one seed
        if k % per_epoch == 0:
            order[:] = [rng.permutation(loss.n_samples)]
        j = k % per_epoch
        batch = loss.subset(order[0][j * batch_size:(j + 1) * batch_size])
        return X - etas[k] * batch._fast("grad", single)(X), None, None

    before = loss.counts
    run = iterate(loss, X0, steps, step, etas, gtol=gtol, max_norm=max_norm, record=spec)
    return finish(loss, run, "sgd", f"SGD (batch {batch_size})", before, single=single,
                  record=spec)
