"""Proximal point: the backward Euler discretization of the gradient flow."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
import scipy.optimize
import scipy.sparse
import scipy.sparse.linalg

from .._numeric import row_norms
from .._validate import positive, positive_int
from ..loss import SPARSE_FROM
from ._driver import (StepFailed, as_record, common_arguments, finish, iterate, jax_run,
                      schedule_steps)
from ..backends import on_jax, refuse
from ..flows.nonsmooth import has_kinks
from .kink_prox import kink_proximal_step
from ..ensemble.workers import parallel

__all__ = ["proximal_point", "proximal_step", "newton_batch"]


def proximal_step(loss, x, eta, *, tol=1e-12, max_inner=50, c=1e-4):
    """Solve one backward Euler step y = x - eta grad L(y).

    Equivalently y = argmin_y L(y) + |y - x|^2 / (2 eta). Newton's method on
    F(y) = y + eta grad L(y) - x with the matrix I + eta H(y), globalized by a backtracking
    line search on that proximal objective; where I + eta H is not positive definite (a
    non-convex loss with a large step) or Newton stalls, ``scipy.optimize.minimize``
    (trust-exact, or L-BFGS-B for large n) takes over.

    Parameters
    ----------
    loss : Loss
    x : ndarray, shape (n,)
    eta : float
    tol : float
        Stop when |F(y)| <= tol * (1 + |x| + eta |grad L(y)|).

    Returns
    -------
    y : ndarray, shape (n,)
    inner : int
        Newton iterations (plus the minimizer's, if it was needed).
    residual : float
        |F(y)| at the answer.

    Raises
    ------
    StepFailed
        When neither Newton nor the fallback reaches the tolerance.
    """
    grad = loss.evaluator("grad", batched=False)
    value = loss.evaluator("value", batched=False)
    hess = loss.evaluator("hess", batched=False)
    n = x.size
    sparse = n >= SPARSE_FROM

    def objective(y):
        d = y - x
        return value(y) + (d @ d) / (2 * eta)

    x_norm = np.sqrt(x @ x)

    def scale(y, g):
        return tol * (1 + x_norm + eta * np.sqrt(g @ g))

    g = grad(x)
    y = x - eta * g  # explicit Euler predictor; kept only if it is the better start
    gy = grad(y)
    if not objective(y) <= objective(x):
        y, gy = x.copy(), g
    F = y + eta * gy - x
    res = np.sqrt(F @ F)
    base, slack = tol * (1 + x_norm), tol * eta
    for inner in range(max_inner):
        if res <= base + slack * np.sqrt(gy @ gy):
            return y, inner, res
        try:
            M = _shifted_hessian(loss, hess, y, eta, sparse)
            if sparse:
                d = -scipy.sparse.linalg.spsolve(M, F)
            else:
                # LAPACK's Cholesky solve: info > 0 unless I + eta H is positive definite
                _, d, info = scipy.linalg.lapack.dposv(M, F)
                if info != 0 or not abs(d @ d) < np.inf:
                    raise np.linalg.LinAlgError
                d = -d
        except (np.linalg.LinAlgError, ValueError, RuntimeError):
            # I + eta H is not positive definite (or singular): Newton could settle on a
            # saddle or a far local minimum of the proximal objective; a trust-region
            # minimizer follows its descent instead
            break
        slope = F @ d / eta  # directional derivative of the proximal objective
        if not slope < 0:
            break  # I + eta H is not positive definite here: leave it to the minimizer
        # Full Newton step, kept if the residual falls (quadratic convergence near the
        # answer); otherwise Armijo backtracking on the proximal objective.
        trial = y + d
        g_trial = grad(trial)
        F_trial = trial + eta * g_trial - x
        res_trial = np.sqrt(F_trial @ F_trial)
        if not res_trial <= (1 - c) * res:
            phi = objective(y)
            a = 1.0
            for _ in range(30):
                if objective(trial) <= phi + c * a * slope:
                    break
                a *= 0.5
                trial = y + a * d
            else:
                break
            g_trial = grad(trial)
            F_trial = trial + eta * g_trial - x
            res_trial = np.sqrt(F_trial @ F_trial)
        y, gy, F, res = trial, g_trial, F_trial, res_trial
    return _fallback(loss, x, eta, y, tol, scale, inner)


def _fallback(loss, x, eta, y0, tol, scale, inner):
    n = x.size
    grad = loss.evaluator("grad", batched=False)
    value = loss.evaluator("value", batched=False)

    def fun(y):
        d = y - x
        return value(y) + (d @ d) / (2 * eta), grad(y) + d / eta

    try:
        if n < SPARSE_FROM:
            def hess(y):
                return loss.hess(y) + np.eye(n) / eta
            sol = scipy.optimize.minimize(fun, y0, jac=True, hess=hess, method="trust-exact",
                                          options={"gtol": tol})
        else:
            sol = scipy.optimize.minimize(fun, y0, jac=True, method="L-BFGS-B",
                                          options={"gtol": tol, "maxiter": 10_000})
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:
        # the minimizer met a non-finite value (it left the loss's domain) or broke down
        raise StepFailed(f"the implicit equation y + eta grad L(y) = x_k could not be "
                         f"solved: the proximal objective is not finite or not solvable "
                         f"near x_k ({err})") from None
    y, res, polish = _newton_polish(loss, x, eta, sol.x)
    gy = grad(y)
    if not res <= 1e3 * scale(y, gy):
        raise StepFailed(f"the implicit equation y + eta grad L(y) = x_k was not solved "
                         f"(residual {res:.3g} after Newton and {sol.nit} minimizer "
                         f"iterations: {sol.message})")
    return y, inner + sol.nit + polish, res


def _shifted_hessian(loss, hess, y, eta, sparse):
    """I + eta H(y), the Jacobian of F(y) = y + eta grad L(y) - x: a sparse (CSC) matrix
    where ``sparse`` (no dense n x n), else a fresh dense one (``hess`` the point kernel)."""
    if sparse:
        M = scipy.sparse.identity(y.size, format="csc") + eta * loss.hess(y, sparse=True)
        return M.tocsc()
    M = hess(y)
    M *= eta
    M.flat[::y.size + 1] += 1.0
    return M


def _newton_polish(loss, x, eta, y, iterations=8):
    """Plain Newton steps on F(y) = y + eta grad L(y) - x from a minimizer's answer, kept
    while |F| falls: a minimizer of the proximal objective stops at that objective's rounding
    floor (|F| ~ 1e-8 where L ~ 100), while Newton on F converges quadratically wherever
    I + eta H is invertible (at a local minimum of the objective it is positive definite).
    Returns ``(y, |F(y)|, iterations taken)``."""
    grad, hess = loss.evaluator("grad", batched=False), loss.evaluator("hess", batched=False)
    sparse = y.size >= SPARSE_FROM   # as the Newton loop: no dense n x n matrix
    F = y + eta * grad(y) - x
    res = np.sqrt(F @ F)
    taken = 0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a singular sparse system: nan, which ends it
        for taken in range(1, iterations + 1):
            try:
                M = _shifted_hessian(loss, hess, y, eta, sparse)
                trial = y - (scipy.sparse.linalg.spsolve(M, F) if sparse else
                             np.linalg.solve(M, F))
            except (np.linalg.LinAlgError, RuntimeError):
                break
            F_trial = trial + eta * grad(trial) - x
            res_trial = np.sqrt(F_trial @ F_trial)
            if not res_trial < res:
                break
            y, F, res = trial, F_trial, res_trial
    return y, res, taken


def _objective(value, X, Y, eta):
    """The proximal objectives L(y) + |y - x|^2 / (2 eta) of each row, shape (a,)."""
    D = Y - X
    return value(Y) + np.einsum("ij,ij->i", D, D) / (2 * eta)


def newton_batch(loss, X, eta, tol=1e-12, max_inner=50, c=1e-4):
    """Backward Euler steps y + eta grad L(y) = x of many rows at once, by batched Newton.

    The same iteration as :func:`proximal_step` (explicit predictor, Newton on
    F(y) = y + eta grad L(y) - x with I + eta H(y), Armijo backtracking on the proximal
    objective), on stacks of rows with batched solves. Rows where I + eta H is not positive
    definite, where Newton does not descend, or that do not converge, are left ``pending``
    for :func:`proximal_step` (and its trust-region fallback), one by one.

    Returns
    -------
    Y : ndarray, shape (a, n)
    inner : ndarray, shape (a,)
    residual : ndarray, shape (a,)
    pending : ndarray of bool, shape (a,)
    """
    grad, value = loss.evaluator("grad"), loss.evaluator("value")
    a, n = X.shape
    eye = np.eye(n)
    base = tol * (1 + row_norms(X))
    G = grad(X)
    Y = X - eta * G
    GY = grad(Y)
    worse = ~(_objective(value, X, Y, eta) <= value(X))
    Y[worse], GY[worse] = X[worse], G[worse]
    F = Y + eta * GY - X
    res = row_norms(F)
    inner = np.zeros(a)
    active, pending = np.ones(a, bool), np.zeros(a, bool)
    for _ in range(max_inner):
        active &= ~(res <= base + tol * eta * row_norms(GY))
        r = np.flatnonzero(active)
        if not r.size:
            break
        M = eta * loss.hess(Y[r]) + eye
        with np.errstate(all="ignore"):
            ok = np.isfinite(M).all(axis=(1, 2))
            ok[ok] = np.linalg.eigvalsh(M[ok])[:, 0] > 0
        pending[r[~ok]], active[r[~ok]] = True, False
        r, M = r[ok], M[ok]
        if not r.size:
            break
        D = -np.linalg.solve(M, F[r][..., None])[..., 0]
        slope = np.einsum("ij,ij->i", F[r], D) / eta
        trial, scale = Y[r] + D, np.ones(r.size)
        Gt = grad(trial)
        Ft = trial + eta * Gt - X[r]
        rt = row_norms(Ft)
        back = ~(rt <= (1 - c) * res[r])
        if back.any():  # Armijo backtracking on the proximal objective, row by row at once
            b = np.flatnonzero(back)
            phi = _objective(value, X[r[b]], Y[r[b]], eta)
            left = np.ones(b.size, bool)
            for _ in range(30):  # only the rows still searching are evaluated
                q = np.flatnonzero(left)
                rows_q = r[b[q]]
                cand = Y[rows_q] + scale[b[q], None] * D[b[q]]
                fine = _objective(value, X[rows_q], cand, eta) <= \
                    phi[q] + c * scale[b[q]] * slope[b[q]]
                left[q[fine]] = False
                if not left.any():
                    break
                scale[b[left]] *= 0.5
            stuck = b[left | ~(slope[b] < 0)]
            pending[r[stuck]], active[r[stuck]] = True, False
            trial[b] = Y[r[b]] + scale[b, None] * D[b]
            Gt[b] = grad(trial[b])
            Ft[b] = trial[b] + eta * Gt[b] - X[r[b]]
            rt[b] = row_norms(Ft[b])
        go = active[r]
        Y[r[go]], GY[r[go]], F[r[go]], res[r[go]] = trial[go], Gt[go], Ft[go], rt[go]
        inner[r[go]] += 1
    pending |= active & ~(res <= base + tol * eta * row_norms(GY))
    return Y, inner, res, pending


@parallel
def proximal_point(loss, x0, eta, steps, *, tol=1e-12, max_inner=50, gtol=None,
                   max_norm=1e8, record="all", record_every=1, backend="numpy"):
    r"""Proximal point x_{k+1} = x_k - eta grad L(x_{k+1}): backward Euler on the flow.

    Parameters
    ----------
    loss : Loss or str
    x0 : array_like, shape (n,) or (m, n)
        One start, or m starts run together (a BatchTrajectory equal to m single runs).
    eta : float or callable
        Step, or a schedule ``k -> eta_k``.
    steps : int
    tol, max_inner
        Inner Newton tolerance and iteration budget (see :func:`proximal_step`).
    gtol, max_norm, record, record_every
        As in :func:`~flowsim.schemes.gradient_descent`.
    backend : {"numpy", "jax", "auto"}
        ``"jax"`` runs the same steps compiled with ``jax.lax.scan`` (an optional extra,
        :mod:`flowsim.jax_backend`): Newton from the same predictor on the exact Hessian up to
        ``max_inner`` iterations, without the numpy path's line search and fallback (a step
        that misses ``tol`` ends that start ``failed``); no per-step ``extras``.
        ``"auto"``: whichever of the two finishes first for this batch, start-up included
        (:func:`flowsim.backends.choose`; numpy for one start or without JAX); the label
        ends with ``[auto: numpy]`` or ``[auto: jax]``.

    Returns
    -------
    Trajectory
        ``extras["inner_iterations"]`` and ``extras["residuals"]`` per step. A step that
        cannot be solved ends the run (that start's, in a batch) with status ``failed``.
        Each start of a batch solves its own implicit equations.

    Notes
    -----
    .. math:: x_{k+1} = \arg\min_y \; L(y) + \frac{|y - x_k|^2}{2\eta}
              \iff x_{k+1} = x_k - \eta \nabla L(x_{k+1})

    Where the proximal objective is not convex (eta > 1/|lambda_min| somewhere), the
    implicit equation has several solutions; the step returns a local minimizer of the
    objective (I + eta H positive definite there) reached from the explicit predictor
    x_k - eta grad L(x_k), the branch that tends to x_k as eta -> 0 and is of order 1
    against the flow. It need not be the global minimizer (the proximal map's set-valued
    jumps). A minimizer's answer is polished by Newton's method on the implicit equation,
    so its residual is at the tolerance and not at the objective's rounding floor.

    On a quadratic, x_k - x* = (I + eta A)^{-k} (x_0 - x*): every direction contracts by
    1/(1 + eta lambda_i) for any eta > 0, so it is stable where GD blows up, and on a
    convex loss L(x_{k+1}) <= L(x_k) for every eta.

    Examples
    --------
    >>> traj = proximal_point("x**2 / 2", [1.0], eta=1.0, steps=2)
    >>> np.round(traj.xs[:, 0], 12).tolist()
    [1.0, 0.5, 0.25]
    """
    loss, X0, steps, gtol, max_norm, single = common_arguments(
        loss, x0, steps, gtol, max_norm, record, record_every)
    etas = schedule_steps(eta, steps)
    tol = positive(tol, "tol")
    max_inner = positive_int(max_inner, "max_inner")
    spec = as_record(record, record_every)
    kinks = has_kinks(loss.expr) and loss.n_samples is None
    if on_jax(backend):
        if kinks:
            refuse("backend='jax' solves smooth proximal steps; this loss has kinks "
                             "(abs, max, min): use backend='numpy', whose step is the "
                             "proximal map of the subdifferential there.")
        return jax_run(loss, "proximal_point", X0, etas, etas,
                       options={"tol": tol, "max_inner": max_inner}, gtol=gtol,
                       max_norm=max_norm, spec=spec, single=single, label="proximal point")
    grad = loss.evaluator("grad", batched=not single) if gtol is not None else None

    def kink_step(k, X, rows):   # backward Euler on the subdifferential, row by row
        Y, inner, res = np.empty_like(X), np.empty(len(X)), np.zeros(len(X))
        failed, why = np.zeros(len(X), bool), []
        for i, x in enumerate(X):
            try:
                Y[i], inner[i] = kink_proximal_step(loss, x, etas[k], tol=tol)
            except ValueError as err:
                Y[i], inner[i], failed[i] = x, 0, True
                why.append(str(err))
        return Y, (grad(X) if grad is not None else None), \
            {"inner_iterations": inner, "residuals": res, "failed": failed,
             "failed_messages": why}

    def step(k, X, rows):
        if not single:  # batched Newton, any number of rows; the rows it leaves go one by one
            Y, inner, res, pending = newton_batch(loss, X, etas[k], tol, max_inner)
        else:
            Y, inner, res = np.empty_like(X), np.empty(1), np.empty(1)
            pending = np.ones(1, bool)
        failed, why = np.zeros(len(X), bool), []
        for i in np.flatnonzero(pending):
            x = X[i]
            try:
                Y[i], inner[i], res[i] = proximal_step(loss, x, etas[k], tol=tol,
                                                       max_inner=max_inner)
            except StepFailed as err:
                failed[i] = True
                why.append(str(err))
        return Y, (grad(X) if grad is not None else None), \
            {"inner_iterations": inner, "residuals": res, "failed": failed,
             "failed_messages": why}

    before = loss.counts
    run = iterate(loss, X0, steps, kink_step if kinks else step, etas, gtol=gtol,
                  max_norm=max_norm, records=("inner_iterations", "residuals"), record=spec)
    return finish(loss, run, "proximal_point",
                  "proximal point (subdifferential)" if kinks else "proximal point", before,
                  single=single, extras=run.records, record=spec)
