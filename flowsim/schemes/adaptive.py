r"""Adaptive methods: AdaGrad, RMSProp, Adam (with bias correction) and sign descent.

All step every coordinate by its own scale, from the gradient g_k = grad L(x_k):

* AdaGrad: :math:`v_{k+1} = v_k + g_k^2`,
  :math:`x_{k+1} = x_k - \eta_k g_k/(\sqrt{v_{k+1}}+\epsilon)`;
* RMSProp: :math:`v_{k+1} = \rho v_k + (1-\rho) g_k^2`, the same step;
* Adam: :math:`m_{k+1} = \beta_1 m_k + (1-\beta_1) g_k`, :math:`v_{k+1} = \beta_2 v_k +
  (1-\beta_2) g_k^2`, :math:`x_{k+1} = x_k - \eta_k \hat m/(\sqrt{\hat v}+\epsilon)` with
  :math:`\hat m = m_{k+1}/(1-\beta_1^{k+1})`, :math:`\hat v = v_{k+1}/(1-\beta_2^{k+1})`;
* sign descent: :math:`x_{k+1} = x_k - \eta_k\,\mathrm{sign}(g_k)` (Adam with
  beta_1 = beta_2 = 0 and epsilon = 0, and its first step always).

Adam with :math:`\beta_1 = 1 - a\eta`, :math:`\beta_2 = 1 - b\eta` follows the ODE of
:func:`flowsim.flows.adam.adam_flow` to first order (Barakat and Bianchi, 2021).
"""
from __future__ import annotations

from ._driver import as_record, common_arguments, run_rule, schedule_steps
from ..rules import UpdateRule
from ..ensemble.workers import parallel

__all__ = ["adagrad", "rmsprop", "adam", "sign_descent", "ADAGRAD", "RMSPROP", "ADAM",
           "SIGN_DESCENT"]


def _moments(X0, options, xp):
    """The state (m, v): first and second moments, zero at the start."""
    return xp.zeros_like(X0), xp.zeros_like(X0)


def _adagrad_step(k, eta, x, state, ops, o):
    g = ops.grad(x)
    v = state[1] + g * g
    return x - eta * g / (ops.xp.sqrt(v) + o["eps"]), g, (state[0], v), False


def _rmsprop_step(k, eta, x, state, ops, o):
    g = ops.grad(x)
    v = o["rho"] * state[1] + (1 - o["rho"]) * g * g
    return x - eta * g / (ops.xp.sqrt(v) + o["eps"]), g, (state[0], v), False


def _adam_step(k, eta, x, state, ops, o):
    g = ops.grad(x)
    b1, b2 = o["beta1"], o["beta2"]
    m = b1 * state[0] + (1 - b1) * g
    v = b2 * state[1] + (1 - b2) * g * g
    m_hat = m / (1 - b1 ** (k + 1))
    v_hat = v / (1 - b2 ** (k + 1))
    return x - eta * m_hat / (ops.xp.sqrt(v_hat) + o["eps"]), g, (m, v), False


def _sign_step(k, eta, x, state, ops, o):
    g = ops.grad(x)
    return x - eta * ops.xp.sign(g), g, state, False


ADAGRAD = UpdateRule(_adagrad_step, _moments, options={"eps": 1e-8})
RMSPROP = UpdateRule(_rmsprop_step, _moments, options={"rho": 0.9, "eps": 1e-8})
ADAM = UpdateRule(_adam_step, _moments, options={"beta1": 0.9, "beta2": 0.999, "eps": 1e-8})
SIGN_DESCENT = UpdateRule(_sign_step)


def _run(loss, x0, eta, steps, gtol, max_norm, record, record_every, rule, name, label,
         backend="numpy", options=None):
    """One adaptive scheme's run of ``rule`` with the checked ``options``."""
    loss, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    etas = schedule_steps(eta, steps)
    spec = as_record(record, record_every)
    return run_rule(loss, rule, options or {}, X0, steps, etas, etas, gtol=gtol,
                    max_norm=max_norm, spec=spec, single=single, name=name, label=label,
                    backend=backend)


def _unit(value, name, closed_right=False):
    value = float(value)
    if not (0.0 <= value < 1.0 or (closed_right and value == 1.0)):
        raise ValueError(f"{name} must be in [0, 1), got {value}.")
    return value


def _eps(value):
    value = float(value)
    if not value >= 0:
        raise ValueError(f"eps must be >= 0, got {value}.")
    return value


@parallel
def adagrad(loss, x0, eta, steps, *, eps=1e-8, gtol=None, max_norm=1e8, record="all",
            record_every=1, backend="numpy"):
    """AdaGrad (see the module docstring for the update).

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
    eta : float or callable
    steps : int
    eps : float
        Added to the root of the accumulated squares.
    gtol, max_norm, record, record_every, backend
        As in :func:`~flowsim.schemes.gradient_descent`.

    Returns
    -------
    Trajectory or BatchTrajectory
        Iterate k at time eta_0 + ... + eta_{k-1}.
    """
    eps = _eps(eps)
    return _run(loss, x0, eta, steps, gtol, max_norm, record, record_every, ADAGRAD,
                "adagrad", "AdaGrad", backend, {"eps": eps})


@parallel
def rmsprop(loss, x0, eta, steps, *, rho=0.9, eps=1e-8, gtol=None, max_norm=1e8,
            record="all", record_every=1, backend="numpy"):
    """RMSProp (see the module docstring for the update).

    Parameters
    ----------
    loss, x0, eta, steps
        As for every scheme.
    rho : float
        Decay of the mean square, in [0, 1).
    eps : float
    gtol, max_norm, record, record_every, backend
        As in :func:`~flowsim.schemes.gradient_descent`.

    Returns
    -------
    Trajectory or BatchTrajectory
    """
    rho, eps = _unit(rho, "rho"), _eps(eps)
    return _run(loss, x0, eta, steps, gtol, max_norm, record, record_every, RMSPROP,
                "rmsprop", f"RMSProp (rho={rho:g})", backend, {"rho": rho, "eps": eps})


@parallel
def adam(loss, x0, eta, steps, *, beta1=0.9, beta2=0.999, eps=1e-8, gtol=None, max_norm=1e8,
         record="all", record_every=1, backend="numpy"):
    """Adam with bias correction (see the module docstring for the update).

    Parameters
    ----------
    loss, x0, eta, steps
        As for every scheme.
    beta1, beta2 : float
        Decays of the first and second moments, in [0, 1).
    eps : float
    gtol, max_norm, record, record_every, backend
        As in :func:`~flowsim.schemes.gradient_descent`.

    Returns
    -------
    Trajectory or BatchTrajectory
        Iterate k at time k eta; with beta_i = 1 - c_i eta it follows
        :func:`flowsim.flows.adam.adam_flow` with a = c_1, b = c_2 to first order.

    Examples
    --------
    >>> tr = adam("x**2 + 10*y**2", [1.0, 1.0], 0.1, 1, eps=0.0)
    >>> tr.xs[1].tolist()   # the first step is a sign step
    [0.9, 0.9]
    """
    beta1, beta2, eps = _unit(beta1, "beta1"), _unit(beta2, "beta2"), _eps(eps)
    return _run(loss, x0, eta, steps, gtol, max_norm, record, record_every, ADAM,
                "adam", f"Adam (beta1={beta1:g}, beta2={beta2:g})", backend,
                {"beta1": beta1, "beta2": beta2, "eps": eps})


@parallel
def sign_descent(loss, x0, eta, steps, *, gtol=None, max_norm=1e8, record="all",
                 record_every=1, backend="numpy"):
    """Sign descent x_{k+1} = x_k - eta_k sign(grad L(x_k)).

    Parameters
    ----------
    loss, x0, eta, steps
        As for every scheme.
    gtol, max_norm, record, record_every, backend
        As in :func:`~flowsim.schemes.gradient_descent`.

    Returns
    -------
    Trajectory or BatchTrajectory
    """
    return _run(loss, x0, eta, steps, gtol, max_norm, record, record_every,
                SIGN_DESCENT, "sign_descent",
                "sign descent", backend)
