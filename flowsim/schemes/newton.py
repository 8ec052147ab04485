"""Damped Newton's method: forward Euler on the Newton flow dx/dt = -H(x)^{-1} grad L(x)."""
from __future__ import annotations

from ._driver import as_record, common_arguments, run_rule, schedule_steps
from ..ensemble.workers import parallel
from ..rules import UpdateRule

__all__ = ["newton", "NEWTON"]


def _newton_step(k, eta, x, state, ops, options):
    g = ops.grad(x)
    d = ops.solve(ops.hess(x), g)
    # a singular Hessian gives a non-finite direction: that start's step fails
    return x - eta * d, g, state, ~ops.xp.all(ops.xp.isfinite(d), axis=-1)


#: x_{k+1} = x_k - eta_k H(x_k)^{-1} grad L(x_k), on every backend.
NEWTON = UpdateRule(_newton_step, failure="the Hessian is singular at x_{k}",
                    compiles=False)   # (a linear solve per step: no formula)


@parallel
def newton(loss, x0, eta, steps, *, gtol=None, max_norm=1e8, record="all", record_every=1,
           backend="numpy"):
    r"""Newton's method x_{k+1} = x_k - eta_k H(x_k)^{-1} grad L(x_k), full or damped.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together (a BatchTrajectory equal to m single runs).
    eta : float or callable
        The damping eta_k in (0, 1] (1: the full Newton step), or a schedule of them.
        Iterate k sits at time eta_0 + ... + eta_{k-1} on the Newton flow
        :func:`flowsim.newton_flow`.
    steps : int
    gtol : float, optional
        Stop (converged) at the first iterate with |grad L| <= gtol.
    max_norm : float
        Stop (diverged) once |x_k| > max_norm.
    record, record_every, backend
        As in :func:`~flowsim.schemes.gradient_descent`.

    Returns
    -------
    Trajectory
        Status ``failed`` where H(x_k) is singular.

    Notes
    -----
    .. math:: x_{k+1} = x_k - \eta_k H(x_k)^{-1} \nabla L(x_k)

    On the Newton flow grad L(x(t)) = e^{-t} grad L(x_0); a quadratic is solved in one full
    step, and with damping eta the gradient of a quadratic shrinks by exactly 1 - eta per step.

    Examples
    --------
    >>> traj = newton("(x - 1)**2 + (y + 2)**2", [5.0, 5.0], eta=1.0, steps=1)
    >>> traj.x_final.tolist()
    [1.0, -2.0]
    """
    loss, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    etas = schedule_steps(eta, steps, "eta (the damping of the Newton step)", upper=1.0)
    spec = as_record(record, record_every)
    full = etas.constant == 1.0
    return run_rule(loss, NEWTON, {}, X0, steps, etas, etas, gtol=gtol, max_norm=max_norm,
                    spec=spec, single=single, name="newton",
                    label="Newton" if full else "damped Newton",
                    backend=backend)
