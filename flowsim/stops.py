"""How runs end, in one place: the stop messages, the step budgets and the integer status
codes of the compiled paths.

Every path (one start on scipy's steppers, the switching loop of non-smooth flows, the
per-start batched engines, the schemes' driver, diffrax and ``lax.scan``) says the same
sentence for the same ending, and reads ``max_steps`` the same way:

* ``"default"``: :func:`default_budget` of the system's size (100,000 steps for small
  systems, fewer for large ones so that a dense solution fits in memory);
* ``None``: no budget (:data:`UNLIMITED`);
* an int: that many accepted steps.
"""
from __future__ import annotations

import math

import numpy as np

from .results import Status

__all__ = ["converged", "diverged", "nonfinite", "outside_start", "outside",
           "not_finite_start", "step_underflow", "gave_up", "reached_end",
           "budget_spent", "spent", "blew_up", "stiff", "chatter",
           "default_budget", "budget", "UNLIMITED", "CODES", "DIVERGED_OWN", "code_of",
           "every_start"]

#: The budget a run with ``max_steps=None`` gets (a loop bound, never reached in practice).
UNLIMITED = 10 ** 9

#: Status by integer code, for the compiled paths (JAX) that carry statuses as numbers;
#: code 4 (:data:`DIVERGED_OWN`) is a divergence with the path's own sentence (a non-finite
#: iterate, a finite-time blow-up).
CODES = (Status.REACHED_END, Status.CONVERGED, Status.DIVERGED, Status.FAILED,
         Status.DIVERGED)
DIVERGED_OWN = 4


def every_start(m, value):
    """An object array of m references to ``value`` (a Status or a message), shape (m,).

    Every start's status or message before the run decides otherwise. ``np.full`` turns a
    Status into a plain str and takes 4 ms for 100,000 starts; filling an empty array
    keeps the object and takes 0.2 ms.
    """
    out = np.empty(m, dtype=object)
    out.fill(value)
    return out


def code_of(status):
    """The integer code of a :class:`~flowsim.Status` in :data:`CODES`."""
    return CODES.index(Status(status))   # (the first: DIVERGED is 2)


def default_budget(dim):
    """The step budget of a run in ``dim`` unknowns when none is given: 100,000 steps for
    small systems, fewer for large ones, so that the dense output (about 8 numbers per
    unknown and step) stays under 2e8 numbers (1.6 GB)."""
    return int(max(1000, min(100_000, 2e8 // (8 * dim))))


def budget(max_steps, dim):
    """The number of steps ``max_steps`` (checked by the caller) allows in ``dim`` unknowns."""
    if max_steps == "default":
        return default_budget(dim)
    return UNLIMITED if max_steps is None else int(max_steps)


def converged(gnorm, gtol, k=None):
    """|grad L| = ``gnorm`` fell to ``gtol`` (after ``k`` steps, for a scheme)."""
    after = f" after {k} steps" if k is not None else ""
    return f"|grad L| = {gnorm:.3g} <= gtol = {gtol:g}{after}"


def diverged(norm, max_norm, k=None):
    """|x| = ``norm`` passed ``max_norm`` (at step ``k``, for a scheme); a state that is not
    finite is named as such (overflow, or a field undefined there), not by its norm."""
    if not math.isfinite(norm):
        at = f" at step {k}" if k is not None else ""
        return (f"the state became non-finite{at} (overflow, or the flow is undefined there); "
                "kept the path before it")
    if k is not None:
        return f"|x| = {norm:.3g} exceeded max_norm = {max_norm:g} at step {k}"
    return f"|x| = {norm:.3g} exceeded max_norm = {max_norm:g}; the path diverges"


def outside_start(norm, max_norm):
    """A start with |x0| = ``norm`` beyond ``max_norm``: every path keeps it as it is (no step,
    no time), reports it ``diverged`` and says so with this sentence."""
    return (f"the start has |x0| = {norm:.3g} > max_norm = {max_norm:g}, so it was not run "
            "(start inside max_norm, or raise it)")


def not_finite_start():
    """A start whose state is not finite (a flow's state derived from x0, such as the Adam
    ODE's grad L(x0)^2, overflowed): every path keeps it as it is, ``diverged``."""
    return ("the flow's state at the start is not finite (what it derives from x0, such as "
            "grad L(x0)^2, overflows), so it was not run; scale the loss down")


def outside(X0, max_norm):
    """The starts of ``X0`` (m, n), or the one start (n,), beyond ``max_norm``:
    ``(rows, messages)``, their indices and :func:`outside_start`'s sentence for each (every
    path holds them where they are)."""
    from ._numeric import row_norms
    norms = row_norms(np.atleast_2d(X0))
    rows = np.flatnonzero(~(norms <= max_norm))
    return rows, [outside_start(v, max_norm) for v in norms[rows]]


def nonfinite(k):
    """The iterate after step ``k`` - 1 is not finite."""
    return (f"the iterate became non-finite at step {k} (overflow, or the loss is undefined "
            "there); kept the iterates before it")


def step_underflow(t):
    """The step size fell below the spacing of floats at ``t``: the same sentence from the
    batch engines, scipy's steppers ("Required step size is less than spacing between
    numbers") and LSODA's steps that make no progress."""
    return (f"stopped at t = {t:.6g}: the step size fell below the spacing of floats (the flow "
            "is singular there, or the loss is not finite)")


def gave_up(method, t, failure):
    """Why a scipy stepper ``method`` stopped at ``t`` with its ``failure`` text: the step
    underflow's own sentence (:func:`step_underflow`), else the solver's words."""
    if "spacing between numbers" in str(failure):
        return step_underflow(t)
    return f"{method} gave up at t = {t:.6g}: {failure}"


def reached_end(t_end, steps=None):
    """The run reached ``t_end`` (in ``steps`` accepted steps)."""
    return f"reached t_end = {t_end:g}" + (f" in {steps} steps" if steps is not None else "")


def budget_spent(max_steps, t):
    """The step budget ran out at time ``t``."""
    return (f"stopped after max_steps = {max_steps} steps at t = {t:.6g} (the step budget; "
            "pass a larger max_steps, or max_steps=None for none)")


def spent(max_steps):
    """A start of a batch engine spent its step budget (its time is its t_stop)."""
    return f"spent its max_steps = {max_steps} steps"


def blew_up(radius, t, stepper="the steps"):
    """A start stuck far out (its steps underflowed or ran out): a finite-time blow-up, with
    |state| = ``radius`` at ``t``; ``stepper`` names what could go no further."""
    return (f"the path blows up in finite time: |state| = {radius:.3g} at t = {t:.6g}, "
            f"where {stepper} could go no further")


def stiff(stiff_steps):
    """A start whose explicit step is held at the stability limit with more than
    ``stiff_steps`` steps to go."""
    return (f"the flow is stiff here: |h lambda_max| is held at the explicit method's "
            f"stability limit with more than {stiff_steps:,} steps to go; use an implicit "
            "method (BDF, Radau) or method='auto'")


def chatter(t, steps):
    """A switching flow that no longer moves: its velocity switches faster than it advances
    (a Zeno point), so the run ends there with the path kept."""
    return (f"the path chatters at t = {t:.6g}: its last {steps:,} steps averaged under 1e-8 "
            "in time (its velocity switches faster than it moves, where kinks of L meet the "
            "switches of the flow); kept the path up to there")
