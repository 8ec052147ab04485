"""Proximal gradient (forward-backward splitting) for a smooth loss plus a penalty."""
from __future__ import annotations

import numpy as np

from ..backends import on_jax, refuse
from ..prox import Composite, check_dimension
from ..rules import bound_rule
from ._driver import as_record, common_arguments, run_rule, schedule_steps
from ..ensemble.workers import parallel

__all__ = ["proximal_gradient", "rule_of", "penalty_prox"]


@parallel
def proximal_gradient(loss, x0, eta, steps, *, prox=None, gtol=None, max_norm=1e8,
                      record="all", record_every=1, backend="numpy"):
    r"""Forward-backward splitting x_{k+1} = prox_{eta_k g}(x_k - eta_k grad f(x_k)).

    Parameters
    ----------
    loss : Loss, str or flowsim.prox.Composite
        The smooth part f; a :class:`~flowsim.prox.Composite` brings its own penalty.
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together (a BatchTrajectory equal to m single runs).
    eta : float or callable
        Step, or a schedule ``k -> eta_k``; converges for eta <= 1/Lipschitz(grad f).
    steps : int
    prox : penalty from :mod:`flowsim.prox`
        g, with ``value`` and ``prox``; required unless ``loss`` is a Composite.
    gtol : float, optional
        Stop when the gradient mapping |x - prox(x - eta grad f(x))| / eta <= gtol.
    max_norm : float
        Stop (diverged) once |x_k| > max_norm.
    record, record_every, backend
        What a run keeps and where it runs (see :func:`~flowsim.schemes.gradient_descent`):
        one update rule (:func:`rule_of`) on numpy and, for the penalties of
        :mod:`flowsim.prox` (written over an array namespace), on JAX.

    Returns
    -------
    Trajectory
        ``values`` are f + g; ``grad_norms`` are the gradient-mapping norms, the
        stationarity measure of composite problems (0 exactly at minimizers of f + g).

    Notes
    -----
    .. math:: x_{k+1} = \operatorname{prox}_{\eta_k g}\bigl(x_k - \eta_k \nabla f(x_k)\bigr)

    It discretizes the subgradient flow of f + g with iterate k at t_k = eta_0 + ... +
    eta_{k-1}, explicit in f and implicit in g.

    Examples
    --------
    >>> from flowsim.prox import L1
    >>> traj = proximal_gradient("(x - 3)**2 / 2", [0.0], 1.0, 2, prox=L1(1.0))
    >>> traj.xs[:, 0].tolist()
    [0.0, 2.0, 2.0]
    """
    if isinstance(loss, Composite):
        prox = loss.penalty if prox is None else prox
        loss = loss.smooth
    if prox is None or not hasattr(prox, "prox") or not hasattr(prox, "value"):
        raise ValueError("prox must be a penalty from flowsim.prox (with value and prox), "
                         "e.g. flowsim.prox.L1(0.1).")
    if on_jax(backend, compiled=True) and not hasattr(prox, "prox_xp"):
        refuse(f"backend='jax' runs penalties written over an array namespace (prox_xp, as "
               f"every penalty of flowsim.prox has); {type(prox).__name__} has none: use "
               "backend='numpy'.")
    f, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    check_dimension(prox, f.n)
    etas = schedule_steps(eta, steps)
    spec = as_record(record, record_every)

    def measures(run):   # f + g, and the gradient mapping at every kept iterate
        smooth, grads = f.observe(run.xs, full=True)
        e = etas[np.minimum(run.ks, steps - 1)][:, None]  # the step used from each kept x_k
        mapping = np.linalg.norm(run.xs - prox.prox(run.xs - e * grads, e), axis=-1) / e[:, 0]
        return smooth + prox.value(run.xs), mapping

    return run_rule(f, rule_of(prox), {}, X0, steps, etas, etas, gtol=gtol, max_norm=max_norm,
                    spec=spec, single=single, name="proximal_gradient",
                    label=f"proximal gradient ({type(prox).__name__})", backend=backend,
                    measures=measures)


def _step(k, eta, x, state, ops, options, penalty):
    x_next = penalty_prox(penalty, x - eta * ops.grad(x), eta, ops.xp)
    return x_next, (x - x_next) / eta, state, False


def penalty_prox(penalty, v, eta, xp):
    """prox_{eta g}(v) of ``penalty`` over ``xp``: its ``prox_xp`` where it has one (every
    penalty of :mod:`flowsim.prox`), else its numpy ``prox`` (a researcher's own penalty)."""
    own = getattr(penalty, "prox_xp", None)
    return own(v, eta, xp) if own is not None else penalty.prox(v, eta)


def rule_of(penalty):
    r"""The :class:`~flowsim.rules.UpdateRule` of forward-backward splitting with
    ``penalty``, x_{k+1} = prox_{eta_k g}(x_k - eta_k grad f(x_k)), with the gradient
    mapping (x_k - x_{k+1}) / eta_k as the stationarity measure ``gtol`` tests. One rule per
    penalty (by value), so the JAX backend compiles it once."""
    import pickle
    try:
        key = pickle.dumps(penalty)
    except Exception:   # an unpicklable penalty of one's own: one rule per object
        key = id(penalty)
    return bound_rule(_step, key, "the proximal step could not be taken", penalty=penalty)
