"""What runs one scheme's step on JAX: the :class:`Rule` record the scan driver
(:mod:`flowsim.jax_backend.schemes`) reads, a registered :class:`~flowsim.rules.UpdateRule`
made into one (:func:`from_update_rule`, the same rule the numpy path runs), and the explicit
JAX extensions (:data:`UPDATES`): proximal point (Newton on the exact Hessian, its step
halved while the proximal objective rises) and SGD (JAX's keyed random streams), whose numpy
paths are not update rules.

A rule's ``factory(J, jnp, lax, options)`` gives ``step(k, eta_k, x, aux)`` for one start x
of shape (n,) (vmapped over the starts by the driver) -> ``(x_next, g, aux_next, failed)``:
g is grad L(x_k) where the step computed it (inf: not tested against gtol).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

__all__ = ["Rule", "UPDATES", "from_update_rule"]


def _proximal_point(J, jnp, lax, options):
    tol, max_inner = options["tol"], options["max_inner"]
    eye = jnp.eye(J.n)

    def step(k, eta, x, aux):
        def residual(y):
            gy = J.grad(y)
            return y + eta * gy - x, gy

        def scale(gy):
            return tol * (1.0 + jnp.linalg.norm(x) + eta * jnp.linalg.norm(gy))

        def unsolved(state):
            y, i = state
            F, gy = residual(y)
            return (i < max_inner) & ~(jnp.linalg.norm(F) <= scale(gy))

        def objective(y):   # the proximal objective L(y) + |y - x|^2 / (2 eta)
            return J.value(y) + jnp.sum((y - x) ** 2) / (2 * eta)

        def newton(state):
            # Newton on F, its step halved while the proximal objective is not finite or
            # rises (a step out of the loss's domain), as the numpy path's line search does
            y, i = state
            F, _ = residual(y)
            d = jnp.linalg.solve(eye + eta * J.hess(y), F)
            here = objective(y)

            def worse(s):
                t, _ = s
                there = objective(y - t * d)
                return (t > 1e-9) & ~(there <= here + 1e-12 * jnp.abs(here)) & \
                    jnp.isfinite(here)

            t, _ = lax.while_loop(worse, lambda s: (s[0] / 2, s[1] + 1), (1.0, 0))
            return y - t * d, i + 1

        guess = x - eta * J.grad(x)
        guess = jnp.where(jnp.isfinite(objective(guess)), guess, x)
        y, _ = lax.while_loop(unsolved, newton, (guess, 0))
        F, gy = residual(y)
        bound = scale(gy)
        failed = ~(jnp.linalg.norm(F) <= bound) | ~jnp.isfinite(bound) | \
            ~jnp.all(jnp.isfinite(y))
        return y, J.grad(x), aux, failed
    return step


def _sgd(J, jnp, lax, options):
    jax = options["_jax"]
    N, B = J.n_samples, options["batch_size"]
    beta, replace = options["momentum"], options["sampling"] == "with_replacement"
    per_epoch = N // B

    def step(k, eta, x, aux):
        key, v = aux
        if replace:
            idx = jax.random.randint(jax.random.fold_in(key, k), (B,), 0, N)
        else:
            order = jax.random.permutation(jax.random.fold_in(key, k // per_epoch), N)
            idx = lax.dynamic_slice(order, ((k % per_epoch) * B,), (B,))
        g = J.sample_grad(x, idx)
        v = beta * v - eta * g
        return x + v, jnp.inf * jnp.ones_like(g), (key, v), False   # no gtol on noisy g
    return step


class Rule(NamedTuple):
    """One scheme's update on JAX.

    Attributes
    ----------
    factory : callable
        ``(JaxLoss, jnp, lax, options)`` -> ``step(k, eta_k, x, aux)`` ->
        ``(x_next, g (inf: not tested against gtol), aux_next, failed)``.
    aux : UpdateRule, str or None
        The per-start state carried besides x: an update rule's own (``rule.start``),
        ``"sgd"`` (random key and velocity), or None.
    grads : int
        Gradient evaluations per step (for the loss's counters).
    failure : str
        Why a step failed (the numpy path's words where it has them; ``{k}`` is the step).
    """

    factory: object
    aux: object = None
    grads: int = 1
    failure: str = ""


#: The explicit JAX extensions: schemes whose numpy path is not an update rule (proximal
#: point's line-search fallback, SGD's sampling); every other scheme runs its record's
#: :class:`~flowsim.rules.UpdateRule` here.
UPDATES = {
    "proximal_point": Rule(_proximal_point, grads=2, failure=(
        "Newton's method did not meet the tolerance (the JAX backend has no line-search "
        "fallback; try backend='numpy')")),
    "sgd": Rule(_sgd, "sgd"),
}


@functools.lru_cache(maxsize=None)
def from_update_rule(rule, owner="the update rule"):
    """The :class:`Rule` that runs an :class:`~flowsim.rules.UpdateRule` on JAX; ``owner``
    names it where its step breaks the contract (checked as it is traced)."""
    def factory(J, jnp, lax, options):
        from .._contract import checked_step
        from ..rules import jax_ops
        ops = jax_ops(J, jnp)
        own = {k: v for k, v in options.items() if not k.startswith("_")}

        def step(k, eta, x, state):
            x_next, g, state, failed = checked_step(rule.step(k, eta, x, state, ops, own), x,
                                                    state, owner, jnp)
            if g is None:
                g = jnp.full_like(x, jnp.inf)
            return x_next, g, state, jnp.asarray(failed, dtype=bool)
        return step
    return Rule(factory, rule, rule.grads_per_step, rule.failure)
