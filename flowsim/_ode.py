"""One driver for every continuous flow: scipy's ODE solvers stepped in a loop we control.

``solve_ivp`` runs the same Python loop over ``OdeSolver.step``; driving it ourselves lets a
flow stop on its own conditions (converged, diverged, a Hessian that is not positive
definite) and keep every accepted step when the right-hand side becomes non-finite or a
solver gives up, instead of losing the partial path to an exception.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.integrate
import scipy.sparse

from .trajectory import Status

__all__ = ["METHODS", "IMPLICIT", "integrate", "Integration", "jacobian_for", "stacked"]

METHODS = {"RK23": scipy.integrate.RK23, "RK45": scipy.integrate.RK45,
           "DOP853": scipy.integrate.DOP853, "Radau": scipy.integrate.Radau,
           "BDF": scipy.integrate.BDF, "LSODA": scipy.integrate.LSODA}
IMPLICIT = ("Radau", "BDF", "LSODA")
MAX_STALLS = 50


@dataclass(frozen=True)
class Integration:
    """Raw result of :func:`integrate`: states at accepted steps and how it ended."""

    ts: np.ndarray          # (n_steps + 1,)
    ys: np.ndarray          # (n_steps + 1, dim)
    dense: object           # scipy OdeSolution or None
    status: Status
    message: str


def _banded(S, lower, upper):
    """Pack a sparse matrix into LSODA's banded layout ``packed[upper + i - j, j] = a_ij``."""
    coo = S.tocoo()
    packed = np.zeros((lower + upper + 1, S.shape[1]))
    packed[upper + coo.row - coo.col, coo.col] = coo.data
    return packed


def jacobian_for(method, sparse_jacobian, dense_jacobian, dim, bandwidth, prefer_sparse):
    """The Jacobian in the form ``method`` takes, as solver keyword arguments.

    Parameters
    ----------
    method : str
        Only the implicit methods (Radau, BDF, LSODA) get a Jacobian; others get ``{}``.
    sparse_jacobian, dense_jacobian : callable
        ``(t, y)`` -> ``scipy.sparse`` matrix, and -> ndarray of shape (dim, dim).
    bandwidth : int
        Largest |i - j| of a nonzero entry.
    prefer_sparse : bool
        Whether the Jacobian is large and sparse enough to keep sparse: Radau and BDF then
        take it as a sparse matrix, LSODA in its banded layout if the band is narrow.
    """
    if method not in IMPLICIT:
        return {}
    if prefer_sparse and method in ("Radau", "BDF"):
        return {"jac": sparse_jacobian}
    if prefer_sparse and method == "LSODA" and bandwidth < dim // 4:
        return {"jac": lambda t, y: _banded(sparse_jacobian(t, y), bandwidth, bandwidth),
                "lband": bandwidth, "uband": bandwidth}
    return {"jac": dense_jacobian}


def stacked(method, blocks):
    """Solver class and tolerance factor for ``blocks`` independent starts solved as one system.

    scipy's solvers bound the RMS of the scaled error over the whole state, so one start's
    error could reach sqrt(blocks) times what its own solve would allow. For RK23 and RK45
    the error norm is replaced by the largest per-start RMS, which is exactly one-by-one
    error control; for the other methods, whose norm is internal, both tolerances are
    divided by sqrt(blocks) instead (a guarantee bought with more steps).

    Returns
    -------
    solver_class : type
    factor : float
        Multiply rtol and atol by this.
    """
    base = METHODS[method]
    if method not in ("RK23", "RK45") or not hasattr(base, "_estimate_error"):
        return base, 1.0 / np.sqrt(blocks)

    class PerStart(base):
        def _estimate_error_norm(self, K, h, scale):
            err = (self._estimate_error(K, h) / scale).reshape(blocks, -1)
            return float(np.sqrt(np.max(np.mean(err * err, axis=1))))

    PerStart.__name__ = f"PerStart{method}"
    return PerStart, 1.0


def integrate(fun, y0, t_end, *, method, rtol, atol, t0=0.0, solver_options=None,
              dense_output=True, stop=None, max_steps=None, solver_class=None):
    """Step a scipy ``OdeSolver`` from ``t0`` to ``t_end``, stopping early when asked.

    Parameters
    ----------
    fun : callable
        ``fun(t, y)`` -> dy/dt, shape (dim,). It is handed to the solver as it is (no
        wrapper on the hot path); a non-finite value makes the solver reject the step or
        fail, and a non-finite accepted state ends the run.
    y0 : ndarray, shape (dim,)
    solver_options : dict, optional
        Extra keyword arguments for the solver class, e.g. from :func:`jacobian_for`.
    stop : callable or None
        ``stop(t, y, solver)`` -> ``None`` to go on, or ``(Status, message)`` to end here.
    max_steps : int or None
        Step budget; running out ends with ``Status.FAILED``.
    solver_class : type, optional
        Use this ``OdeSolver`` subclass instead of ``METHODS[method]`` (see :func:`stacked`).

    Returns
    -------
    Integration
    """
    options = dict(solver_options or {})
    ts, ys, interps = [t0], [np.array(y0, dtype=float)], []
    stalls = 0
    status, message = Status.REACHED_END, f"reached t_end = {t_end:g}"
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cls = solver_class or METHODS[method]
        solver = cls(fun, t0, ys[0], t_end, rtol=rtol, atol=atol, **options)
        while solver.status == "running":
            if max_steps is not None and len(ts) > max_steps:
                status = Status.FAILED
                message = f"stopped after max_steps = {max_steps} steps at t = {ts[-1]:.6g}"
                break
            try:
                failure = solver.step()
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:
                failure = str(err)
            if failure is not None or solver.status == "failed":
                status = Status.FAILED
                message = f"{method} gave up at t = {ts[-1]:.6g}: {failure}"
                break
            if not np.isfinite(solver.y.sum()):
                status = Status.DIVERGED
                message = (f"the state became non-finite after t = {ts[-1]:.6g} (the loss or "
                           "its gradient is undefined or overflows there); kept the path "
                           "up to there")
                break
            if solver.t == ts[-1]:  # LSODA can return a step that makes no progress
                stalls += 1
                if stalls >= MAX_STALLS:
                    status = Status.FAILED
                    message = (f"{method} made no progress for {MAX_STALLS} steps at "
                               f"t = {ts[-1]:.6g} (the flow is singular there)")
                    break
                continue
            stalls = 0
            ts.append(solver.t)
            ys.append(solver.y.copy())
            if dense_output:
                interps.append(solver.dense_output())
            reason = stop(solver.t, solver.y, solver) if stop is not None else None
            if reason is not None:
                status, message = reason
                break
    dense = scipy.integrate.OdeSolution(ts, interps) if dense_output and interps else None
    return Integration(np.array(ts), np.array(ys), dense, status, message)
