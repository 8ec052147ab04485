r"""The explicit per-start engine of :mod:`flowsim.ensemble.explicit`, compiled: batched
gradient flows and a researcher's own vector fields with ``backend="numba"``.

Every start has its own steps (:mod:`flowsim.compiled.lanes`, 16 starts in lanes): scipy's
first step, the embedded pair's stages, scipy's error norm and step-size rule, steps cut to
land on the output times, and after each step the batch engines' stop rules in their order:
past ``max_norm`` (diverged), the stationarity <= ``gtol`` (converged) and the field's guard
(failed) on an accepted step; a step that underflowed on a rejected one and a spent budget
(a finite-time blow-up where the state is far out, else failed); the stiffness watch every
200 steps (the spectral radius of the Hessian, from ``numpy.linalg.eigvalsh`` as the numpy
engine takes it). :func:`run_field` and :func:`batch_engine` turn its codes into the
statuses and messages of :func:`flowsim.ensemble.explicit.explicit` and charge the loss
its evaluations. The numbers differ from numpy's in rounding only (sympy's printed formulas
against symengine's kernels), so a step whose error sits at the threshold can go the other
way, after which that start's path differs within the tolerance.
"""
from __future__ import annotations


import numpy as np

from .. import stops
from ..results import Status
from .lanes import BLOWN, CONVERGED, DIVERGED, GUARD, OVER, REACHED, STIFF, TINY

__all__ = ["METHODS", "check_method", "run_field", "batch_engine"]

#: The method names this engine runs: the explicit pairs, and "auto" (DOP853, each start
#: that turns out stiff handed to the numpy engine's RODAS4 from where it is).
METHODS = ("RK23", "RK45", "DOP853", "auto")
#: The steps to go that make a start stiff (:mod:`flowsim.ensemble.explicit`'s value for a
#: named explicit method); the check comes every STIFF_CHECK_EVERY accepted steps (lanes).
STIFF_STEPS, AUTO_STIFF_STEPS = 50_000, 2_000

def check_method(method, also=()):
    """Refuse, in one sentence and before any compiling, a ``method`` the compiled engine
    does not run (``also``: further names the caller maps onto :data:`METHODS`)."""
    if method not in METHODS:
        from ..backends import refuse
        names = METHODS + tuple(also)
        refuse(f"backend='numba' integrates flows with method in {names} (the explicit "
               f"pairs), not method={method!r}; name one, or use backend='numpy' or 'jax'.")


def run_field(compiled, Y0, t0, t_end, tableau, rtol, atol, t_out, max_steps, gtol,
              max_norm, dense, outputs, stiff_steps=STIFF_STEPS):
    """The starts ``Y0`` (m, n) through the compiled engine of ``tableau``; writes their
    outputs into ``outputs`` (``out``, ``sout``, ``fout``, as
    :class:`~flowsim.ensemble.run.Outputs` holds them) and returns ``(status, message,
    steps_taken, t_stop, evaluations)``, each of shape (m,)."""
    m = Y0.shape[0]
    out, sout, fout = outputs
    code = np.zeros(m, dtype=np.int64)
    t_stop, steps_taken = np.zeros(m), np.zeros(m, dtype=np.int64)
    values, evals, next_out = np.zeros(m), np.zeros(m, dtype=np.int64), np.zeros(m, np.int64)
    reach = t_out - 1e-12 * np.maximum(1.0, np.abs(t_out))
    with np.errstate(all="ignore"):
        compiled.engine(tableau)(
            np.ascontiguousarray(Y0, dtype=float), compiled.constants, float(t0),
            float(t_end), t_out, reach, float(rtol), float(atol), int(max_steps),
            gtol is not None, -1.0 if gtol is None else float(gtol), float(max_norm),
            int(stiff_steps), dense, out, sout, fout if dense else np.empty((1, 1, 1)),
            code, t_stop, steps_taken, values, evals, next_out)
    status = stops.every_start(m, Status.REACHED_END)
    message = stops.every_start(m, "")
    for s in np.flatnonzero(code > REACHED):
        status[s], message[s] = _ending(code[s], values[s], t_stop[s], gtol, max_norm,
                                        max_steps, stiff_steps)
    return status, message, steps_taken, t_stop, evals, code, next_out


def _ending(code, value, t, gtol, max_norm, max_steps, stiff_steps):
    """The status and message of a start that ended with ``code``, in the numpy engine's
    words."""
    if code == DIVERGED:
        return Status.DIVERGED, stops.diverged(value, max_norm)
    if code == CONVERGED:
        return Status.CONVERGED, stops.converged(value, gtol)
    if code == BLOWN:
        return Status.DIVERGED, stops.blew_up(value, t)
    if code == TINY:
        return Status.FAILED, stops.step_underflow(t)
    if code == OVER:
        return Status.FAILED, stops.spent(max_steps)
    return Status.FAILED, stops.stiff(stiff_steps)


def batch_engine(loss, compiled, why=None):
    """The engine of ``compiled`` (a :class:`CompiledField` of ``loss``) as
    :func:`flowsim.ensemble.run.batch_run` takes it (``engine=``): ``engine(Y0, t0, t_end,
    method, rtol, atol, t_out, budget, gtol, max_norm, dense)`` -> the
    :class:`~flowsim.ensemble.run.Outputs` of the starts Y0 and the starts that turned out
    stiff under ``method="auto"`` as :func:`~flowsim.ensemble.explicit.explicit` hands them
    over (indices, times, states, next outputs), the loss charged with the evaluations the
    numpy engine makes (f at each stage; the stationarity and the guard at each step).
    ``why(x)`` is the message of a start its guard stopped at x."""
    from ..ensemble.explicit import TABLEAUS
    from ..ensemble.run import Outputs

    def engine(Y0, t0, t_end, method, rtol, atol, t_out, budget, gtol, max_norm, dense):
        m, K = Y0.shape[0], t_out.size
        tableau = TABLEAUS.get(method, TABLEAUS["DOP853"])   # "auto": order 8 until stiff
        ens = Outputs.empty(m, K, Y0.shape[1], dense)
        status, message, steps, t_stop, evals, code, next_out = run_field(
            compiled, Y0, t0, t_end, tableau, rtol, atol, t_out, budget, gtol, max_norm,
            dense, ens.rows(slice(None)), AUTO_STIFF_STEPS if method == "auto" else
            STIFF_STEPS)
        for s in np.flatnonzero(code == GUARD):   # held where the guard stopped it
            status[s], message[s] = Status.FAILED, why(ens.out[s, -1])
        ens.status[:], ens.message[:] = status, message
        ens.steps_taken[:], ens.t_stop[:] = steps, t_stop
        per = {"field": int(evals.sum())}
        per["guard"] = per["stationarity"] = (per["field"] - 2 * m) // len(tableau.B)
        if gtol is None:
            per["stationarity"] = 0
        spent = {"value": 0, "grad": 0, "hess": 0}
        for part, calls in compiled.calls.items():
            for kind, count in calls.items():
                spent[kind] += count * per[part]
        loss.charge(**spent)
        idx = np.flatnonzero(code == STIFF) if method == "auto" else np.empty(0, int)
        held = ens.out[idx, -1] if idx.size else np.empty((0, Y0.shape[1]))
        return ens, (idx, t_stop[idx], held, next_out[idx])
    return engine
