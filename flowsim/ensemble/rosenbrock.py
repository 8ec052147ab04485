r"""A vectorized stiff engine: the Rosenbrock method of MATLAB's ode23s, every start with its
own step size, Jacobian and linear solves.

Shampine and Reichelt's modified Rosenbrock pair of orders 2(3): with
:math:`d = 1/(2 + \sqrt 2)`, :math:`W = I - h d J`,

.. math::
    k_1 = W^{-1}(f_0 + h d T), \quad f_1 = f(t + h/2, y + h k_1/2), \quad
    k_2 = W^{-1}(f_1 - k_1) + k_1,

    y_{new} = y + h k_2, \quad f_2 = f(t + h, y_{new}), \quad
    k_3 = W^{-1}\bigl(f_2 - e_{32}(k_2 - f_1) - 2(k_1 - f_0) + h d T\bigr),

with :math:`e_{32} = 6 + \sqrt 2`, the error estimate :math:`h (k_1 - 2 k_2 + k_3)/6` and
:math:`T = \partial f/\partial t`. It is linearly implicit (one LU per step, no Newton
iteration) and stable on the whole left half-plane, so a stiff gradient flow steps at the pace
of its solution. Small systems solve W with batched dense inverses on (a, d, d) stacks; large
ones take one sparse LU per start.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from .state import Ensemble, rms, stop_rules

__all__ = ["rosenbrock", "DENSE_UP_TO"]

D = 1.0 / (2.0 + math.sqrt(2.0))
E32 = 6.0 + math.sqrt(2.0)
#: Largest system solved with batched dense inverses; above it, sparse LU per start.
DENSE_UP_TO = 64


def _solver(J, hs):
    """``solve(R)`` applying W^{-1} = (I - h d J)^{-1} row by row, and a mask of the rows whose
    W is singular."""
    if isinstance(J, list):  # sparse Jacobians, one per start
        lus, bad = [], np.zeros(len(J), bool)
        for i, (Ji, h) in enumerate(zip(J, hs)):
            W = scipy.sparse.identity(Ji.shape[0], format="csc") - (h * D) * Ji.tocsc()
            try:
                lus.append(scipy.sparse.linalg.splu(W))
            except RuntimeError:
                lus.append(None)
                bad[i] = True

        def solve(R):
            out = np.zeros_like(R)
            for i, lu in enumerate(lus):
                if lu is not None:
                    out[i] = lu.solve(R[i])
            return out
        return solve, bad
    a, d, _ = J.shape
    W = np.eye(d) - (hs * D)[:, None, None] * J
    bad = ~np.isfinite(W).all(axis=(1, 2))
    W[bad] = np.eye(d)
    if d == 2:  # the plane, the common case: the adjugate, without a LAPACK call per start
        det = W[:, 0, 0] * W[:, 1, 1] - W[:, 0, 1] * W[:, 1, 0]
        bad |= ~(np.abs(det) > 1e-300)
        det = np.where(bad, 1.0, det)
        p, q, r, u = W[:, 1, 1] / det, -W[:, 0, 1] / det, -W[:, 1, 0] / det, W[:, 0, 0] / det

        def solve2(R):
            return np.stack([p * R[:, 0] + q * R[:, 1], r * R[:, 0] + u * R[:, 1]], axis=1)
        return solve2, bad
    try:
        inv = np.linalg.inv(W)
    except np.linalg.LinAlgError:
        inv = np.empty_like(W)
        for i in range(a):
            try:
                inv[i] = np.linalg.inv(W[i])
            except np.linalg.LinAlgError:
                inv[i], bad[i] = np.eye(d), True

    def solve(R):
        return np.einsum("aij,aj->ai", inv, R)
    return solve, bad


def rosenbrock(fun, jac, Y0, t0, t_end, rtol, atol, t_out, *, max_steps=100_000, check=None,
               dfdt=None, dense=False, j0=None):
    """Integrate y' = f(t, y) for every row of ``Y0`` with per-start step control.

    Parameters
    ----------
    fun : callable
        ``fun(t, Y)`` -> shape (a, d), t of shape (a,).
    jac : callable
        ``jac(t, Y)`` -> df/dy: an array (a, d, d), or a list of a sparse matrices.
    Y0 : ndarray, shape (m, d)
    t0 : float or ndarray, shape (m,)
    t_out : ndarray, shape (K,)
        Output times; every step ends on them exactly when it would pass one.
    check : callable, optional
        As in :func:`~flowsim.ensemble.explicit.explicit`.
    dfdt : callable, optional
        ``dfdt(t, Y)`` -> df/dt, shape (a, d), for a non-autonomous f (zero by default).

    Returns
    -------
    Ensemble
    """
    ens = Ensemble.begin(fun, Y0, t0, t_end, t_out, 2, rtol, atol, dense, j0)
    with np.errstate(all="ignore"):
        while (hs := ens.next_steps()) is not None:
            t, Y, F0 = ens.t, ens.Y, ens.F
            solve, singular = _solver(jac(t, Y), hs)
            hdT = 0.0 if dfdt is None else (hs * D)[:, None] * dfdt(t, Y)
            k1 = solve(F0 + hdT)
            F1 = fun(t + hs / 2, Y + (hs / 2)[:, None] * k1)
            k2 = solve(F1 - k1) + k1
            Y_new = Y + hs[:, None] * k2
            F2 = fun(t + hs, Y_new)
            k3 = solve(F2 - E32 * (k2 - F1) - 2.0 * (k1 - F0) + hdT)
            scale = atol + np.maximum(np.abs(Y), np.abs(Y_new)) * rtol
            norm = rms((hs / 6)[:, None] * (k1 - 2.0 * k2 + k3) / scale)
            norm[singular] = np.inf
            ok = ens.control(hs, norm, -1.0 / 3.0, t + hs, Y_new, F2)
            stop_rules(ens, ok, hs, t, check, max_steps).apply(ens)
    return ens
