"""A vectorized explicit Runge-Kutta engine in which every start has its own step size.

Each start has its own error norm, accept/reject decision and step-size controller (scipy's
rules: RMS norm of err / (atol + rtol max(|y|, |y_new|)), factor 0.9 err^(-1/(q+1)) in
[0.2, 10]); steps end exactly on the output times, so outputs need no interpolation. Starts
that finish leave the active set and cost nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import stops
from ..results import Status
from .state import Ensemble, rms, stop_rules

__all__ = ["Tableau", "BS3", "DP5", "DOP853", "TABLEAUS", "explicit"]


@dataclass(frozen=True)
class Tableau:
    """An embedded explicit Runge-Kutta pair with the first-same-as-last property.

    ``error_order`` is the order q of the error estimate (the controller's exponent is
    -1/(q+1)); ``E`` weighs the stages and f(t + h, y_new) into the error estimate;
    ``stability`` is |h lambda| at the edge of the stability region on the negative axis.
    ``E_low``, where given, is a second, lower-order estimate blended with ``E`` as
    DOP853 does (Hairer, Norsett and Wanner's err5^2 / sqrt(err5^2 + 0.01 err3^2)).
    """

    name: str
    C: tuple
    A: tuple
    B: tuple
    E: tuple
    error_order: int
    stability: float
    E_low: tuple | None = None


#: Bogacki-Shampine 3(2), scipy's RK23.
BS3 = Tableau("BS3", (0.0, 1 / 2, 3 / 4), ((), (1 / 2,), (0.0, 3 / 4)),
              (2 / 9, 1 / 3, 4 / 9), (5 / 72, -1 / 12, -1 / 9, 1 / 8), 2, 2.5)
#: Dormand-Prince 5(4), scipy's RK45.
DP5 = Tableau("DP5", (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0),
              ((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
               (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
               (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656)),
              (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
              (-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40),
              4, 3.3)


def _dop853():
    """Dormand-Prince 8(5,3), scipy's DOP853, from scipy's own coefficients."""
    from scipy.integrate import DOP853 as scheme
    s = scheme.n_stages
    A = tuple(tuple(float(a) for a in scheme.A[i, :i]) for i in range(s))
    return Tableau("DOP853", tuple(float(c) for c in scheme.C[:s]), A,
                   tuple(float(b) for b in scheme.B), tuple(float(e) for e in scheme.E5),
                   scheme.error_estimator_order, 6.39,   # |R(z)| = 1 at z = -6.39
                   tuple(float(e) for e in scheme.E3))


DOP853 = _dop853()
#: The engine's pair for each scipy explicit method name.
TABLEAUS = {"RK23": BS3, "RK45": DP5, "DOP853": DOP853}

#: Accepted steps between two stiffness checks of a start.
STIFF_CHECK_EVERY = 200


def _combine(weights, K, h):
    """h * sum_i w_i K_i, shape (a, d), for stages K of shape (s, a, d): one einsum pass
    that sums each element over the stages in stage order (so each start's numbers do not
    depend on the others', as a BLAS product's blocking could make them; a stage whose
    weight is zero adds +0). Measured on 100,000 x 2 stacks: 1.05 ms against 1.8 ms for
    a multiply-add per stage."""
    w = np.asarray(weights, dtype=float)
    out = np.einsum("s,sad->ad", w, K[:len(w)])
    out *= h[:, None]
    return out


def explicit(fun, Y0, t0, t_end, tableau, rtol, atol, t_out, *, max_steps=100_000,
             check=None, spectral=None, stiff_steps=50_000, dense=False, j0=None,
             outputs=None):
    """Integrate y' = f(t, y) for every row of ``Y0`` to ``t_end``, each on its own steps.

    Parameters
    ----------
    fun : callable
        ``fun(t, Y)`` with t of shape (a,) and Y of shape (a, d) -> f, shape (a, d).
    Y0 : ndarray, shape (m, d)
    t0 : float or ndarray, shape (m,)
    tableau : Tableau
    t_out : ndarray, shape (K,)
        Output times, increasing, inside [t0, t_end]; each start writes its state there.
    check : callable, optional
        ``check(Y, F)`` -> a list of ``(status, rows, messages)``: the rows (indices into Y)
        that end with that status after an accepted step (convergence, divergence rules).
    spectral : callable, optional
        ``spectral(t, Y)`` -> spectral radius of df/dy per row; with it a start whose step
        is held at the stability limit, with more than ``stiff_steps`` steps to go, stops
        and is returned for an implicit engine.
    outputs : tuple, optional
        Arrays to write the outputs into (see :meth:`Ensemble.begin`).

    Returns
    -------
    ens : Ensemble
        Outputs ``out`` (m, K, d), ``status``, ``message``, ``t_stop``, ``steps_taken``.
    stiff : tuple of ndarrays (idx, t, Y, j)
        The starts handed over as stiff: indices, times, states and next outputs.
    """
    ens = Ensemble.begin(fun, Y0, t0, t_end, t_out, tableau.error_order, rtol, atol, dense,
                         j0, outputs)
    exponent = -1.0 / (tableau.error_order + 1)
    handed = ([], [], [], [])
    with np.errstate(all="ignore"):
        while (hs := ens.next_steps()) is not None:
            t, Y = ens.t, ens.Y
            K = np.empty((len(tableau.E),) + Y.shape)
            K[0] = ens.F
            for i, (c, a) in enumerate(zip(tableau.C[1:], tableau.A[1:]), start=1):
                stage = _combine(a, K, hs)
                stage += Y
                K[i] = fun(t + c * hs, stage)
            Y_new = _combine(tableau.B, K, hs)
            Y_new += Y
            F_new = K[-1] = fun(t + hs, Y_new)
            scale = np.maximum(np.abs(Y), np.abs(Y_new))
            scale *= rtol
            scale += atol
            err = _combine(tableau.E, K, hs)
            err /= scale
            norm = rms(err)
            if tableau.E_low is not None:   # DOP853's blend of its 5th and 3rd order errors
                low = _combine(tableau.E_low, K, hs)
                low /= scale
                low2 = rms(low) ** 2
                with np.errstate(invalid="ignore", divide="ignore"):   # NaN stays NaN
                    norm = np.where(norm == 0, 0.0,
                                    norm ** 2 / np.sqrt(norm ** 2 + 0.01 * low2))
            ok = ens.control(hs, norm, exponent, t + hs, Y_new, F_new)
            endings = stop_rules(ens, ok, hs, t, check, max_steps)
            if spectral is not None:
                _stiff(ens, spectral, tableau, endings, stiff_steps, t_end, handed)
            endings.apply(ens)
    stiff = tuple(np.concatenate(part) if part else np.empty(0) for part in handed)
    return ens, stiff


def _stiff(ens, spectral, tableau, endings, stiff_steps, t_end, handed):
    """Mark starts whose step is held at the stability limit with many steps to go."""
    due = (ens.nsteps > 0) & (ens.nsteps % STIFF_CHECK_EVERY == 0) & endings.free()
    rows = np.flatnonzero(due)
    if not rows.size:
        return
    h = ens.extra["h"][rows]
    many = (t_end - ens.t[rows]) / h > stiff_steps   # only these can be stiff: no
    rows, h = rows[many], h[many]                    # spectral radius for the others
    if not rows.size:
        return
    rho = spectral(ens.t[rows], ens.Y[rows])
    stiff = rows[h * rho >= 0.5 * tableau.stability]
    # handed to the implicit engine (or reported stiff)
    endings.mark(stiff, Status.FAILED, stops.stiff(stiff_steps))
    for part, values in zip(handed, (ens.idx[stiff], ens.t[stiff], ens.Y[stiff],
                                     ens.j[stiff])):
        part.append(values)
