"""Counted, batched evaluation of a compiled loss: value, gradient, Hessian, hot-loop paths.

:class:`Evaluation` is the half of :class:`flowsim.Loss` that runs numbers through the
compiled kernels; the other half (construction and the symbolic view) is in
:mod:`flowsim.loss`. Every evaluation is counted here, in points.
"""
from __future__ import annotations

import contextlib
import numbers
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from .._validate import real_array
from .._numeric import row_norms

__all__ = ["EvalCounts", "Counter", "Evaluation", "SPARSE_FROM"]

#: Dimension from which solvers take the Hessian as a sparse matrix (implicit flows, the
#: Newton systems of proximal point).
SPARSE_FROM = 100

#: States per pass of :meth:`Evaluation.observe` (and per sample of a data loss).
OBSERVE_CHUNK = 1 << 15


@dataclass(frozen=True)
class EvalCounts:
    """Numbers of points at which value, gradient and Hessian were evaluated."""

    value: int = 0
    grad: int = 0
    hess: int = 0

    def spent_since(self, before):
        """The work between ``before`` and these counts, as Trajectory fields
        ``nfev``, ``ngev``, ``nhev``."""
        return dict(nfev=self.value - before.value, ngev=self.grad - before.grad,
                    nhev=self.hess - before.hess)


class Counter:
    __slots__ = ("value", "grad", "hess")

    def __init__(self):
        self.value = self.grad = self.hess = 0


def _as_input(x):
    """``x`` as a float array the compiled kernels accept (symengine's LLVM kernels refuse
    read-only buffers, such as the frozen arrays of a Trajectory)."""
    X = np.asarray(x, dtype=float)
    return X if X.flags.writeable else X.copy()


class Evaluation:
    """Evaluation methods shared by every :class:`~flowsim.Loss`.

    Expects the attributes ``_c`` (compiled kernels and patterns), ``_param_values``,
    ``_point_extra``, ``_data`` and ``_counter`` set by the Loss constructor.
    """

    __slots__ = ()

    @property
    def counts(self):
        """Evaluations so far, counted in points (a batch of m points counts m)."""
        c = self._counter
        return EvalCounts(c.value, c.grad, c.hess)

    def reset_counts(self):
        """Set the evaluation counts back to zero."""
        self._counter.value = self._counter.grad = self._counter.hess = 0

    def evaluator(self, which, batched=True):
        """The loss's counted kernel ``which`` ("value", "grad" or "hess") for hot loops.

        The protocol for code outside the loss (update rules, vector fields, drivers):
        no argument checks, a writeable float array of shape (n,) or (m, n) in, values
        (...), gradients (..., n) or Hessians (..., n, n) out, every point counted in
        :attr:`counts`. ``batched=True`` always takes the batched kernel (each row's
        numbers do not depend on how many rows come with it); ``batched=False`` takes the
        faster point kernel for one point (for ``"hess"``: one point of shape (n,) only).
        """
        if not isinstance(batched, (bool, np.bool_)):
            raise TypeError(f"batched must be True or False, got {batched!r}.")
        if which == "hess":   # batched: the checked method; one point: the lean kernel
            return self.hess if batched else self._fast_hess()
        if which not in ("value", "grad"):
            raise ValueError(f"which must be 'value', 'grad' or 'hess', got {which!r}.")
        return self._fast(which, points=not batched)

    def charge(self, value=0, grad=0, hess=0):
        """Count evaluations done elsewhere (on JAX, in another process) at this loss."""
        for name, v in (("value", value), ("grad", grad), ("hess", hess)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0 (evaluations), got {v!r}.")
        c = self._counter
        c.value += int(value)
        c.grad += int(grad)
        c.hess += int(hess)

    @contextlib.contextmanager
    def uncounted(self):
        """A block whose evaluations stay out of :attr:`counts` (bookkeeping, pictures)."""
        c = self._counter
        saved = (c.value, c.grad, c.hess)
        try:
            yield self
        finally:
            c.value, c.grad, c.hess = saved

    def _points(self, x):
        if isinstance(x, np.ndarray) and x.dtype == np.float64:
            X = _as_input(x)
        else:  # lists, ints, text, complex: one sentence instead of numpy's wording
            X = real_array(x, "x")
        if X.ndim == 0 or X.shape[-1] != self.n:
            names = ", ".join(v.name for v in self._c.variables[:6])
            raise ValueError(f"x must have last dimension n = {self.n} (one entry per variable "
                             f"{names}{', ...' if self.n > 6 else ''}), got shape {X.shape}.")
        if X.size == 0:
            raise ValueError(f"x holds no points (shape {X.shape}); pass at least one point.")
        return X

    def _eval(self, kernel, X, point_kernel=None):
        if point_kernel is not None and X.ndim == 1 and self._point_extra is not None:
            out = point_kernel(X, self._point_extra)
            if out is not None:
                return out
        if self._data is None and not self._param_values.size:
            return kernel(X)
        parts = [X]
        if self._param_values.size:
            parts.append(np.broadcast_to(self._param_values,
                                         X.shape[:-1] + self._param_values.shape))
        if self._data is None:
            return kernel(np.concatenate(parts, axis=-1))
        n_s = self._data.shape[0]
        shape = X.shape[:-1] + (n_s,)
        parts = [np.broadcast_to(p[..., None, :], shape + p.shape[-1:]) for p in parts]
        parts.append(np.broadcast_to(self._data, shape + self._data.shape[-1:]))
        return kernel(np.concatenate(parts, axis=-1)).mean(axis=-2)

    def _fast(self, which, points=True):
        """A counted evaluator of ``"value"`` or ``"grad"`` for internal hot loops.

        It skips argument checks: the caller passes a writeable float array of shape (n,)
        or (m, n). Returns ``(...)``-shaped values (an array, also for one point) or
        ``(..., n)`` gradients. Counting stays in the same counter as the public methods.
        With ``points=False`` every call takes the batched kernel, so each row's numbers do
        not depend on how many rows come with it (batches split over workers then agree
        bit for bit); by default one point (or a batch of one) takes the faster point kernel.
        """
        if which == "hess":
            return self._fast_hess()
        kernel = getattr(self._c.kernels, which)
        point = getattr(self._c.kernels, "point_" + which) if points else None
        counter, n = self._counter, self.n
        if self._data is None and not self._param_values.size and point is not None:
            def fast(X):
                if X.ndim == 1:
                    out = point(X)
                    if out is not None:
                        return out
                elif X.shape[0] == 1 and X.ndim == 2:  # a batch of one: the point kernel
                    out = point(X[0])
                    if out is not None:
                        return out[None]
                return kernel(X)
        elif self._data is None and not self._param_values.size:
            fast = kernel
        else:
            def fast(X):
                return self._eval(kernel, X, point)

        if which == "grad":
            def grad(X):
                counter.grad += X.size // n
                return fast(X)
            return grad

        def value(X):
            counter.value += X.size // n
            return fast(X)[..., 0]
        return value

    def float_grad(self):
        """A counted gradient on Python floats for one point, or None where none exists.

        For loops on losses in a few variables, where a numpy update of a 2-vector costs more
        than the gradient itself: ``grad(*floats)`` -> a sequence of n floats. It raises
        ValueError, OverflowError or ZeroDivisionError where the loss is undefined; callers
        then go back to the array path.
        """
        point = self._c.kernels.point_grad
        extra = self._point_extra
        if point is None or extra is None:
            return None
        raw, counter = point.raw, self._counter

        def grad(*xs):
            counter.grad += 1
            return raw(*xs, *extra)
        return grad

    def _fast_hess(self):
        """Counted dense Hessian of one point, shape (n, n), without argument checks."""
        # Kept lean on purpose (it runs inside every proximal-point Newton iteration): going
        # through _eval and _dense_hessian costs 2.7 us per call here against 1.8 us.
        c, n, counter = self._c, self.n, self._counter
        kernel, point = c.kernels.hess_values, c.kernels.point_hess_values
        extra = self._point_extra if point is not None else None
        rows, cols, take = c.full_rows, c.full_cols, c.full_take

        def hess(x):
            counter.hess += 1
            vals = point(x, extra) if extra is not None else None
            if vals is None:
                vals = self._eval(kernel, x)
            H = np.zeros((n, n))
            H[rows, cols] = vals[take]
            return H
        return hess

    def _dense_hessian(self, vals, batch_shape):
        """Scatter Hessian values on the symbolic pattern into arrays (..., n, n)."""
        c = self._c
        H = np.zeros(batch_shape + (self.n, self.n))
        H[..., c.full_rows, c.full_cols] = vals[..., c.full_take]
        return H

    def observe_values(self, xs):
        """L along recorded states, shape (...), not counted (see :meth:`observe`)."""
        return self._observed(xs, False, False)[0]

    def observe(self, xs, full=False):
        """Values and gradient norms along recorded states, shapes (...), not counted.

        With ``full=True`` the gradients themselves, shape (..., n), instead of their norms.

        Results record L and |grad L| at every state; that bookkeeping is not the cost of
        the method that produced the states, so it stays out of :attr:`counts`. No argument
        checks: ``xs`` is a float array of shape (..., n). Many states are taken
        :data:`OBSERVE_CHUNK` at a time (the same numbers: each state is evaluated alone).
        """
        return self._observed(xs, True, full)

    def _observed(self, xs, grads, full):
        """(values, gradient norms or gradients or None) of the states ``xs`` (..., n), in
        chunks of :data:`OBSERVE_CHUNK` states (samples counted) where there are more.

        Every temporary of a chunk (the kernels' outputs, squares, norms) then stays small
        enough to be reused instead of mapped afresh: numpy's arrays past 32 MB come from
        new pages, which cost more than the kernels that fill them (100,000 starts x 101
        outputs of Rosenbrock: 0.6-1.2 s whole, 0.16 s in chunks).
        """
        xs = np.asarray(xs, dtype=float)
        shape, n = xs.shape[:-1], xs.shape[-1]
        flat = xs.reshape(-1, n)
        size = flat.shape[0]
        step = max(1, OBSERVE_CHUNK // (1 if self._data is None else self._data.shape[0]))
        values = np.empty(size)
        second = None if not grads else np.empty((size, n) if full else size)
        with np.errstate(all="ignore"):
            for start in range(0, size, step):
                part = _as_input(flat[start:start + step])
                values[start:start + step] = self._eval(self._c.kernels.value, part)[:, 0]
                if grads:
                    g = self._eval(self._c.kernels.grad, part)
                    second[start:start + step] = g if full else row_norms(g)
        return values.reshape(shape), None if second is None else \
            second.reshape(shape + ((n,) if full else ()))

    def watched(self, func):
        """``func`` with the evaluations it makes of this loss left out of :attr:`counts`.

        For checks that watch a run (the stiffness test of explicit solvers) rather than
        advance it: like the bookkeeping of :meth:`observe`, they are not the method's cost.
        """
        def watching(*args):
            with self.uncounted():
                return func(*args)
        return watching

    def memo(self, key, build):
        """The object this loss keeps under ``key`` (a str), built by ``build()`` the first
        time: compiled derivatives, models and JAX programs that belong to the loss (they
        travel and die with it)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def value(self, x):
        """Loss value. ``x`` shape ``(n,)`` gives a float, ``(..., n)`` an array ``(...)``."""
        X = self._points(x)
        out = self._eval(self._c.kernels.value, X, self._c.kernels.point_value)[..., 0]
        self._counter.value += out.size
        return float(out) if X.ndim == 1 else out

    __call__ = value

    def grad(self, x):
        """Gradient. ``x`` shape ``(..., n)`` gives shape ``(..., n)``."""
        X = self._points(x)
        out = self._eval(self._c.kernels.grad, X, self._c.kernels.point_grad)
        self._counter.grad += out.size // self.n
        return out

    def _hess_values(self, X):
        out = self._eval(self._c.kernels.hess_values, X, self._c.kernels.point_hess_values)
        self._counter.hess += int(np.prod(X.shape[:-1]))
        return out

    def hess(self, x, sparse=False):
        """Hessian.

        Parameters
        ----------
        x : array_like, shape (n,) or (..., n)
        sparse : bool
            Return a ``scipy.sparse.csr_array``: of shape (n, n) for one point, and for a
            batch of m points the block-diagonal matrix of shape (m*n, m*n) (the Jacobian of a
            stacked system), computed on the symbolic sparsity pattern without dense work.

        Returns
        -------
        ndarray, shape (n, n) or (..., n, n); or csr_array
        """
        if not isinstance(sparse, (bool, np.bool_)):
            raise TypeError(f"sparse must be True or False, got {sparse!r}.")
        X = self._points(x)
        vals = self._hess_values(X)
        c = self._c
        if sparse:
            data = vals.reshape(-1, vals.shape[-1])[:, c.csr_take]
            m, nnz = data.shape
            blocks = np.arange(m)[:, None]
            indices = (c.csr_indices[None, :] + blocks * self.n).ravel()
            indptr = np.append((c.csr_indptr[None, :-1] + blocks * nnz).ravel(), m * nnz)
            return scipy.sparse.csr_array((data.ravel(), indices, indptr),
                                          shape=(m * self.n, m * self.n))
        return self._dense_hessian(vals, X.shape[:-1])

    def sample_grads(self, x):
        """Per-sample gradients of a finite-sum loss.

        Parameters
        ----------
        x : array_like, shape (n,) or (m, n)

        Returns
        -------
        ndarray, shape (N, n) or (m, N, n)
            grad l_i(x) for each of the N samples (their mean is ``grad(x)``); counted as
            one gradient per point.

        Raises
        ------
        ValueError
            For a loss without data.
        """
        if self._data is None:
            raise ValueError("sample_grads needs a finite-sum loss (Loss.from_samples).")
        X = self._points(x)
        lead = X.shape[:-1]
        out = self.minibatch_grad(X.reshape(-1, self.n), np.tile(np.arange(self._data.shape[0]),
                                                               (int(np.prod(lead)), 1)),
                                mean=False)
        return out.reshape(lead + out.shape[1:])

    def minibatch_grad(self, X, idx, mean=True):
        """Mini-batch gradients of a finite-sum loss, counted as m gradients.

        Parameters
        ----------
        X : ndarray, shape (m, n)
            Points (a float array; no argument checks).
        idx : ndarray of int, shape (m, b)
            Sample indices per point.
        mean : bool
            Average over the b samples (else return each).

        Returns
        -------
        ndarray, shape (m, n), or (m, b, n) with ``mean=False``
            grad l_{idx[j, b]}(X[j]).
        """
        m, b = idx.shape
        parts = [np.broadcast_to(X[:, None, :], (m, b, self.n))]
        if self._param_values.size:
            parts.append(np.broadcast_to(self._param_values, (m, b, self._param_values.size)))
        parts.append(self._data[idx])
        self._counter.grad += m
        out = self._c.kernels.grad(np.concatenate(parts, axis=-1))
        return out.mean(axis=1) if mean else out
