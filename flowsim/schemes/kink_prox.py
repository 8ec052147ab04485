r"""The proximal step of a loss with kinks (abs, max, min): backward Euler on the
subdifferential.

Where L has kinks, x_{k+1} = argmin_y L(y) + |y - x_k|^2/(2 eta) solves the inclusion

.. math:: 0 \in y - x_k + \eta\,\partial L(y),

not the equation y + eta grad L(y) = x_k: once the answer sits on a kink (|y| for y = 0),
the fixed subgradient sign(0) = 0 leaves the equation without a solution. With the loss
written as L(x; s), each abs(u_j) replaced by s_j u_j (:class:`~flowsim.flows.nonsmooth.
KinkModel`), the subdifferential at y is {grad_x L(y; s) : s_j = sign u_j(y) off the kinks,
s_j in [-1, 1] on the kinks u_j(y) = 0}. The step is found by an active-set iteration:

1. guess which kinks hold the answer (A: those the smooth step crosses or lands on);
2. solve, by Newton's method on (y, s_A) with a finite-difference Jacobian,
   y - x + eta grad_x L(y; s) = 0 and u_j(y) = 0 for j in A;
3. a kink in A whose s_j left [-1, 1] is released to that side; a kink off A that the
   answer crossed joins A; repeat until neither happens.

For L = 1/2 (y - a)^2 + c |y| this is the soft-thresholding
y = soft((x + eta a)/(1 + eta), eta c/(1 + eta)), exactly.
"""
from __future__ import annotations

import numpy as np

from ..flows.nonsmooth import kink_model

__all__ = ["kink_proximal_step"]

#: Newton iterations per active set, and active-set rounds.
NEWTON_STEPS = 60
ROUNDS = 30


def _solve(model, x, eta, y, s, active, tol):
    """Newton on F(y, s_A) = (y - x + eta grad L(y; s), u_A(y; s)); None where it fails."""
    n, A = len(x), list(active)
    s = s.copy()

    def F(z):
        yy, ss = z[:n], s.copy()
        ss[A] = z[n:]
        out = yy - x + eta * model.grad(yy, ss)
        return np.concatenate([out, model.u(yy, ss)[A]]) if A else out

    z = np.concatenate([y, s[A]])
    for _ in range(NEWTON_STEPS):
        f = F(z)
        if not np.all(np.isfinite(f)):
            return None
        scale = tol * (1.0 + np.abs(x).max() + np.abs(z[:n]).max())
        if np.abs(f).max() <= scale:
            y_out, s_out = z[:n], s.copy()
            s_out[A] = z[n:]
            return y_out, s_out
        J = np.empty((len(z), len(z)))
        for i in range(len(z)):
            h = 1e-7 * max(1.0, abs(z[i]))
            dz = z.copy()
            dz[i] += h
            J[:, i] = (F(dz) - f) / h
        try:
            step = np.linalg.lstsq(J, f, rcond=None)[0]
        except np.linalg.LinAlgError:
            return None
        z = z - step
    return None


def kink_proximal_step(loss, x, eta, *, tol=1e-12):
    """One proximal step of a loss with kinks from ``x`` (n,) with step ``eta``.

    Returns
    -------
    (y, rounds) : (ndarray, int)
        The step's result and the active-set rounds it took.

    Raises
    ------
    ValueError
        Where no active set gives a solution (the step failed; the message says why).
    """
    model = kink_model(loss)
    x = np.asarray(x, dtype=float)
    s0 = np.sign(model.u(x, np.ones(model.kinks)))
    s0[s0 == 0] = 1.0
    small = 1e-9 * (1.0 + np.abs(x).max())
    guess = x - eta * model.grad(x, s0)
    found, why = _active_set(model, x, eta, guess, s0, small, tol)
    if found is None:
        # the predictor's guess of the active set led nowhere (a kink whose side the
        # gradient does not see, as in min(x, 0)^2): start again from the minimizer of the
        # proximal objective found without derivatives, kinks within reach taken as active
        start = _direct_minimizer(loss, x, eta)
        if start is not None:
            near = 1e-6 * (1.0 + np.abs(x).max() + np.abs(start).max())
            found, why = _active_set(model, x, eta, start, s0, near, tol, direct=True)
    if found is None:
        raise ValueError(why)
    return found


def _active_set(model, x, eta, guess, s0, small, tol, direct=False):
    """The active-set iteration from ``guess``; ``((y, rounds), None)`` or ``(None, why)``.
    From a predictor, kinks it crossed or lands on start active; from a direct minimizer
    (``direct``), the kinks it lies on."""
    u_guess = model.u(guess, s0)
    s = np.where(u_guess >= 0, 1.0, -1.0)
    if direct:
        active = {j for j in range(model.kinks) if abs(u_guess[j]) <= small}
    else:
        active = {j for j in range(model.kinks) if np.sign(u_guess[j]) != s0[j] or
                  abs(u_guess[j]) <= small}
    for j in active:
        s[j] = 0.0
    y = guess
    for rounds in range(1, ROUNDS + 1):
        solved = _solve(model, x, eta, y, s, sorted(active), tol)
        if solved is None and active:
            # no answer on these kinks (one the gradient does not feel, as in min(x, 0)^2,
            # whose answer lies just beside it): release them to the sides they are on
            sides = model.u(y, s)
            for j in active:
                s[j] = 1.0 if sides[j] > 0 else -1.0 if sides[j] < 0 else s0[j]
            active = set()
            solved = _solve(model, x, eta, y, s, [], tol)
        if solved is None:
            return None, (f"the proximal step at the kinks {sorted(active)} has no solution "
                          "Newton's method could find")
        y, s = solved
        u = model.u(y, s)
        released = {j for j in active if abs(s[j]) > 1 + 1e-12}
        joined = {j for j in range(model.kinks) if j not in active and
                  u[j] * s[j] < -small}
        if not released and not joined:
            return (y, rounds), None
        for j in released:
            s[j] = np.sign(s[j])
        active = (active - released) | joined
    return None, f"the active set of kinks did not settle in {ROUNDS} rounds"


def _direct_minimizer(loss, x, eta):
    """argmin_y L(y) + |y - x|^2 / (2 eta) by Powell's derivative-free method (a start for
    the active-set iteration, not the answer), or None where it finds nothing finite."""
    import scipy.optimize
    value = loss.evaluator("value", batched=False)

    def objective(y):
        with np.errstate(all="ignore"):
            v = float(value(y)) + float((y - x) @ (y - x)) / (2 * eta)
        return v if np.isfinite(v) else np.inf
    res = scipy.optimize.minimize(objective, x, method="Powell",
                                  options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 20_000})
    return res.x if np.isfinite(objective(res.x)) else None
