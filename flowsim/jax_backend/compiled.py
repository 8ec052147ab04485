"""A loss's value, gradient and Hessian as JAX functions of one point.

The same sympy expressions the numpy kernels are built from (``Loss.expr``,
``Loss.gradient_expr``, ``Loss.hessian_expr``, whose symbols and functions passed the loss's
whitelist gate) are printed by sympy's JAX printer, with dummy arguments and common
subexpressions, and the generated source is audited like the numpy path's
(:func:`flowsim.loss._audit.lambdify_audited`). Parameters and data are bound as constants:
a finite-sum loss evaluates each expression on all samples at once and takes the mean.
Each function maps x of shape (n,) to a scalar, (n,) or (n, n); ``jax.vmap`` batches them.
"""
from __future__ import annotations

from ..loss._audit import lambdify_audited
from . import require

__all__ = ["JaxLoss", "jax_loss"]


class JaxLoss:
    """JAX functions of one point for a :class:`~flowsim.Loss` (float64).

    Parameters
    ----------
    loss : Loss

    Attributes
    ----------
    n : int
        Number of variables.
    n_samples : int or None
        Samples of a finite-sum loss.
    """

    def __init__(self, loss):
        _, jnp = require()
        self.n, self.n_samples = loss.n, loss.n_samples
        xs = list(loss.variables)
        bound = loss.symbol_values()
        others = list(bound)
        H = loss.hessian_expr
        exprs = {"value": [loss.expr],
                 "grad": list(loss.gradient_expr),
                 "hess": [H[i, j] for i in range(self.n) for j in range(self.n)]}
        self._consts = [jnp.asarray(v, dtype=jnp.float64) for v in bound.values()]
        self._data_index = [k for k, s in enumerate(others) if loss.n_samples is not None
                            and getattr(bound[s], "ndim", 0) == 1]
        from jax.scipy.special import erf
        # sympy's JAX printer leaves erf to Python's math.erf, which cannot take a traced array
        modules = [{"erf": erf}, "jax"]
        self._raw = {name: lambdify_audited(xs + others, e, modules)
                     for name, e in exprs.items()}
        self._jnp = jnp

    def _evaluate(self, name, x, consts):
        """The expressions ``name`` at x with the bound symbols ``consts``: shape (k,) (mean
        over the samples where data are bound)."""
        jnp = self._jnp
        outs = self._raw[name](*[x[i] for i in range(self.n)], *consts)
        shape = (self.n_samples,) if self._data_index else ()
        stacked = jnp.stack([jnp.broadcast_to(jnp.asarray(o, dtype=jnp.float64), shape)
                             for o in outs])
        return stacked.mean(axis=-1) if self._data_index else stacked

    def value(self, x):
        """L(x), a scalar."""
        return self._evaluate("value", x, self._consts)[0]

    def grad(self, x):
        """grad L(x), shape (n,)."""
        return self._evaluate("grad", x, self._consts)

    def hess(self, x):
        """H(x), shape (n, n)."""
        return self._evaluate("hess", x, self._consts).reshape(self.n, self.n)

    def sample_grad(self, x, idx):
        """The mean of grad l_i(x) over the samples ``idx`` (shape (b,)), shape (n,)."""
        consts = [c[idx] if k in self._data_index else c for k, c in enumerate(self._consts)]
        jnp = self._jnp
        outs = self._raw["grad"](*[x[i] for i in range(self.n)], *consts)
        stacked = jnp.stack([jnp.broadcast_to(jnp.asarray(o, dtype=jnp.float64), idx.shape)
                             for o in outs])
        return stacked.mean(axis=-1)


def jax_loss(loss):
    """The :class:`JaxLoss` of ``loss``, built once and kept with it."""
    return loss.memo("jax", lambda: JaxLoss(loss))
