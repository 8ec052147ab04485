"""Further discretizations: proximal gradient, momentum, Newton, stochastic, and Heun.

Each scheme is a discretization of a continuous flow in :mod:`flowsim.flow`:

============================  ==========================================  ==============
scheme                        flow                                         iterate k at
============================  ==========================================  ==============
proximal_gradient             gradient flow of f + g (forward-backward)    k * eta
heavy_ball (Polyak)           x'' + gamma x' + grad L = 0,                 k * sqrt(eta)
                              gamma = (1 - beta) / sqrt(eta)
nesterov (NAG)                x'' + (r/t) x' + grad L = 0                  k * sqrt(eta)
newton (step a)               x' = -H^{-1} grad L                          k * a
sgd                           gradient flow of the mean loss               k * eta
heun                          gradient flow, second order                  k * eta
============================  ==========================================  ==============
"""
from __future__ import annotations

import numpy as np

from ..prox import check_dimension
from ..schedules import as_schedule, step_sizes
from .._validate import nonnegative, positive, positive_int, seed_value
from ._driver import StepFailed, common_arguments, finish, iterate

__all__ = ["proximal_gradient", "heavy_ball", "nesterov", "newton", "sgd", "heun"]

def proximal_gradient(f, x0, eta, steps, prox=None, *, gtol=None, max_norm=1e8):
    """Forward-backward splitting x_{k+1} = prox_{eta g}(x_k - eta grad f(x_k)).

    Parameters
    ----------
    f : Loss or losses.Composite
        The smooth part; a :class:`~flowsim.losses.Composite` brings its own penalty.
    x0 : array_like, shape (n,)
    eta : float or callable
        Step (a schedule is allowed); converges for eta <= 1/Lipschitz(grad f).
    steps : int
    prox : penalty from :mod:`flowsim.prox`
        g, with ``value`` and ``prox``; required unless ``f`` is a Composite.
    gtol : float, optional
        Stop when the gradient mapping |x - prox(x - eta grad f(x))| / eta <= gtol.

    Returns
    -------
    Trajectory
        ``values`` are f + g; ``grad_norms`` are the gradient-mapping norms, the
        stationarity measure of composite problems (0 exactly at minimizers of f + g).

    Notes
    -----
    .. math:: x_{k+1} = \\operatorname{prox}_{\\eta g}\\bigl(x_k - \\eta \\nabla f(x_k)\\bigr)

    Examples
    --------
    >>> from flowsim.prox import L1
    >>> traj = proximal_gradient("(x - 3)**2 / 2", [0.0], 1.0, 2, prox=L1(1.0))
    >>> traj.xs[:, 0].tolist()
    [0.0, 2.0, 2.0]
    """
    from ..losses import Composite
    if isinstance(f, Composite):
        prox = f.penalty if prox is None else prox
        f = f.smooth
    if prox is None or not hasattr(prox, "prox") or not hasattr(prox, "value"):
        raise ValueError("prox must be a penalty from flowsim.prox (with value and prox), "
                         "e.g. flowsim.prox.L1(0.1).")
    f, x0, steps, gtol, max_norm = common_arguments(f, x0, steps, gtol, max_norm)
    check_dimension(prox, f.n)
    etas = step_sizes(as_schedule(eta)[0], steps)
    grad = f._fast("grad")

    def step(k, x):
        x_next = prox.prox(x - etas[k] * grad(x), etas[k])
        mapping = (x - x_next) / etas[k]
        return x_next, mapping, None

    before = f.counts
    xs, ts, status, message, _ = iterate(f, x0, steps, step, etas, gtol=gtol,
                                         max_norm=max_norm)
    smooth, grads = f._observe(xs, full=True)
    e = etas[np.minimum(np.arange(len(xs)), steps - 1)][:, None]  # the step used from x_k
    mapping = np.linalg.norm(xs - prox.prox(xs - e * grads, e), axis=1) / e[:, 0]
    values = smooth + prox.value(xs)
    return finish(f, xs, ts, status, message, "prox_grad", before, values=values,
                  grad_norms=mapping)


def _momentum_check(beta, name="momentum"):
    beta = nonnegative(beta, name)
    if beta >= 1:
        raise ValueError(f"{name} must lie in [0, 1), got {beta}.")
    return beta


#: Default momentum beta of :func:`heavy_ball`.
DEFAULT_MOMENTUM = 0.9


def heavy_ball(loss, x0, eta, steps, momentum=DEFAULT_MOMENTUM, *, gtol=None, max_norm=1e8):
    """Polyak's heavy ball x_{k+1} = x_k - eta grad L(x_k) + beta (x_k - x_{k-1}).

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,)
    eta : float
    steps : int
    momentum : float
        beta in [0, 1).

    Returns
    -------
    Trajectory
        Iterate k at time k sqrt(eta): the scheme follows
        :func:`flowsim.heavy_ball_flow` with mass 1 and friction (1 - beta)/sqrt(eta).

    Notes
    -----
    .. math:: x_{k+1} = x_k - \\eta \\nabla L(x_k) + \\beta (x_k - x_{k-1}), \\quad
              x_{-1} = x_0
    """
    loss, x0, steps, gtol, max_norm = common_arguments(loss, x0, steps, gtol, max_norm)
    eta = positive(eta, "eta")
    beta = _momentum_check(momentum)
    grad = loss._fast("grad")
    prev = [x0]

    def step(k, x):
        g = grad(x)
        x_next = x - eta * g + beta * (x - prev[0])
        prev[0] = x
        return x_next, g, None

    before = loss.counts
    xs, ts, status, message, _ = iterate(loss, x0, steps, step, np.full(steps, np.sqrt(eta)),
                                         gtol=gtol, max_norm=max_norm)
    return finish(loss, xs, ts, status, message, f"heavy_ball (beta={beta:g})", before)


def nesterov(loss, x0, eta, steps, *, r=3.0, momentum=None, gtol=None, max_norm=1e8):
    """Nesterov's accelerated gradient.

    y_k = x_k + beta_k (x_k - x_{k-1}), x_{k+1} = y_k - eta grad L(y_k), with
    beta_k = (k - 1)/(k + r - 1) (r = 3 is Nesterov's choice, (k-1)/(k+2)) or a constant
    ``momentum`` for strongly convex losses.

    Returns
    -------
    Trajectory
        Iterate k at time k sqrt(eta): with beta_k = (k-1)/(k+r-1) the scheme follows
        :func:`flowsim.nesterov_flow` with the same r (Su, Boyd and Candes).
    """
    loss, x0, steps, gtol, max_norm = common_arguments(loss, x0, steps, gtol, max_norm)
    eta = positive(eta, "eta")
    r = positive(r, "r")
    beta_const = None if momentum is None else _momentum_check(momentum)
    grad = loss._fast("grad")
    prev = [x0]

    def step(k, x):
        beta = beta_const if beta_const is not None else (k - 1) / (k + r - 1) if k else 0.0
        y = x + beta * (x - prev[0])
        g = grad(y)
        prev[0] = x
        return y - eta * g, g if beta == 0 else None, None

    before = loss.counts
    xs, ts, status, message, _ = iterate(loss, x0, steps, step, np.full(steps, np.sqrt(eta)),
                                         gtol=gtol, max_norm=max_norm)
    label = f"nesterov (r={r:g})" if beta_const is None else f"nesterov (beta={beta_const:g})"
    return finish(loss, xs, ts, status, message, label, before)


def newton(loss, x0, steps, damping=1.0, *, gtol=None, max_norm=1e8):
    """Newton's method x_{k+1} = x_k - a H(x_k)^{-1} grad L(x_k), full (a = 1) or damped.

    Parameters
    ----------
    damping : float
        The step a in (0, 1]; iterate k sits at time k a on the Newton flow
        :func:`flowsim.newton_flow`.

    Returns
    -------
    Trajectory
        Status ``failed`` where H(x_k) is singular.
    """
    loss, x0, steps, gtol, max_norm = common_arguments(loss, x0, steps, gtol, max_norm)
    a = positive(damping, "damping")
    if a > 1:
        raise ValueError(f"damping must lie in (0, 1], got {a}.")
    grad, hess = loss._fast("grad"), loss._fast("hess")

    def step(k, x):
        g = grad(x)
        try:
            d = np.linalg.solve(hess(x), g)
        except np.linalg.LinAlgError:
            raise StepFailed(f"the Hessian is singular at x_{k}") from None
        return x - a * d, g, None

    before = loss.counts
    xs, ts, status, message, _ = iterate(loss, x0, steps, step, np.full(steps, a), gtol=gtol,
                                         max_norm=max_norm)
    return finish(loss, xs, ts, status, message,
                  "newton" if a == 1 else f"damped newton (a={a:g})", before)


def sgd(loss, x0, eta, steps, *, batch_size=1, seed=0, gtol=None, max_norm=1e8):
    """Stochastic (mini-batch) gradient descent on a finite-sum loss.

    Each step draws ``batch_size`` samples without replacement from a reshuffled epoch
    (seeded), and steps along the mini-batch gradient.

    Parameters
    ----------
    loss : Loss
        Built by :meth:`Loss.from_samples`.
    eta : float or callable
    batch_size : int
        1 for SGD; the number of samples for full-batch GD.
    seed : int
        Seed of :func:`numpy.random.default_rng`, for reproducible runs.

    Returns
    -------
    Trajectory
        ``values`` and ``grad_norms`` of the full loss at each iterate.
    """
    loss, x0, steps, gtol, max_norm = common_arguments(loss, x0, steps, gtol, max_norm)
    if loss.n_samples is None:
        raise ValueError("sgd needs a finite-sum loss built by Loss.from_samples.")
    batch_size = positive_int(batch_size, "batch_size")
    if batch_size > loss.n_samples:
        raise ValueError(f"batch_size must be at most the {loss.n_samples} samples, got "
                         f"{batch_size}.")
    etas = step_sizes(as_schedule(eta)[0], steps)
    rng = np.random.default_rng(seed_value(seed))
    per_epoch = loss.n_samples // batch_size
    order = []

    def step(k, x):
        if k % per_epoch == 0:
            order[:] = [rng.permutation(loss.n_samples)]
        j = k % per_epoch
        batch = loss.subset(order[0][j * batch_size:(j + 1) * batch_size])
        return x - etas[k] * batch._fast("grad")(x), None, None

    before = loss.counts
    xs, ts, status, message, _ = iterate(loss, x0, steps, step, etas, gtol=gtol,
                                         max_norm=max_norm)
    return finish(loss, xs, ts, status, message, f"sgd (batch {batch_size})", before)


def heun(loss, x0, eta, steps, *, gtol=None, max_norm=1e8):
    """Heun's method (explicit trapezoid), a second-order discretization of the flow.

    .. math:: \\tilde x = x_k - \\eta \\nabla L(x_k), \\quad
              x_{k+1} = x_k - \\frac{\\eta}{2}\\bigl(\\nabla L(x_k) + \\nabla L(\\tilde x)\\bigr)

    The control in :func:`flowsim.convergence_order`: its error at a fixed time falls like
    eta^2, against eta for the Euler schemes.
    """
    loss, x0, steps, gtol, max_norm = common_arguments(loss, x0, steps, gtol, max_norm)
    etas = step_sizes(as_schedule(eta)[0], steps)
    grad = loss._fast("grad")

    def step(k, x):
        g = grad(x)
        return x - etas[k] / 2 * (g + grad(x - etas[k] * g)), g, None

    before = loss.counts
    xs, ts, status, message, _ = iterate(loss, x0, steps, step, etas, gtol=gtol,
                                         max_norm=max_norm)
    return finish(loss, xs, ts, status, message, "heun", before)
