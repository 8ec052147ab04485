"""Per-start bookkeeping of the batched ODE engines: each start's time, state, step size and
output pointer; outputs written exactly at the requested times; finished starts held and
dropped from the active set so that they cost nothing."""
from __future__ import annotations

import numpy as np

from .._numeric import as_rows
from ..results import Status
from ..stops import blew_up, every_start, spent, step_underflow

__all__ = ["Ensemble", "Endings", "rms", "initial_steps", "stop_rules"]


def rms(a):
    """Root mean square along the last axis, shape ``a.shape[:-1]``."""
    return np.sqrt(np.einsum("...i,...i->...", a, a) / a.shape[-1])


def initial_steps(fun, t, Y, F, order, rtol, atol, direction_end):
    """scipy's first-step rule (Hairer, Norsett and Wanner II.4), for every start at once."""
    scale = atol + np.abs(Y) * rtol
    d0, d1 = rms(Y / scale), rms(F / scale)
    h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / np.where(d1 > 0, d1, 1.0))
    h0 = np.minimum(h0, direction_end - t)
    F1 = fun(t + h0, Y + h0[:, None] * F)
    d2 = rms((F1 - F) / scale) / h0
    big = np.maximum(d1, d2)
    h1 = np.where(big <= 1e-15, np.maximum(1e-6, h0 * 1e-3),
                  (0.01 / np.where(big > 0, big, 1.0)) ** (1 / (order + 1)))
    return np.minimum(np.minimum(100 * h0, h1), direction_end - t)


class Endings:
    """How active starts end in one step: a status per row (0: goes on) and sparse messages.

    Integer codes and a dict keep the per-step bookkeeping off Python objects; a row keeps
    the first ending it is given.
    """

    STATUSES = (None, Status.CONVERGED, Status.DIVERGED, Status.FAILED)

    def __init__(self, a):
        self.code = np.zeros(a, dtype=np.int8)
        self.text = {}

    def mark(self, rows, status, messages):
        """End ``rows`` (indices) with ``status`` and ``messages`` (one str, or one per row)."""
        rows = np.asarray(rows, dtype=int)
        code = self.STATUSES.index(status)
        for k, r in enumerate(rows):
            if self.code[r] == 0:
                self.code[r] = code
                self.text[int(r)] = messages if isinstance(messages, str) else messages[k]

    def free(self):
        """Rows that go on, as a boolean mask."""
        return self.code == 0

    def apply(self, ens):
        """End the marked starts of ``ens``."""
        ended = self.code != 0
        if ended.any():
            status = np.empty(len(self.code), dtype=object)
            message = np.empty(len(self.code), dtype=object)
            for r, text in self.text.items():
                status[r], message[r] = self.STATUSES[self.code[r]], text
            ens.finish(ended, status, message)


class Ensemble:
    """m starts advancing, each on its own clock, toward the output times ``t_out``.

    Attributes of the active starts (compacted as starts finish): ``idx`` (their indices
    among the m), ``t``, ``Y`` (a, d), ``F`` (a, d: f at (t, Y)), ``j`` (their next
    output), ``nsteps``, and any engine arrays added to ``extra`` (step sizes, ...).
    """

    def __init__(self, Y0, F0, t0, t_out, dense=False, j0=None, outputs=None):
        m, d = Y0.shape
        self.m, self.t_out = m, np.asarray(t_out, dtype=float)
        if outputs is None:
            K = self.t_out.size
            outputs = (np.empty((m, K, d)), np.zeros((m, K), dtype=int),   # steps by each
                       np.empty((m, K, d)) if dense else None)
        self.out, self.sout, self.fout = outputs
        # flat views of the (contiguous) output arrays, written through by _put
        self._flat = (as_rows(self.out.reshape(-1, d)), self.sout.reshape(-1),
                      None if self.fout is None else as_rows(self.fout.reshape(-1, d)))
        # |state| where each start began here (a start handed over from another engine
        # writes outputs from j0 on only), for the blow-up test of _stuck
        self.start_norms = np.linalg.norm(Y0, axis=-1)
        self.status = every_start(m, Status.REACHED_END)
        self.message = every_start(m, "")
        self.t_stop = np.zeros(m) + t0
        self.steps_taken = np.zeros(m, dtype=int)
        self.idx = np.arange(m)
        self.t = np.zeros(m) + t0
        self.Y, self.F = Y0.copy(), F0.copy()
        self.j = np.zeros(m, dtype=int) if j0 is None else np.array(j0, dtype=int)
        self.nsteps = np.zeros(m, dtype=int)
        self.extra = {}
        # a start has reached output j once t >= _reach[j] (t_out[j] less a rounding margin)
        self._reach = self.t_out - 1e-12 * np.maximum(1.0, np.abs(self.t_out))
        self._lands = None   # set by next_steps: the steps cut to land on an output time
        self._write(np.ones(m, bool))

    @classmethod
    def begin(cls, fun, Y0, t0, t_end, t_out, error_order, rtol, atol, dense=False, j0=None,
              outputs=None):
        """The ensemble at its start, with f at (t0, Y0) and each start's first step.

        ``outputs``, where given, are the arrays to write the outputs into: ``(out (m, K,
        d), sout (m, K) of zeros, fout (m, K, d) or None)``, C-contiguous (rows of a larger
        batch's arrays); fresh ones by default."""
        m = Y0.shape[0]
        t_start = np.zeros(m) + t0
        with np.errstate(all="ignore"):   # a start where f is not finite gets a status
            F0 = fun(t_start, Y0)
            ens = cls(Y0, F0, t_start, t_out, dense, j0, outputs)
            ens.extra["h"] = initial_steps(fun, t_start, Y0, F0, error_order, rtol, atol,
                                           np.full(m, t_end))
        return ens

    def next_steps(self):
        """End the starts past their last output; the active starts' next step sizes, each
        cut to land on its next output time (None when no start is left)."""
        while self.size:
            done = self.done()
            if not done.any():
                gap = self.target() - self.t
                h = self.extra["h"]
                self._lands = h >= gap
                return np.minimum(h, gap)
            self.finish(done)
        return None

    def control(self, hs, norm, exponent, t_new, Y_new, F_new):
        """Accept the steps with error ``norm`` <= 1 and a finite f at their end, and set
        each start's next step size by scipy's rule (factor 0.9 norm^exponent in [0.2, 10],
        at most 1 after a rejection, 0.2 where the error or f is not finite; a step cut to
        an output time does not shrink the next); returns the accepted mask."""
        h = self.extra["h"]
        # a step whose end has a non-finite f (a field undefined there; Y_new itself is held
        # by the error norm) is rejected too: the start then shrinks its step to the edge
        # and ends failed at its last finite state instead of carrying NaN on
        finite = np.isfinite(np.einsum("ij->i", F_new))
        ok = (norm <= 1.0) & finite
        factor = np.where(norm == 0, 10.0, np.clip(0.9 * norm ** exponent, 0.2, 10.0))
        factor = np.where(np.isfinite(factor) & finite, factor, 0.2)   # not finite: shrink
        factor = np.where(ok, factor, np.minimum(factor, 1.0))
        h_next = hs * factor
        clamped = ok & (hs < h) & (factor >= 1.0)
        self.extra["h"] = np.where(clamped, np.maximum(h_next, h), h_next)
        self.accept(ok, t_new, Y_new, F_new)
        return ok

    @property
    def size(self):
        """Number of active starts."""
        return self.idx.size

    def target(self):
        """Each active start's next output time, shape (a,)."""
        return self.t_out[np.minimum(self.j, self.t_out.size - 1)]

    def _write(self, mask):
        """Write the outputs that the starts in ``mask`` have reached. A step never passes
        more than one output time (steps are cut to land on them), so after the first pass
        only the rows just written are looked at again (equal output times)."""
        # after a step only the rows cut to an output time can have reached one
        rows = np.flatnonzero(mask if self._lands is None else mask & self._lands)
        K = self.t_out.size
        while rows.size:
            j = self.j[rows]
            live = j < K
            rows, j = rows[live], j[live]
            hit = self.t[rows] >= self._reach[j]
            rows, j = rows[hit], j[hit]
            if not rows.size:
                return
            self._put(self.idx[rows] * K + j, self.Y.take(rows, axis=0),
                      self.nsteps.take(rows), None if self.fout is None else
                      self.F.take(rows, axis=0))
            self.j[rows] = j + 1

    def _put(self, at, Y, steps, F):
        """Write outputs at flat positions ``at`` = start * K + output of the (m, K, ...)
        arrays (one flat index is about 8 times faster than a pair of index arrays), whole
        rows at a time (:func:`~flowsim._numeric.as_rows`)."""
        flat_out, flat_steps, flat_f = self._flat
        flat_out[at] = as_rows(Y)
        flat_steps[at] = steps
        if F is not None:
            flat_f[at] = as_rows(F)

    def accept(self, mask, t, Y, F):
        """The starts in ``mask`` (over the active) took a step to ``t`` (their rows of the
        arrays given, all of shape (a, ...), fresh arrays this call may keep: the rejected
        rows are put back, few, instead of copying the accepted ones)."""
        rejected = np.flatnonzero(~mask)
        if rejected.size:
            t[rejected], Y[rejected], F[rejected] = (self.t[rejected], self.Y[rejected],
                                                     self.F[rejected])
        self.t, self.Y, self.F = t, Y, F
        self.nsteps += mask
        self._write(mask)

    def finish(self, mask, status=None, messages=None):
        """End the starts in ``mask``: hold their state at the later outputs, set their
        status and message (one for all, or one per active row, where given), and drop
        them from the active set."""
        rows = np.flatnonzero(mask)
        if rows.size:
            K = self.t_out.size
            early = rows[self.j[rows] < K]   # rows with outputs still to hold
            if early.size:
                g, j = self.idx[early], self.j[early]
                later = np.arange(K)[None, :] >= j[:, None]          # (e, K)
                gi, ki = np.nonzero(later)
                held = None if self.fout is None else (
                    np.zeros((gi.size, self.F.shape[1])) if status is not None
                    else self.F[early][gi])
                self._put(g[gi] * K + ki, self.Y[early][gi], self.nsteps[early][gi], held)
            gl = self.idx[rows]
            self.t_stop[gl], self.steps_taken[gl] = self.t[rows], self.nsteps[rows]
            if status is not None:
                self.status[gl] = status[rows] if isinstance(status, np.ndarray) else status
            if messages is not None:
                self.message[gl] = messages[rows] if isinstance(messages, np.ndarray) \
                    else messages
        # the starts that go on, compacted (np.compress: a sixth of a boolean index's time
        # on (a, d) arrays; 1.1 ms against 0.19 ms for 100,000 2-vectors)
        keep = ~mask
        self.idx, self.t, self.Y, self.F = (np.compress(keep, v, axis=0) for v in
                                            (self.idx, self.t, self.Y, self.F))
        self.j, self.nsteps = np.compress(keep, self.j), np.compress(keep, self.nsteps)
        self.extra = {k: np.compress(keep, v, axis=0) for k, v in self.extra.items()}

    def done(self):
        """Starts that reached their last output time (end them as reached_end)."""
        return self.j >= self.t_out.size


def stop_rules(ens, ok, hs, t, check, max_steps):
    """The stop rules every engine applies after a step: the run's own (``check``, on the
    accepted rows), a step size that underflowed, a spent step budget."""
    endings = Endings(ens.size)
    rejected = np.flatnonzero(~ok)
    if check is not None:   # on every row (no gathering), its hits kept on accepted rows
        for status, local, messages in check(ens.Y, ens.F):
            if rejected.size:
                keep = ok[local]
                local = local[keep]
                messages = messages if isinstance(messages, str) else \
                    [text for text, k in zip(messages, keep) if k]
            endings.mark(local, status, messages)
    # the rare endings, found on index arrays (no full-size masks in the common case):
    # only a rejected step can have shrunk below the float spacing, or be NaN (a state
    # that is not finite gives a NaN first step; NaN compares false, so it would never end)
    tiny = rejected[~(hs[rejected] > 10 * np.spacing(np.maximum(np.abs(t[rejected]), 1.0)))] \
        if rejected.size else rejected
    over = np.flatnonzero(ens.nsteps >= max_steps)
    if tiny.size or over.size:
        _stuck(ens, endings, tiny, over, t, max_steps)
    return endings


def _stuck(ens, endings, tiny, over, t, max_steps):
    """End the starts whose step underflowed (``tiny``) or whose budget is spent (``over``,
    row indices): a start stuck far out (tenfold its start, beyond 10) is a finite-time
    blow-up, diverged as the single run's blow-up test says
    (:func:`flowsim.flows._solver._blow_up`); the others fail with the reason."""
    stuck = np.union1d(tiny, over)
    start = ens.start_norms[ens.idx[stuck]]
    radius = np.linalg.norm(ens.Y[stuck], axis=-1)
    far = radius > 10 * np.maximum(1.0, start)
    blown = stuck[far]
    if blown.size:
        endings.mark(blown, Status.DIVERGED,
                     [blew_up(r, tt) for r, tt in zip(radius[far], t[blown])])
    tiny, over = np.setdiff1d(tiny, blown), np.setdiff1d(over, blown)
    if tiny.size:
        endings.mark(tiny, Status.FAILED, [step_underflow(tt) for tt in t[tiny]])
    if over.size:
        endings.mark(over, Status.FAILED, spent(max_steps))
