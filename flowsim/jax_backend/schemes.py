r"""Schemes on ``jax.lax.scan``: the numpy path's update rules and stop rules, compiled.

Every start carries its state, whether it is still active, the iterate it stopped at and
why. One step, for each active start (vmapped over the m starts):

* the scheme's update gives x_{k+1} (and, where the step computes it, grad L(x_k));
* ``converged``: |grad L(x_k)| <= gtol stops the start at iterate k;
* ``failed``: the step could not be taken (proximal point's Newton solve) stops it at k;
* ``diverged``: |x_{k+1}| > max_norm stops it at k + 1 (at k when x_{k+1} is not finite).

A stopped start holds its state. The steps run in chunks of ``record_every``, so only the
kept iterates leave the device; ``record="final"`` keeps the start and the end only. The
kept states, statuses and messages then go through the numpy path's
:func:`flowsim.schemes._driver.finish`, so the result is the same ``Trajectory`` /
``BatchTrajectory`` (the numpy path's growth test and non-finite cut included). Compiled
functions are cached per loss, scheme, options and step count: a second call runs at once.
"""
from __future__ import annotations

import numpy as np

from .. import stops
from .._numeric import row_norms
from ..results import Status
from ..schemes._driver import Run, measured, converged_message, escape, finish
from ..schemes._record import hold_stopped, kept_iterates
from . import key_seed, require, untraceable
from .compiled import jax_loss
from .programs import Program
from .updates import UPDATES, Rule, from_update_rule

# the update records live in .updates; re-exported here, where the driver reads them
__all__ = ["run_scheme", "Rule", "UPDATES", "from_update_rule"]

CONVERGED, FAILED, DIVERGED = (stops.code_of(s) for s in (Status.CONVERGED, Status.FAILED,
                                                            Status.DIVERGED))
OUT_NONFINITE = stops.DIVERGED_OWN


def _norms(jnp, X):
    """Row norms without overflow where |x| is finite but |x|^2 is not (as numpy's path)."""
    scale = jnp.max(jnp.abs(X), axis=1)
    safe = jnp.where((scale > 0) & jnp.isfinite(scale), scale, 1.0)
    return jnp.where((scale > 0) & jnp.isfinite(scale),
                     safe * jnp.sqrt(jnp.sum((X / safe[:, None]) ** 2, axis=1)), scale)


def _plain_norms(jnp, X):
    """Row norms as sqrt of the summed squares, the columns unrolled for few variables (one
    fused pass; :func:`_norms`' scaling costs several passes and row reductions a step). A
    row past 1.3e154 reads inf and one below 1e-154 may read 0: exact for tests against
    thresholds between 1e-150 and 1e150 (see ``settle``); the host measures the stopped
    rows again for their messages."""
    if X.shape[1] > 16:
        return jnp.sqrt(jnp.sum(X * X, axis=1))
    out = X[:, 0] * X[:, 0]
    for i in range(1, X.shape[1]):
        out = out + X[:, i] * X[:, i]
    return jnp.sqrt(out)


def _rows_any(jnp, B):
    """Row-wise any of a boolean (m, n): unrolled over few columns, where XLA's CPU row
    reductions cost several times the step itself."""
    if B.shape[1] > 16:
        return jnp.any(B, axis=1)
    out = B[:, 0]
    for i in range(1, B.shape[1]):
        out = out | B[:, i]
    return out


def _where_rows(jax, jnp, mask, new, old):
    """Per start (leading axis), ``new`` where ``mask`` else ``old``, leaf by leaf."""
    return jax.tree_util.tree_map(
        lambda a, b: jnp.where(jnp.reshape(mask, mask.shape + (1,) * (a.ndim - 1)), a, b),
        new, old)


#: Steps run between two stop decisions of the JAX scheme driver (see ``optimistic``).
BLOCK = 32
#: At most this many starts that may have stopped in a block are replayed apart.
REPLAY_ROWS = 64


def _compiled(loss, name, rule, options, steps, every, gtol, max_norm):
    """The jitted run for these static settings (cached on the loss; ``jax.jit`` compiles it
    once per batch shape), and between processes as a
    :class:`~flowsim.jax_backend.programs.Program`."""
    key = ("jax_scheme", name, rule, tuple(sorted((k, v) for k, v in options.items()
                                                  if not k.startswith("_"))),
           steps, every, gtol, max_norm)
    cache = loss.memo("jax_runs", dict)
    if key not in cache:
        # the driver's own settings are part of what the trace depends on
        cache[key] = Program(lambda: _traced(loss, rule, options, steps, every, gtol,
                                             max_norm), (key, loss, BLOCK, REPLAY_ROWS))
    return cache[key]


def _traced(loss, rule, options, steps, every, gtol, max_norm):
    """The ``jax.jit`` of :func:`_compiled`'s run (traced on its first call)."""
    jax, jnp = require()
    lax = jax.lax
    J = jax_loss(loss)
    update = rule.factory(J, jnp, lax, dict(options, _jax=jax))
    vstep = jax.vmap(update, in_axes=(None, None, 0, 0))

    quick = max_norm / np.sqrt(J.n)   # max |x_i| <= quick means |x| <= max_norm

    # the thresholds decide with plain norms (an overflowing square is past max_norm, an
    # underflowing one below gtol); outside this range the scaled norms do
    plain = (gtol is None or gtol >= 1e-150) and max_norm <= 1e150
    norms = (lambda A: _plain_norms(jnp, A)) if plain else (lambda A: _norms(jnp, A))

    def settle(k, carry, step):
        """Every start's stop rules for step k (taken only when some start may stop)."""
        X, aux, active, last, code, stat, _ = carry
        Xn, G, auxn, failed = step
        gnorm = norms(G)
        conv = active & (gnorm <= gtol) if gtol is not None else \
            jnp.zeros_like(active)
        fail = active & ~conv & failed
        norm = norms(Xn)
        out = active & ~conv & ~fail & ~(norm <= max_norm)
        finite = ~_rows_any(jnp, ~jnp.isfinite(Xn))
        moves = active & ~conv & ~fail & (~out | finite)
        X = jnp.where(moves[:, None], Xn, X)
        aux = _where_rows(jax, jnp, moves & ~out, auxn, aux)
        last = jnp.where(conv | fail, k, jnp.where(out, jnp.where(finite, k + 1, k), last))
        code = jnp.where(conv, CONVERGED, jnp.where(fail, FAILED, jnp.where(
            out, jnp.where(finite, DIVERGED, OUT_NONFINITE), code)))
        stat = jnp.where(conv, gnorm, jnp.where(out, norm, stat))
        active = active & ~(conv | fail | out)
        return X, aux, active, last, code, stat, jnp.all(active)

    def maybe_stops(Xn, G, failed):
        """Rows that may stop at this step (a coordinate past max_norm / sqrt(n), not
        finite, a failed step, or every |g_i| <= gtol): a superset, decided cheaply."""
        maybe = _rows_any(jnp, ~(jnp.abs(Xn) <= quick)) | failed
        if gtol is not None:
            maybe = maybe | ~_rows_any(jnp, jnp.abs(G) > gtol)
        return maybe

    def body(carry, k_eta):
        k, eta = k_eta
        X, aux, active = carry[:3]
        step = vstep(k, eta, X, aux)
        Xn, G, auxn, failed = step
        # the common case, decided by one reduction: no active start stops at this step
        maybe = maybe_stops(Xn, G, failed)

        def go_on(c):   # no start stops: the active ones step (all of them, mostly)
            return lax.cond(c[-1], lambda c: (Xn, auxn) + c[2:],
                            lambda c: (jnp.where(c[2][:, None], Xn, c[0]),
                                       _where_rows(jax, jnp, c[2], auxn, c[1])) + c[2:], c)
        carry = lax.cond(jnp.any(active & maybe), lambda c: settle(k, c, step), go_on, carry)
        return carry, None

    def checked(carry, ks, es):   # every step with its stop rules
        return lax.scan(body, carry, (ks, es))[0]

    def optimistic(carry, ks, es):
        """A block of steps without per-step stop decisions (no lax.cond between steps, so
        XLA fuses them); where an active start may have stopped in it, the block is run
        again from its start with the stop rules (the same steps; a start's result does not
        depend on whether its block was replayed, up to XLA's fusion of the arithmetic).

        Whether a start may have stopped is carried in its state, not beside it: a
        coordinate past max_norm / sqrt(n) (or not finite), or every coordinate of a start
        whose step failed or whose gradient met gtol, is set to NaN, and a coordinate that
        was NaN stays NaN whatever the rule makes of it (x == x is tested elementwise). One
        select fused into the step: a per-row flag beside the state cost 1.4-1.5x a bare
        scan of the same steps on XLA's CPU, the NaN 0.75-0.95x (benchmarks/
        bench_gd_anatomy.py). A start with a NaN at the block's end is then one that may
        have stopped.

        Where at most :data:`REPLAY_ROWS` starts may have, only they are replayed: gathered
        from the block's start, run with the stop rules, and put back over the bare block's
        results (the others' are exact). A run with gtol, whose starts converge in most
        blocks, then pays for a few rows' replays instead of every row's (1e5 starts, 1000
        steps: 2.2 s -> 0.2 s; 0.13 s without gtol)."""
        X0, aux0, active = carry[:3]

        def bare(c, k_eta):
            X, aux = c
            Xn, G, auxn, failed = vstep(k_eta[0], k_eta[1], X, aux)
            goes_on = (jnp.abs(Xn) <= quick) & (X == X)
            ends = failed
            if gtol is not None:
                ends = ends | ~_rows_any(jnp, jnp.abs(G) > gtol)
            goes_on = goes_on & ~jnp.reshape(ends, (-1, 1))
            return (jnp.where(goes_on, Xn, jnp.nan), auxn), None
        (X, aux), _ = lax.scan(bare, (X0, aux0), (ks, es))
        flags = _rows_any(jnp, jnp.isnan(X))
        # an inactive start moved in the bare run: its rows are put back from the carry
        X = jnp.where(active[:, None], X, X0)
        aux = _where_rows(jax, jnp, active, aux, aux0)
        hit = active & flags
        m_ = X0.shape[0]
        cap = min(REPLAY_ROWS, m_)

        def few(c):   # the rows that may have stopped, replayed apart
            rows = jnp.nonzero(hit, size=cap, fill_value=m_)[0]
            real = rows < m_
            take = jnp.where(real, rows, 0)   # (padding reads row 0, inactive, dropped)
            part = jax.tree_util.tree_map(lambda a: a[take], c[:6])
            part = (part[0], part[1], part[2] & real) + part[3:]
            part = checked(part + (jnp.all(part[2]),), ks, es)
            full = (X, aux) + c[2:6]
            out = jax.tree_util.tree_map(lambda a, b: a.at[rows].set(b, mode="drop"),
                                         full, part[:6])
            return out + (jnp.all(out[2]),)

        def replay(c):
            return lax.cond(jnp.sum(hit) <= cap, few, lambda c: checked(c, ks, es), c)
        return lax.cond(jnp.any(hit), replay, lambda c: (X, aux) + c[2:], carry)

    def chunk(carry, ks, es):
        size = ks.shape[0]
        if size < 2 * BLOCK:
            return optimistic(carry, ks, es)
        nb, rest = divmod(size, BLOCK)
        carry = lax.scan(lambda c, p: (optimistic(c, *p), None), carry,
                         (ks[:nb * BLOCK].reshape(nb, BLOCK),
                          es[:nb * BLOCK].reshape(nb, BLOCK)))[0]
        return optimistic(carry, ks[nb * BLOCK:], es[nb * BLOCK:]) if rest else carry

    q, r = divmod(steps, every)

    def run(X0, aux0, etas):
        m_ = X0.shape[0]
        carry = (X0, aux0, jnp.ones(m_, bool), jnp.full(m_, steps), jnp.zeros(m_, int),
                 jnp.zeros(m_), jnp.asarray(True))
        ks = jnp.arange(steps)

        def outer(c, part):
            c = chunk(c, *part)
            return c, c[0]
        carry, kept = lax.scan(outer, carry, (ks[:q * every].reshape(q, every),
                                              etas[:q * every].reshape(q, every)))
        if r:
            carry = chunk(carry, ks[q * every:], etas[q * every:])
        return carry, kept

    return jax.jit(run)


def _initial_aux(kind, X0, options, jnp, jax, chains):
    if hasattr(kind, "start"):   # an UpdateRule: its own initial state
        return kind.start(jnp.asarray(X0), options, jnp)
    if kind is None:
        return jnp.zeros((X0.shape[0], 0))
    base = jax.random.key(key_seed(int(options["seed"])))
    keys = jax.random.split(base, X0.shape[0]) if chains else \
        jnp.stack([base] * X0.shape[0])   # several starts without chains: one shared stream
    return keys, jnp.zeros_like(jnp.asarray(X0))


def run_scheme(loss, name, X0, etas, dts, *, options, gtol, max_norm, spec, single, label,
               chains=False, extras=None, rule=None, maximize=False, measures=None):
    """Run scheme ``name`` on JAX from the validated arguments of its numpy function.

    Parameters
    ----------
    loss : Loss
    name : str
        A key of :data:`UPDATES`.
    X0 : ndarray, shape (m, n)
    etas, dts : ndarray, shape (steps,)
        Steps, and their durations in the flow's time.
    options : dict
        The scheme's own options (momentum, r, tol, max_inner, batch_size, sampling, seed).
    gtol, max_norm, spec, single, label
        As the numpy path has them.
    chains : bool
        One random stream per start (SGD's ``chains``) instead of one shared by all.
    extras : callable, optional
        ``extras(run)`` -> the result's extras from the kept iterates (a ``Run``).
    rule : UpdateRule, optional
        The scheme's update rule (its record's); None for the explicit extensions in
        :data:`UPDATES`.
    measures : callable, optional
        ``measures(run)`` -> (values, stationarity) where they are not L and |grad L|.

    Returns
    -------
    Trajectory or BatchTrajectory
    """
    jax, jnp = require()
    m, steps = X0.shape[0], len(etas)
    # steps between kept iterates: the run's chunk length (all steps when only the ends count)
    stride = steps if spec.every is None else min(spec.every, steps)
    owner = f"the update rule of {name!r}"
    rule = UPDATES[name] if rule is None else from_update_rule(rule, owner)
    run = _compiled(loss, name, rule, options, steps, stride, gtol, max_norm)
    aux0 = _initial_aux(rule.aux, X0, options, jnp, jax, chains)
    before = loss.counts
    with untraceable(owner):
        (X, _, _, last, code, stat, _), kept = run(jnp.asarray(X0), aux0, jnp.asarray(etas))
    X, last, code, stat = (np.array(v) for v in (X, last, code, stat))
    kept = np.asarray(kept)
    outside, why = stops.outside(X0, max_norm)   # ran along, but held at x0, not run
    X[outside], last[outside], code[outside] = X0[outside], 0, 0
    loss.charge(grad=rule.grads * np.sum(np.maximum(last, 0)))
    diverged = code == DIVERGED   # their |x| again, overflow-safe (one call for all)
    stat[diverged] = row_norms(X[diverged])
    status, message = _outcome(code, stat, last, steps, gtol, max_norm, rule.failure)
    status[outside], message[outside] = Status.DIVERGED, why
    end = int(last.max())
    ks, regular = kept_iterates(end, stride if spec.every is not None else None)
    # the start, then the states kept at the ends of the chunks (0, 1, 2, ...: the first
    # ones), then the end; each start held at its last state from its stop on
    regular = min(regular, kept.shape[0] + 1 if spec.every is not None else 1)
    xs = np.empty((m, ks.size, X0.shape[1]))
    xs[:, 0] = X0
    xs[:, 1:regular] = kept[:regular - 1].transpose(1, 0, 2)
    xs[:, regular:] = X[:, None]
    hold_stopped(xs, ks, last, X)
    times = np.concatenate([[0.0], np.cumsum(dts[:end])])
    result = Run(xs, times[ks], ks, status, message, {}, last, times[last])
    return finish(loss, result, name, f"{label} [jax]", before, single=single, record=spec,
                  extras=extras(result) if extras is not None else None, maximize=maximize,
                  **measured(result, measures))


def _outcome(code, stat, last, steps, gtol, max_norm, failure):
    status = stops.every_start(len(code), Status.REACHED_END)
    message = stops.every_start(len(code), f"ran all {steps} steps")
    for i in np.flatnonzero(code):
        k = int(last[i])
        if code[i] == CONVERGED:
            status[i], message[i] = Status.CONVERGED, converged_message(stat[i], gtol, k)
        elif code[i] == FAILED:
            status[i] = Status.FAILED
            message[i] = f"step {k} failed: " + failure.replace("{k}", str(k))
        else:
            kept = code[i] == DIVERGED
            status[i] = Status.DIVERGED
            message[i] = escape(stat[i] if kept else np.inf, max_norm, k if kept else k + 1)[1]
    return status, message
