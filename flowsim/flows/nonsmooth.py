"""Gradient flows of non-smooth losses: the minimal-norm subgradient flow x' = -d°L(x).

A loss built from smooth pieces and ``abs``, ``max``, ``min`` and ``relu`` has kinks where
an argument of ``abs`` (or a difference of the arguments of ``max``/``min``) vanishes. There
the gradient does not exist and the flow researchers mean is the subgradient flow
x' in -dL(x) in its minimal-norm (lazy) form x' = -d°L(x): for convex L its unique solution
(Brezis), and the Filippov sliding motion on a kink that both sides push into.

How it is computed:

* ``max(a, b) = (a + b + |a - b|)/2`` and ``min(a, b) = (a + b - |a - b|)/2`` write every kink
  as an ``abs``; each ``abs(u_j)`` is replaced by ``s_j u_j`` with a new symbol s_j, giving a
  smooth loss L(x; s) whose gradient is compiled once. Off the kinks s_j = sign(u_j(x)).
* On the kinks j in the sliding set S, -d°L(x) is -grad L(x; s) with s_S the minimizer of
  |grad L(x; s)| over the box [-1, 1]^S (the gradient is affine in s_S on the kink),
  solved by :func:`scipy.optimize.lsq_linear`.
* Between kinks the flow is smooth and integrated by an explicit Runge-Kutta method. When
  some u_j changes sign within a step, the crossing time is located on the step's dense
  output (:func:`scipy.optimize.brentq`) and the solver restarts there. At the kink the two
  sides' velocities decide: both pointing across, the flow crosses (s_j flips); both
  pointing into the kink, it slides (j joins S). A sliding kink is left when that stops.
  While sliding, u_j is held at 0 against numerical drift by the relaxation -u_j n / |n|^2
  (n = grad u_j), which vanishes on the exact path.
"""
from __future__ import annotations

import numpy as np
import scipy.integrate
import scipy.optimize
import sympy as sp

from .. import stops

from ..loss._compile import compile_kernels, compile_vector
from ._solver import METHODS
from ..results import Status

__all__ = ["KinkModel", "kink_model", "has_kinks", "integrate_nonsmooth", "integrate_switching"]

_KINKS = (sp.Abs, sp.Max, sp.Min)


def has_kinks(expr):
    """Whether ``expr`` holds abs, max or min (relu is a max)."""
    return expr.has(*_KINKS)


def _as_abs(expr):
    """max/min written with abs: max(a, b) = (a + b + |a - b|)/2, applied pairwise."""
    def pairwise(e):
        args = list(e.args)
        out = args[0]
        sign = 1 if isinstance(e, sp.Max) else -1
        for a in args[1:]:
            out = (out + a + sign * sp.Abs(out - a)) / 2
        return out
    return expr.replace(lambda e: isinstance(e, (sp.Max, sp.Min)), pairwise)


class KinkModel:
    """A non-smooth loss as L(x; s): the smooth loss with abs(u_j) replaced by s_j u_j.

    Parameters
    ----------
    loss : Loss
        A loss without data (``from_samples``); parameters are bound at their values.

    Attributes
    ----------
    kinks : int
        Number of kink functions u_j.
    """

    def __init__(self, loss):
        if loss.n_samples is not None:
            raise ValueError("the non-smooth flow needs a loss without data; build the full "
                             "sum as a formula.")
        expr = _as_abs(loss.expr).xreplace(
            {sym: sp.Float(loss.params[sym.name]) for sym in loss.expr.free_symbols
             if sym.name in loss.params})
        abs_terms = sorted(expr.atoms(sp.Abs), key=lambda a: sp.count_ops(a))
        self.s = [sp.Symbol(f"_s{j}", real=True) for j in range(len(abs_terms))]
        args = []
        for j, term in enumerate(abs_terms):  # innermost first: later args see earlier s
            inner = term.args[0].xreplace({t: s * a for t, s, a in
                                           zip(abs_terms[:j], self.s, args)})
            args.append(inner)
        replaced = expr.xreplace({t: s * a for t, s, a in zip(abs_terms, self.s, args)})
        self.n, self.kinks = loss.n, len(abs_terms)
        xs = list(loss.variables)
        self._grad = compile_kernels(replaced, xs, xs + self.s).grad
        # all kink functions in one kernel, and their x-gradients (row j) in another
        self._u = compile_vector(args, xs + self.s) if args else None
        self._du = compile_vector([sp.diff(a, v) for a in args for v in xs], xs + self.s) \
            if args else None

    def u(self, x, s):
        """Kink function values u_j(x; s), shape (kinks,)."""
        if self._u is None:
            return np.zeros(0)
        return np.asarray(self._u(np.concatenate([x, s])), dtype=float).reshape(-1)

    def u_grad(self, x, s, j):
        """grad_x u_j(x; s), shape (n,)."""
        rows = np.asarray(self._du(np.concatenate([x, s])), dtype=float)
        return rows.reshape(self.kinks, self.n)[j]

    def grad(self, x, s):
        """grad_x L(x; s), shape (n,)."""
        return self._grad(np.concatenate([x, s]))

    def min_norm(self, x, s, sliding):
        """s with s_S chosen so that |grad L(x; s)| is least over [-1, 1]^S."""
        if not sliding:
            return s
        idx = sorted(sliding)
        s = s.copy()
        s[idx] = 0.0
        g0 = self.grad(x, s)
        D = np.empty((self.n, len(idx)))
        for c, j in enumerate(idx):
            e = s.copy()
            e[j] = 1.0
            D[:, c] = self.grad(x, e) - g0
        sol = scipy.optimize.lsq_linear(D, -g0, bounds=(-1.0, 1.0), method="bvls")
        s[idx] = sol.x
        return s

    def velocity(self, x, s, sliding):
        """-d°L(x), with the drift correction on the sliding kinks."""
        s = self.min_norm(x, s, sliding)
        v = -self.grad(x, s)
        for j in sliding:
            n = self.u_grad(x, s, j)
            nn = n @ n
            if nn > 0:
                v = v - self.u(x, s)[j] * n / nn
        return v


def kink_model(loss):
    """The :class:`KinkModel` of ``loss``, compiled once and kept with it."""
    return loss.memo("kink_model", lambda: KinkModel(loss))


#: Relative length of the probe steps that tell which way a switching function that jumps
#: (grad of abs is sign) moves under each side's velocity.
PROBE = 1e-7


def _side_velocities(model, x, s, j, sliding):
    """d u_j / dt on the side u_j > 0 and on the side u_j < 0 (the other sliding kinks held).

    Where u_j jumps across the surface instead of passing through 0 (its gradient is 0 or
    not finite there, as for the sign flow of |x|, whose u = sign(x)), the rates are read
    from the signs of u_j a short step along each side's velocity: negative where the +
    side's velocity carries the path to the - side, and so on.
    """
    n = model.u_grad(x, s, j)
    plus, minus = s.copy(), s.copy()
    plus[j], minus[j] = 1.0, -1.0
    others = set(sliding) - {j}
    v_plus, v_minus = model.velocity(x, plus, others), model.velocity(x, minus, others)
    if np.all(np.isfinite(n)) and np.any(n != 0):
        return n @ v_plus, n @ v_minus
    step = PROBE * max(1.0, float(np.abs(x).max()))
    return (float(model.u(x + step * v_plus, plus)[j]),
            float(model.u(x + step * v_minus, minus)[j]))


def integrate_nonsmooth(loss, x0, t_end, **options):
    """The minimal-norm subgradient flow of ``loss`` from ``x0`` over [0, t_end]
    (:func:`integrate_switching` on the loss's :class:`KinkModel`)."""
    return integrate_switching(kink_model(loss), x0, t_end, **options)


def integrate_switching(model, x0, t_end, *, method="DOP853", rtol=1e-8, atol=1e-10,
                        max_steps=100_000, max_events=10_000, stop=None):
    """A Filippov system with switching functions u_j, from ``x0`` over [0, t_end].

    Parameters
    ----------
    model
        Has ``kinks`` (the number of switching functions), ``u(x, s)`` (their values, shape
        (kinks,)), ``u_grad(x, s, j)`` (grad u_j, shape (n,)) and ``velocity(x, s, sliding)``
        (the field on the side s in {-1, 1}^kinks, with the sliding set's entries of s
        chosen by the model). :class:`KinkModel` and the sign-gradient flow's model are two.
    stop : callable, optional
        ``stop(t, x, velocity)`` -> None or ``(Status, message)``, called at each accepted
        state; ``velocity()`` computes the flow's velocity -d°L(x) there when asked.

    Returns
    -------
    ts : ndarray, shape (k,)
    xs : ndarray, shape (k, n)
    dense : scipy.integrate.OdeSolution or None
    status : Status
    message : str
    """
    x = np.array(x0, dtype=float)
    # scipy's own floor on rtol, taken here (it warns once per solver, and this loop
    # starts a solver at every switch)
    rtol = max(float(rtol), 100 * np.finfo(float).eps)
    s = np.zeros(model.kinks)
    tol = 1e3 * np.finfo(float).eps * (1 + np.abs(x).max())
    u0 = model.u(x, s)
    s = np.where(u0 >= 0, 1.0, -1.0)
    sliding = set()
    for j in np.flatnonzero(np.abs(u0) <= tol):
        sliding |= _enter(model, x, s, int(j), sliding)
    ts, xs, interps = [0.0], [x.copy()], []
    events = 0
    t = 0.0
    while t < t_end:
        frozen_s, frozen_sliding = s.copy(), set(sliding)

        def fun(t_, y, _s=frozen_s, _S=frozen_sliding):
            return model.velocity(y, _s, _S)

        solver = METHODS[method](fun, t, x, t_end, rtol=rtol, atol=atol)
        restarted = False
        while solver.status == "running":
            if len(ts) > max_steps:
                return _out(ts, xs, interps, Status.FAILED,
                            f"stopped after max_steps = {max_steps} steps at t = {t:.6g}")
            if len(ts) > ZENO_STEPS and \
                    ts[-1] - ts[-ZENO_STEPS] <= ZENO_STEPS * 1e-8 * max(1.0, abs(t)):
                return _out(ts, xs, interps, Status.FAILED, stops.chatter(t, ZENO_STEPS))
            failure = solver.step()
            if failure is not None or solver.status == "failed":
                return _out(ts, xs, interps, Status.FAILED, stops.gave_up(method, t, failure))
            dense = solver.dense_output()
            u_new = model.u(solver.y, frozen_s)
            crossed = [j for j in range(model.kinks) if j not in frozen_sliding and
                       np.sign(u_new[j]) == -frozen_s[j] and abs(u_new[j]) > tol]
            if crossed:
                t_hit, hits = _first_crossing(model, dense, solver.t_old, solver.t,
                                              frozen_s, crossed)
                x = np.asarray(dense(t_hit))
                ts.append(t_hit)
                xs.append(x.copy())
                interps.append(dense)  # OdeSolution uses it only up to t_hit
                t = t_hit
                events += 1
                if events > max_events:
                    return _out(ts, xs, interps, Status.FAILED,
                                f"more than {max_events} kink events by t = {t:.6g} (the "
                                "path chatters between kinks)")
                for j_hit in hits:   # kinks reached together are entered together
                    sliding |= _enter(model, x, s, j_hit, sliding)
                restarted = True
                break
            t, x = solver.t, solver.y.copy()
            ts.append(t)
            xs.append(x.copy())
            interps.append(dense)
            reason = None if stop is None else \
                stop(t, x, lambda: model.velocity(x, s, sliding))
            if reason is not None:
                return _out(ts, xs, interps, *reason)
            left = _leaving(model, x, s, sliding)
            if left:
                sliding -= left
                restarted = True
                break
        if not restarted and solver.status == "finished":
            break
    return _out(ts, xs, interps, Status.REACHED_END, stops.reached_end(t_end, len(ts) - 1))


def _enter(model, x, s, j, sliding):
    """At kink j: flip s_j if the flow crosses, or return {j} if it slides."""
    into_from_plus, into_from_minus = _side_velocities(model, x, s, j, sliding)
    if into_from_plus <= 0 <= into_from_minus:   # both sides push in (or neither moves)
        return {j}
    if into_from_plus <= 0 and into_from_minus < 0:
        s[j] = -1.0
    elif into_from_plus > 0 and into_from_minus >= 0:
        s[j] = 1.0
    return set()   # (both sides pull away: the path stays on the side it came from)


def _leaving(model, x, s, sliding):
    """Sliding kinks the flow now leaves (one side's velocity points away); s set for them."""
    out = set()
    for j in sliding:
        plus, minus = _side_velocities(model, x, s, j, sliding)
        if plus > 0 or minus < 0:  # the + side (or the - side) now pulls away from the kink
            s[j] = 1.0 if plus > 0 else -1.0
            out.add(j)
    return out


#: A run whose last this many steps averaged less than 1e-8 (relative) in time chatters: it
#: creeps along a kink its switching cannot settle (a stiff smooth piece at |lambda| = 1e7
#: still takes steps of 3e-7).
ZENO_STEPS = 2_000

#: Roots closer than this (relative to the time) are one event: kinks reached together.
SIMULTANEOUS = 1e-9


def _first_crossing(model, dense, t0, t1, s, crossed):
    """The earliest root of the crossed u_j on the step's dense output, and every kink whose
    root falls there too (within :data:`SIMULTANEOUS`): ``(t, [j, ...])``."""
    roots = []
    for j in crossed:
        def u(t, _j=j):
            return model.u(np.asarray(dense(t)), s)[_j]
        xtol = 1e-15 * max(1.0, abs(t1))
        try:
            root = scipy.optimize.brentq(u, t0, t1, xtol=xtol)
        except ValueError:  # no sign change on the dense output: not crossed after all
            continue
        except RuntimeError:  # Brent's secant steps stall at a flat (multiple) root
            root = scipy.optimize.bisect(u, t0, t1, xtol=xtol, maxiter=400)
        roots.append((root, j))
    if not roots:
        return t1, [crossed[0]]
    first = min(r for r, _ in roots)
    together = SIMULTANEOUS * max(1.0, abs(first))
    return first, [j for r, j in sorted(roots) if r <= first + together]


def _out(ts, xs, interps, status, message):
    """The run's states and its dense solution. Steps of zero length (a switch taken at the
    time it was found, the steps of a path that chatters) carry no interval of their own:
    the dense solution is stitched from the others, so it exists for every run (a batch
    samples each start's path from it)."""
    ts, xs = np.array(ts), np.array(xs)
    dense = None
    if len(interps) == len(ts) - 1 and len(ts) > 1:
        moved = np.flatnonzero(np.diff(ts) > 0)
        if moved.size:
            dense = scipy.integrate.OdeSolution(np.append(ts[:1], ts[moved + 1]),
                                                [interps[i] for i in moved])
    return ts, xs, dense, status, message
