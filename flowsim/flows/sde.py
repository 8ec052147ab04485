r"""SGD as a stochastic differential equation: the stochastic modified equations.

Li, Tai and E (2017, 2019): SGD with step eta on a finite-sum loss is, in the weak sense, close
to the SDE

.. math:: dX = b(X)\,dt + \sqrt{\eta\,\Sigma(X)}\,dW,

with the first-order drift :math:`b = -\nabla L` (weak error O(eta)) or the second-order drift
:math:`b = -\nabla\big(L + \frac{\eta}{4}|\nabla L|^2\big) = -(\nabla L + \frac\eta2 H\nabla L)`
(weak error O(eta^2)). :math:`\Sigma(x)` is the exact covariance of the mini-batch gradient,
from the per-sample gradients :math:`g_i(x)` of a :meth:`Loss.from_samples` loss:
:math:`C = \frac1N \sum_i (g_i - \bar g)(g_i - \bar g)^T` and :math:`\Sigma = C / B` for B
samples drawn with replacement. The noise is drawn as :math:`\Sigma^{1/2}\xi = D^T\zeta/\sqrt{NB}`
with D the centred per-sample gradients and :math:`\zeta \sim N(0, I_N)`, so no matrix square
root is formed.

Reshuffled sampling (each epoch a permutation cut into batches) has no such equation at order
eta: the mini-batch errors of an epoch sum to zero, so its noise is not Brownian and its
stationary spread is of order eta^2, not eta. ``sampling="reshuffle"`` is therefore refused
unless the batch is the whole sample (then there is no noise and the equation is the
deterministic modified flow).

Paths are integrated together by the stochastic Heun scheme with ``substeps`` steps of
dt = eta / substeps per SGD step:

.. math:: \tilde X = X + b(X)\,dt + \sigma(X)\Delta W,\qquad
          X' = X + \tfrac12\big(b(X) + b(\tilde X)\big)dt + \sigma(X)\Delta W.

Its drift error is O(dt^2) and the terms it drops are O(eta dt) (the diffusion is of size
sqrt(eta)), so its weak error is O(eta^2 / substeps): the weak order 2 of the second-order
equation holds as eta -> 0 at a fixed number of substeps (Euler-Maruyama's O(dt) =
O(eta / substeps) would cap it at order 1).
"""
from __future__ import annotations

import numpy as np

from .. import stops
from .._validate import as_loss, int_between, positive, seed_value, start_points
from ..results import BatchTrajectory, Status

__all__ = ["sgd_sde"]


def sgd_sde(loss, x0, eta, t_end, *, batch_size=1, sampling="with_replacement", order=1,
            paths=1000, substeps=4, seed=0, n_outputs=101):
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
        As in :func:`flowsim.sgd`. Reshuffled epochs have no Brownian limit (their noise
        cancels within an epoch), so ``"reshuffle"`` is accepted only with
        ``batch_size`` equal to the number of samples (no noise).
    order : {1, 2}
        The drift: -grad L, or -grad(L + (eta/4)|grad L|^2).
    paths : int
        Independent paths, integrated together.
    substeps : int
        Stochastic Heun steps per SGD step (dt = eta / substeps); the scheme's weak error is
        O(eta^2 / substeps), below the equation's own at the default.
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
    if sampling == "reshuffle" and batch_size < loss.n_samples:
        raise ValueError("sampling: reshuffled mini-batches have no stochastic modified "
                         "equation (an epoch's noise sums to zero, so it is not Brownian and "
                         "its spread is O(eta^2)); use sampling='with_replacement' here, or "
                         "run flowsim.sgd(..., sampling='reshuffle') itself.")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}.")
    paths = int_between(paths, "paths", 1, 10 ** 8)
    substeps = int_between(substeps, "substeps", 1, 10 ** 6)
    n_outputs = int_between(n_outputs, "n_outputs", 2, 10 ** 6)
    rng = np.random.default_rng(seed_value(seed))
    N, B = loss.n_samples, batch_size
    noise_scale = 0.0 if sampling == "reshuffle" else 1.0 / (N * B)
    dt = eta / substeps
    total = max(1, int(round(t_end / dt)))
    keep = np.unique(np.round(np.linspace(0, total, n_outputs)).astype(int))
    ts = keep * dt
    out = np.empty((paths, len(keep), loss.n))
    out[:, 0] = x0
    status = stops.every_start(paths, Status.REACHED_END)
    message = stops.every_start(paths, stops.reached_end(t_end, total))
    t_stop = np.full(paths, ts[-1])
    alive = np.ones(paths, dtype=bool)   # a path that turns non-finite is held, the others go on
    with np.errstate(all="ignore"):
        X, slot = np.tile(x0, (paths, 1)), 1
        for j in range(1, total + 1):
            # (every path steps, finite or not, so each keeps its own draws of the noise)
            X = _heun_step(loss, X, eta, dt, order, noise_scale, rng)
            if j != keep[slot]:
                continue
            fine = np.isfinite(X).all(axis=1)
            out[:, slot] = np.where((alive & fine)[:, None], X, out[:, slot - 1])
            lost = np.flatnonzero(alive & ~fine)
            status[lost] = Status.DIVERGED
            message[lost] = (f"the path became non-finite after t = {ts[slot - 1]:.6g} (it "
                             "overflowed, or left the loss's domain); held at its state there")
            t_stop[lost] = ts[slot - 1]
            alive &= fine
            slot += 1
            if not alive.any():   # nothing left to run: every path holds its last state
                out[:, slot:] = out[:, slot - 1:slot]
                break
    values, grads = loss.observe(out)   # bookkeeping, as every result records it
    label = f"SGD SDE (order {order}, eta={eta:g}, batch {batch_size}, {sampling})"
    return BatchTrajectory(ts, out, values, grads, tuple(status), tuple(message), "sgd_sde",
                           label, variables=loss.variable_names, t_stop=t_stop)


def _drift(loss, X, g, eta, order):
    """b(X) = -g, or -(g + (eta/2) H g) for the second-order equation; g = grad L(X)."""
    if order == 1:
        return -g
    return -g - 0.5 * eta * np.einsum("pij,pj->pi", loss.hess(X), g)


def _heun_step(loss, X, eta, dt, order, noise_scale, rng):
    """One stochastic Heun step of every path: X (paths, n) -> (paths, n)."""
    G = loss.sample_grads(X)                                  # (paths, N, n)
    g = np.add.reduce(G, axis=1) / G.shape[1]
    b = _drift(loss, X, g, eta, order)
    if noise_scale:
        zeta = rng.standard_normal(G.shape[:2])
        kick = np.einsum("pin,pi->pn", G - g[:, None, :], zeta) * np.sqrt(eta * dt *
                                                                           noise_scale)
    else:
        kick = 0.0
    predictor = X + b * dt + kick
    return X + 0.5 * dt * (b + _drift(loss, predictor, loss.grad(predictor), eta, order)) + kick
