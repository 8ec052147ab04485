r"""A vectorized stiff engine: Hairer and Wanner's RODAS4, every start with its own step size,
Jacobian and linear solves.

A Rosenbrock method of order 4 with an embedded order-3 estimate, six stages, L-stable and
stiffly accurate. With :math:`\gamma = 1/4` and :math:`W = I - h\gamma J` (one LU per step,
no Newton iteration), stage i solves

.. math::
    \frac{W}{h\gamma} K_i = f\Big(t + \alpha_i h,\; y + \sum_{j<i} a_{ij} K_j\Big)
        + \sum_{j<i} \frac{c_{ij}}{h} K_j + \gamma_i h\, \partial_t f,

:math:`y_{new} = y + \sum_i m_i K_i` and the error estimate is :math:`K_6`. The coefficients
are those of ``rodas.f`` (Hairer and Wanner, *Solving ODEs II*, section IV.7), in the
:math:`(a, c, m)` form of the KPP Rosenbrock integrators. Being of order 4, a batch at a given
rtol is as accurate as single runs with LSODA, BDF or Radau (an order-2 engine's error was about
100 times theirs). Small systems solve W with batched dense inverses on (a, d, d) stacks (the
plane by its adjugate); large ones take one sparse LU per start.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from .state import Ensemble, rms, stop_rules

__all__ = ["rosenbrock", "DENSE_UP_TO"]

#: RODAS4: gamma, the stage times alpha_i, the gamma_i of df/dt, and a_ij, c_ij, m_i.
GAMMA = 0.25
ALPHA = (0.0, 0.386, 0.21, 0.63, 1.0, 1.0)
GAMMAS = (0.25, -0.1043, 0.1035, -0.0362, 0.0, 0.0)
_M = (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895)
A = ((), (1.544,), (0.9466785280815826, 0.2557011698983284),
     (3.314825187068521, 2.896124015972201, 0.9986419139977817),
     _M, _M + (1.0,))
C = ((), (-5.6688,), (-2.430093356833875, -0.2063599157091915),
     (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
     (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.7089089320616),
     (8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136,
      -6.058818238834054))
M = _M + (1.0, 1.0)
#: The order of the embedded estimate (the controller's exponent is -1/(ORDER_ESTIMATE + 1)).
ORDER_ESTIMATE = 3
#: Largest system solved with batched dense inverses; above it, sparse LU per start.
DENSE_UP_TO = 64


def _solver(J, hs, D=GAMMA):
    """``solve(R)`` applying W^{-1} = (I - h D J)^{-1} row by row, and a mask of the rows whose
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
               dfdt=None, dense=False, j0=None, outputs=None):
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
    ens = Ensemble.begin(fun, Y0, t0, t_end, t_out, ORDER_ESTIMATE, rtol, atol, dense, j0,
                         outputs)
    exponent = -1.0 / (ORDER_ESTIMATE + 1)
    with np.errstate(all="ignore"):
        while (hs := ens.next_steps()) is not None:
            t, Y, F0 = ens.t, ens.Y, ens.F
            solve, singular = _solver(jac(t, Y), hs)
            dT = None if dfdt is None else dfdt(t, Y)
            hg = (hs * GAMMA)[:, None]
            K = []
            for i in range(len(ALPHA)):
                if i == 0:
                    R = F0.copy()
                else:
                    stage = Y.copy()
                    for a, k in zip(A[i], K):
                        stage += a * k
                    R = fun(t + ALPHA[i] * hs, stage)
                    for c, k in zip(C[i], K):
                        R += (c / hs)[:, None] * k
                if dT is not None and GAMMAS[i]:
                    R += (GAMMAS[i] * hs)[:, None] * dT
                K.append(hg * solve(R))
            Y_new = Y.copy()
            for m, k in zip(M, K):
                Y_new += m * k
            F_new = fun(t + hs, Y_new)
            scale = atol + np.maximum(np.abs(Y), np.abs(Y_new)) * rtol
            norm = rms(K[-1] / scale)
            norm[singular] = np.inf
            ok = ens.control(hs, norm, exponent, t + hs, Y_new, F_new)
            stop_rules(ens, ok, hs, t, check, max_steps).apply(ens)
    return ens
