r"""The sign-gradient flow x' = -sign(grad L(x)), sign descent's continuous-time limit.

The right-hand side jumps where a partial derivative g_i = dL/dx_i changes sign, so the flow
is meant in Filippov's sense: a system switching on the surfaces g_i(x) = 0.

* Off the surfaces the velocity is the constant -s with s_i = sign(g_i): the path is
  piecewise linear until some g_i reaches 0.
* At a surface g_j = 0 the flow crosses it when the velocities on both sides carry g_j
  the same way, and *slides* along it when both push into it (d g_j/dt < 0 above,
  > 0 below). Sign descent then zig-zags across the surface with amplitude ~ eta, and the
  flow is the average motion.
* On the sliding set S the velocity is Filippov's equivalent control: v_F = -s_F on the
  free coordinates and v_S in [-1, 1]^S chosen so that the surfaces stay put,
  d g_S / dt = H_SS v_S + H_SF v_F = 0, solved here as
  H_SS v_S = -H_SF v_F - g_S (the -g_S term relaxes numerical drift back onto the surface and
  vanishes on the exact path). A sliding coordinate leaves its surface once one side's
  velocity points away from it.

At a strict minimizer every coordinate slides and the velocity is 0: the flow reaches it in
finite time (at most |x_0 - x*|_1 on a separable quadratic).

The switching is located and handled by
:func:`flowsim.flows.nonsmooth.integrate_switching`, shared with the subgradient flow.
"""
from __future__ import annotations

import numpy as np

from .. import stops
from ._common import bound_stop, check_flow_arguments, check_start, converged, finish_flow, \
    outside_run, output_times
from ._solver import STABILITY_LIMIT, Integration
from .nonsmooth import integrate_switching
from .._validate import positive, start_points
from ..ensemble.workers import parallel

__all__ = ["SignModel", "sign_flow"]


def _dense(H):
    return H.toarray() if hasattr(H, "toarray") else np.asarray(H, dtype=float)


class SignModel:
    """The sign-gradient flow as a switching system: switching functions u_j = dL/dx_j.

    Parameters
    ----------
    loss : Loss
    """

    def __init__(self, loss):
        self.loss, self.kinks = loss, loss.n

    def u(self, x, s):
        """The switching functions g(x) = grad L(x), shape (n,)."""
        return np.asarray(self.loss.grad(x), dtype=float)

    def u_grad(self, x, s, j):
        """grad g_j(x) = row j of the Hessian, shape (n,)."""
        return _dense(self.loss.hess(x))[j]

    def velocity(self, x, s, sliding):
        """-s off the surfaces; the equivalent control on the sliding set."""
        v = -np.asarray(s, dtype=float).copy()
        if sliding:
            S = sorted(sliding)
            F = [i for i in range(self.kinks) if i not in sliding]
            H, g = _dense(self.loss.hess(x)), self.u(x, s)
            rhs = -g[S] - (H[np.ix_(S, F)] @ v[F] if F else 0.0)
            v[S] = np.clip(np.linalg.lstsq(H[np.ix_(S, S)], rhs, rcond=None)[0], -1.0, 1.0)
        return v


@parallel
def sign_flow(loss, x0, t_end, *, method="DOP853", rtol=1e-8, atol=1e-10, t_eval=None,
              gtol=None, max_norm=1e8, max_steps="default", dense_output=True):
    r"""Integrate the sign-gradient flow x' = -sign(grad L(x)) (Filippov) over [0, t_end].

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts (each with its own switching events, run start by start; a
        :class:`~flowsim.BatchTrajectory` on ``t_eval`` or the union of their steps).
    t_end : float
    method : {"DOP853", "RK45", "RK23", "auto"}
        An explicit :func:`scipy.integrate.solve_ivp` method for the smooth stretches
        (``"auto"`` is DOP853; implicit names fall back to it: the field is bounded by 1).
    rtol, atol : float
    t_eval : array_like, optional
        Output times; by default the accepted steps and switching events.
    gtol : float, optional
        Stop with status ``converged`` once |grad L(x)| <= gtol.
    max_norm : float
        Stop with status ``diverged`` once |x| > max_norm.
    max_steps : int, "default" or None
        Step budget (status ``failed`` when spent).
    dense_output : bool
        Keep the dense solution (the piecewise path between events).

    Returns
    -------
    Trajectory
        ``method="sign_flow"``, with ``dense``.

    Notes
    -----
    .. math:: \dot x = -\operatorname{sign}(\nabla L(x)),\qquad
              \frac{d}{dt} L(x(t)) = -\|\nabla L(x(t))\|_1 \le 0

    off the sliding surfaces. It is the steepest-descent flow of the l-infinity norm, and
    sign descent x_{k+1} = x_k - eta sign(grad L(x_k)) is its explicit Euler step (order 1,
    also while it chatters across a sliding surface). Adam with eps -> 0 and beta_1 = beta_2
    = 0 is sign descent.

    Examples
    --------
    On L = (x^2 + y^2)/2 + x y/2 from (1, 2), g_1 reaches 0 first (t = 4/3); the path then
    slides along x = -y/2 to the minimizer at t = 4/3 + 2/3 = 2:

    >>> import flowsim as fs
    >>> tr = fs.sign_flow("(x**2 + y**2)/2 + x*y/2", [1.0, 2.0], 3.0)
    >>> (tr.at(4 / 3).round(9) + 0.0).tolist(), (tr.x_final.round(9) + 0.0).tolist()
    ([-0.333333333, 0.666666667], [0.0, 0.0])
    """
    loss, t_end = check_flow_arguments(loss, t_end, method, rtol, atol, max_steps)
    x0 = start_points(x0, loss.n)
    if x0.ndim == 2:
        from .batch import one_by_one
        check_start(loss, x0)
        t_out = None if t_eval is None else output_times(t_eval, t_end)
        return one_by_one(loss, x0, t_end, t_out, dense_output, "sign_flow", lambda x: sign_flow(
            loss, x, t_end, method=method, rtol=rtol, atol=atol, gtol=gtol,
            max_norm=max_norm, max_steps=max_steps))
    gtol = positive(gtol, "gtol") if gtol is not None else None
    max_norm = positive(max_norm, "max_norm")
    t_eval = output_times(t_eval, t_end)
    check_start(loss, x0)
    explicit = method if method in STABILITY_LIMIT else "DOP853"
    bound = bound_stop(max_norm, loss.n)

    def stop(t, x, velocity):
        reason = bound(x)
        if reason is None and gtol is not None:
            reason = converged(np.linalg.norm(loss.grad(x)), gtol)
        return reason

    before = loss.counts
    budget = stops.budget(max_steps, loss.n)
    run = outside_run(x0, max_norm) or Integration(*integrate_switching(
        SignModel(loss), x0, t_end, method=explicit, rtol=rtol, atol=atol, max_steps=budget,
        stop=stop))
    return finish_flow(loss, run, t_eval if run.dense is not None else None, "sign_flow",
                       f"sign-gradient flow ({explicit})", before, keep_dense=dense_output)
