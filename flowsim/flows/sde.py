r"""SGD as a stochastic differential equation: the stochastic modified equations.

Li, Tai and E (2017, 2019): SGD with step eta on a finite-sum loss is, in the weak sense, close
to the SDE

.. math:: dX = b(X)\,dt + \sqrt{\eta\,\Sigma(X)}\,dW,

with the first-order drift :math:`b = -\nabla L` (weak error O(eta)) or the second-order drift
:math:`b = -\nabla\big(L + \frac{\eta}{4}|\nabla L|^2\big) = -(\nabla L + \frac\eta2 H\nabla L)`
(weak error O(eta^2)). :math:`\Sigma(x)` is the exact covariance of the mini-batch gradient,
from the per-sample gradients :math:`g_i(x)` of a :meth:`Loss.from_samples` loss:
:math:`C = \frac1N \sum_i (g_i - \bar g)(g_i - \bar g)^T`, and
:math:`\Sigma = C / B` for B samples drawn with replacement, :math:`\Sigma = \frac{C}{B}
\frac{N - B}{N - 1}` for B distinct samples (one step of a reshuffled epoch). The noise is drawn
as :math:`\Sigma^{1/2}\xi = D^T\zeta/\sqrt{NB}` with D the centred per-sample gradients and
:math:`\zeta \sim N(0, I_N)`, so no matrix square root is formed.

Paths are integrated together by Euler-Maruyama (weak order 1) with ``substeps`` steps per SGD
step, so that the SDE's own discretization error stays below the one being studied.
"""
from __future__ import annotations

import numpy as np

from .._validate import as_loss, int_between, positive, seed_value, start_points
from ..results import BatchTrajectory, Status

__all__ = ["sgd_sde"]


def sgd_sde(loss, x0, eta, t_end, *, batch_size=1, sampling="with_replacement", order=1,
            paths=1000, substeps=10, seed=0, n_outputs=101):
    r"""Sample paths of the stochastic modified equation of SGD.

    Parameters
    ----------
    loss : Loss
        A finite-sum loss (:meth:`Loss.from_samples`).
    x0 : array_like, shape (n,)
    eta : float
        SGD's step: the SDE's noise scale, and its time per SGD step.
    t_end : float
    batch_size : int
    sampling : {"with_replacement", "reshuffle"}
        Which mini-batch covariance (see the module docstring); as in :func:`flowsim.sgd`.
    order : {1, 2}
        The drift: -grad L, or -grad(L + (eta/4)|grad L|^2).
    paths : int
        Independent paths, integrated together.
    substeps : int
        Euler-Maruyama steps per SGD step (dt = eta / substeps).
    seed : int
    n_outputs : int
        Output times, evenly spaced (rounded to the Euler-Maruyama grid).

    Returns
    -------
    BatchTrajectory
        ``xs`` of shape (paths, n_outputs, n), ``method="sgd_sde"``; values and gradient
        norms of the full loss.

    Examples
    --------
    >>> from flowsim import Loss
    >>> loss = Loss.from_samples("x**2/2 - t*x", {"t": [1.0, -1.0]}, ["x"])
    >>> sde = sgd_sde(loss, [0.0], 0.1, 20.0, paths=4000, seed=1)
    >>> bool(abs(sde.xs[:, -1, 0].var() - 0.1 / 2) < 0.005)   # eta sigma^2 / (2 a)
    True
    """
    from ..schemes.sgd import SAMPLINGS
    loss = as_loss(loss)
    if loss.n_samples is None:
        raise ValueError("loss: sgd_sde needs a finite-sum loss; build it with "
                         "Loss.from_samples.")
    x0 = start_points(x0, loss.n, batch=False)
    eta = positive(eta, "eta")
    t_end = positive(t_end, "t_end")
    batch_size = int_between(batch_size, "batch_size", 1, loss.n_samples)
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be 'reshuffle' or 'with_replacement', got "
                         f"{sampling!r}.")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}.")
    paths = int_between(paths, "paths", 1, 10 ** 8)
    substeps = int_between(substeps, "substeps", 1, 10 ** 6)
    n_outputs = int_between(n_outputs, "n_outputs", 2, 10 ** 6)
    rng = np.random.default_rng(seed_value(seed))
    N, B = loss.n_samples, batch_size
    scale = 1.0 / (N * B)
    if sampling == "reshuffle":
        scale *= (N - B) / (N - 1) if N > 1 else 0.0
    dt = eta / substeps
    total = max(1, int(round(t_end / dt)))
    keep = np.unique(np.round(np.linspace(0, total, n_outputs)).astype(int))
    X = np.tile(x0, (paths, 1))
    out = np.empty((paths, len(keep), loss.n))
    out[:, 0] = X
    slot = 1
    status = Status.REACHED_END
    with np.errstate(all="ignore"):
        for j in range(1, total + 1):
            G = loss.sample_grads(X)                      # (paths, N, n)
            g = G.mean(axis=1)
            drift = -g
            if order == 2:
                drift = drift - 0.5 * eta * np.einsum("pij,pj->pi", loss.hess(X), g)
            D = G - g[:, None, :]
            noise = np.einsum("pin,pi->pn", D, rng.standard_normal((paths, N)))
            X = X + drift * dt + np.sqrt(eta * dt * scale) * noise
            if not np.all(np.isfinite(X)):
                status = Status.DIVERGED
                X = np.where(np.isfinite(X), X, np.nan)
            if slot < len(keep) and j == keep[slot]:
                out[:, slot] = X
                slot += 1
    ts = keep * dt
    values = loss.value(out)
    grads = np.linalg.norm(loss.grad(out), axis=-1)
    message = "reached t_end" if status is Status.REACHED_END else "a path diverged"
    label = f"SGD SDE (order {order}, eta={eta:g}, batch {batch_size}, {sampling})"
    return BatchTrajectory(ts, out, values, grads, (status,) * paths, (message,) * paths,
                           "sgd_sde", label, variables=loss.variable_names)
