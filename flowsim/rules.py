r"""Methods as data: a scheme is one update rule, a flow is one vector field.

A rule is written once over an array namespace ``xp`` (``numpy`` or ``jax.numpy``) in the
shape optax made standard, and every backend reads the same function:

* :class:`UpdateRule` -- ``init(x0, options, xp) -> state`` and
  ``step(k, eta, x, state, ops, options) -> (x_next, grad_for_stop, state, failed)``.
  The numpy driver (:func:`flowsim.schemes._driver.iterate`) calls ``step`` on the stack of
  active starts, shape (a, n); the JAX driver (:mod:`flowsim.jax_backend.schemes`) vmaps it
  over the starts and scans it, so there it sees one start, shape (n,). Written with
  elementwise arithmetic and ``axis=-1`` reductions, one rule serves both.
* :class:`VectorField` -- ``field(x, ops, options) -> dx/dt`` (and, where it has one,
  ``jacobian(x, ops, options)``), from which the scipy single-start run, the batched engines
  and diffrax are derived (:mod:`flowsim.flows.field`).
* :class:`SecondOrderField` -- a damped second-order flow m(t) x'' + c(t) x' + grad L(x) = 0
  as its ``coefficients(t, options, xp) -> (c, m)``, run in (x, v) on the same three paths
  (:mod:`flowsim.flows.momentum`; the heavy ball and Nesterov ODEs are two of them).

``ops`` (:class:`LossOps`) is the loss as the rule sees it: ``value``, ``grad``, ``hess`` and
``solve`` on the backend's arrays, counted where the backend counts.

Examples
--------
Gradient descent with a decaying extra step, as a rule (one start or many, numpy or JAX):

>>> import numpy as np
>>> def step(k, eta, x, state, ops, options):
...     g = ops.grad(x)
...     return x - eta * g, g, state, False
>>> rule = UpdateRule(step)
>>> ops = LossOps(np, 1, None, lambda x: x, None)
>>> rule.step(0, 0.5, np.array([[2.0]]), (), ops, {})[0].tolist()
[[1.0]]
"""
from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass, field

import numpy as np

__all__ = ["UpdateRule", "VectorField", "SecondOrderField", "LossOps", "numpy_ops", "jax_ops",
           "check_options", "take_rows", "put_rows", "signature_and_doc", "FLOW_ARGUMENTS",
           "bound_rule", "MadeFunction"]


@dataclass(frozen=True)
class LossOps:
    """The loss as a rule sees it, on one backend's arrays.

    Attributes
    ----------
    xp : module
        ``numpy`` or ``jax.numpy``.
    n : int
        Number of variables.
    value, grad, hess : callable
        x of shape (..., n) -> L (...), grad L (..., n), H (..., n, n). Counted on numpy.
    solve : callable
        ``solve(A, b)`` with A (..., n, n), b (..., n) -> A^{-1} b (..., n); a singular
        system gives a non-finite row (numpy) instead of raising.
    """

    xp: object
    n: int
    value: object
    grad: object
    hess: object
    solve: object = None


def _numpy_solve(A, b):
    try:
        return np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:  # row by row: the singular rows come back nan
        A2, b2 = A.reshape((-1,) + A.shape[-2:]), b.reshape(-1, b.shape[-1])
        out = np.full_like(b2, np.nan)
        for i, (a, v) in enumerate(zip(A2, b2)):
            try:
                out[i] = np.linalg.solve(a, v)
            except np.linalg.LinAlgError:
                pass
        return out.reshape(b.shape)


def numpy_ops(loss, single=False):
    """:class:`LossOps` of ``loss`` on numpy stacks (a, n), counted in ``loss.counts``.

    ``single`` takes the one-point kernels, the Hessian's too for a stack of one (a batch
    of starts always takes the batched ones, so chunked batches agree bit for bit with
    unchunked ones).
    """
    hess = loss.evaluator("hess")
    if single:
        point = loss.evaluator("hess", batched=False)

        def hess(X, batched=hess):
            return point(X[0])[None] if X.ndim == 2 and X.shape[0] == 1 else batched(X)
    return LossOps(np, loss.n, loss.evaluator("value", not single),
                   loss.evaluator("grad", not single), hess, _numpy_solve)


def jax_ops(J, jnp):
    """:class:`LossOps` of a :class:`~flowsim.jax_backend.compiled.JaxLoss` on one point."""
    return LossOps(jnp, J.n, J.value, J.grad, J.hess,
                   lambda A, b: jnp.linalg.solve(A, b[..., None])[..., 0])


def check_options(defaults, given, owner):
    """``given`` (a mapping) checked against the rule's ``defaults``: every name known, every
    value a finite real number (or None where the default is None), defaults filled in.

    Raises
    ------
    ValueError
        One sentence naming the option and what it takes.
    """
    out = dict(defaults)
    for name, value in given.items():
        if name not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise ValueError(f"{owner} has no option {name!r}; its options: {known}.")
        if value is None and defaults[name] is None:
            out[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                not np.isfinite(value):
            raise ValueError(f"{owner}: option {name} must be a finite real number, got "
                             f"{value!r}.")
        out[name] = float(value)
    return out


def _frozen(mapping):
    """The options as a plain dict (picklable, for worker processes) of names to defaults."""
    if mapping is not None and not isinstance(mapping, dict):
        raise TypeError(f"options must be a dict of names to defaults, got "
                        f"{type(mapping).__name__}.")
    out = dict(mapping or {})
    for name in out:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"options: every name must be a Python identifier, got {name!r}.")
    return out


def _callable(value, name, optional=False):
    """``value`` checked to be callable (or None where ``optional``)."""
    if not (callable(value) or (optional and value is None)):
        raise TypeError(f"{name} must be callable{' or None' if optional else ''}, got "
                        f"{type(value).__name__}.")


def signature_and_doc(positional, options, common, owner, summary, rest):
    """The signature and numpydoc docstring of a function made from a rule or field.

    ``positional`` are ``(name, type)`` pairs; the signature takes them, then the
    ``options`` (name -> default) as keywords, then the ``common`` ``(name, default)``
    keywords. The docstring is ``summary``, a Parameters section of the positional
    arguments, one entry per option (of the ``owner``) and ``rest`` (the common keywords'
    entries), and the Returns section every such function shares."""
    import inspect
    P = inspect.Parameter
    params = [P(p, P.POSITIONAL_OR_KEYWORD) for p, _ in positional]
    params += [P(k, P.KEYWORD_ONLY, default=v) for k, v in options.items()]
    params += [P(k, P.KEYWORD_ONLY, default=v) for k, v in common]
    doc = (f"{summary}\n\n    Parameters\n    ----------\n" +
           "".join(f"    {p} : {kind}\n" for p, kind in positional) +
           "".join(f"    {k} : float\n        Option of the {owner} (default {v!r}).\n"
                   for k, v in options.items()) +
           rest + "\n    Returns\n    -------\n    Trajectory or BatchTrajectory\n")
    return inspect.Signature(params), doc


class MadeFunction:
    """A method function made from a rule or field (what :func:`flowsim.register` makes):
    named ``name``, with the signature and docstring of :func:`signature_and_doc`, and
    pickled by value (its class and arguments; the functions inside travel by name), so it
    runs in worker processes as the built-in methods do.

    A subclass sets, as class data, ``KIND`` and ``SOURCE`` (for its repr), ``POSITIONAL``,
    ``COMMON``, ``OWNER``, ``SUMMARY`` (a format of ``label``) and ``REST`` (for
    :func:`signature_and_doc`), and calls :meth:`_named` from its ``__init__`` with the
    arguments after ``name`` and ``label`` that rebuild it.
    """

    KIND = SOURCE = OWNER = SUMMARY = REST = ""
    POSITIONAL = COMMON = ()

    def _named(self, name, label, parts, options):
        """Name the function, and give it the signature and docstring of its ``options``."""
        self.name, self.label, self._parts = name, label, tuple(parts)
        self.__name__ = self.__qualname__ = name
        self.__signature__, self.__doc__ = signature_and_doc(
            self.POSITIONAL, options, self.COMMON, self.OWNER,
            self.SUMMARY.format(label=label), self.REST)

    def __repr__(self):
        return f"<{self.KIND} {self.name!r} from {self.SOURCE}>"

    def __reduce__(self):
        return (type(self), (self.name, self.label) + self._parts)


#: The positional arguments of every flow made from a field, with their types.
FLOW_ARGUMENTS = (("loss", "Loss or str"), ("x0", "array_like, shape (n,) or (m, n)"),
                  ("t_end", "float"))


# eq=False: a rule is compared and hashed by identity (its options are a dict), which is
# what the compile caches keyed on it need
@dataclass(frozen=True, eq=False)
class UpdateRule:
    r"""A discrete scheme as one update rule, read by every backend.

    Parameters
    ----------
    step : callable
        ``step(k, eta, x, state, ops, options)`` -> ``(x_next, g, state_next, failed)``:
        iterate k (an int on numpy, a traced int on JAX), its step eta_k, the iterates x
        (shape (a, n) on numpy, (n,) on JAX), the carried state, the loss ops
        (:class:`LossOps`) and the options (a dict of floats). ``g`` is grad L(x_k) where
        the step computed it (tested against ``gtol``), or None; ``failed`` is False, or a
        mask (a,) / bool of starts whose step could not be taken.
    init : callable, optional
        ``init(x0, options, xp)`` -> the initial state, arrays with the starts on their
        first axis (x0 has shape (m, n)), or a tuple of them. Default: no state.
    options : mapping of str to float or None
        The rule's options and their defaults (each a keyword of the scheme).
    grads_per_step : int
        Gradient evaluations per step, for the JAX backend's counters.
    failure : str
        Why a step failed, for the message (``{k}`` is the step).
    compiles : bool
        The step can be written as formulas (``backend="numba"``, :mod:`flowsim.compiled`):
        no linear solve, no Python ``if`` on a value. False keeps "numba" out of the
        method's ``accepts`` (a call with it is refused either way).

    Notes
    -----
    The state is a tuple of arrays (or one array) whose first axis is the start: the numpy
    driver hands a rule only the active starts' rows and writes them back.
    """

    step: object
    init: object = None
    options: object = field(default_factory=dict)
    grads_per_step: int = 1
    failure: str = "the update rule could not take the step"
    compiles: bool = True

    def __post_init__(self):
        _callable(self.step, "step")
        _callable(self.init, "init", optional=True)
        if isinstance(self.grads_per_step, bool) or \
                not isinstance(self.grads_per_step, numbers.Integral) or self.grads_per_step < 0:
            raise ValueError("grads_per_step must be an integer >= 0, got "
                             f"{self.grads_per_step!r}.")
        if not isinstance(self.failure, str):
            raise TypeError(f"failure must be a str, got {type(self.failure).__name__}.")
        object.__setattr__(self, "options", _frozen(self.options))

    def start(self, X0, options, xp=np):
        """The initial state for starts ``X0`` (m, n)."""
        return () if self.init is None else self.init(X0, options, xp)



@dataclass(frozen=True, eq=False)
class VectorField:
    r"""A continuous flow as one vector field, read by every backend.

    Parameters
    ----------
    field : callable
        ``field(x, ops, options)`` -> dx/dt, same shape as x ((a, n) on numpy, (n,) on JAX).
    jacobian : callable, optional
        ``jacobian(x, ops, options)`` -> d field / dx, shape (..., n, n); implicit solvers
        use it (without one they take finite differences on numpy).
    options : mapping of str to float or None
        The field's options and their defaults.
    guard : callable, optional
        The flow's own stop rule: ``guard(x, ops, options)`` -> a bool mask (...,) of the
        states where the flow is not defined or stops being what it claims (the Newton
        flow where H(x) is not positive definite), written over ``ops.xp`` like the field.
        A start that meets it ends ``failed``, at its start or after the step that got
        there, on every backend.
    why : callable, optional
        ``why(x, ops, options)`` -> the message for one such state x, shape (n,) (numpy);
        by default one that names the state.

    Notes
    -----
    ``gtol`` stops a start where |grad L(x)| <= gtol, on every backend.
    """

    field: object
    jacobian: object = None
    options: object = field(default_factory=dict)
    guard: object = None
    why: object = None

    def __post_init__(self):
        _callable(self.field, "field")
        _callable(self.jacobian, "jacobian", optional=True)
        _callable(self.guard, "guard", optional=True)
        _callable(self.why, "why", optional=True)
        if self.why is not None and self.guard is None:
            raise ValueError("why: a message needs a guard to say it; pass guard= too, or "
                             "drop why.")
        object.__setattr__(self, "options", _frozen(self.options))

    def stop_message(self, x, ops, options):
        """The message of a start stopped by the guard at ``x`` (n,)."""
        if self.why is not None:
            return str(self.why(x, ops, options))
        return (f"the flow's guard stopped it at x = {np.round(x, 6).tolist()}: the field is "
                "not defined there")


@dataclass(frozen=True, eq=False)
class SecondOrderField:
    r"""A damped second-order flow, m(t) x'' + c(t) x' + grad L(x) = 0, as its coefficients.

    Parameters
    ----------
    coefficients : callable
        ``coefficients(t, options, xp)`` -> ``(c, m)``: the friction c(t) and the mass
        m(t) > 0 at time t, written over ``xp`` (numpy or ``jax.numpy``): t is a float on
        one start's path, an array (a,) of the starts' own times in a batch, a traced
        scalar on JAX; the results broadcast against t.
    rate : callable, optional
        ``rate(t, options, xp)`` -> ``(dc/dt, dm/dt)``, for a batch's implicit engine on a
        time-dependent flow (a central difference in t without it).
    options : mapping of str to float or None
        The flow's options and their defaults.
    constant : bool
        c and m do not depend on t (the heavy ball): the batch's implicit engine then needs
        no df/dt.

    Notes
    -----
    .. math:: m(t)\,\ddot x + c(t)\,\dot x + \nabla L(x) = 0, \qquad
              \dot x = v,\quad \dot v = -\bigl(c(t)\, v + \nabla L(x)\bigr) / m(t),

    from x(t0) = x0, v(t0) = v0 (0 by default). The heavy ball ODE is c = gamma, m = 1;
    Nesterov's ODE is c = r/t (with the limit m(0) = 1 + r, c(0) = 0 at t = 0); Wibisono,
    Wilson and Jordan's x'' + (p + 1)/t x' + C p^2 t^(p-2) grad L = 0, divided by
    C p^2 t^(p-2), is m = t^(2-p) / (C p^2), c = (p + 1) t^(1-p) / (C p^2).
    """

    coefficients: object
    rate: object = None
    options: object = field(default_factory=dict)
    constant: bool = False

    def __post_init__(self):
        _callable(self.coefficients, "coefficients")
        _callable(self.rate, "rate", optional=True)
        if not isinstance(self.constant, (bool, np.bool_)):
            raise TypeError(f"constant must be True or False, got {self.constant!r}.")
        object.__setattr__(self, "options", _frozen(self.options))


_BOUND_RULES = {}


def bound_rule(step, key, failure, **bound):
    """The :class:`UpdateRule` of ``step`` with the keyword arguments ``bound`` fixed (a
    penalty, a geometry, a metric), made once per ``(step, key)``: ``key`` says when two
    bound objects are the same (by value), so the JAX backend's compile caches, keyed on
    the rule, compile it once."""
    full = (step, key)
    if full not in _BOUND_RULES:
        _BOUND_RULES[full] = UpdateRule(functools.partial(step, **bound), failure=failure)
    return _BOUND_RULES[full]


def take_rows(state, sel):
    """The rows ``sel`` of every array in ``state`` (an array, a tuple of them, or ())."""
    if isinstance(state, tuple):
        return tuple(take_rows(s, sel) for s in state)
    return state[sel]


def put_rows(state, sel, new):
    """Write ``new`` into the rows ``sel`` of ``state`` (in place); returns ``state``."""
    if isinstance(state, tuple):
        for s, v in zip(state, new):
            put_rows(s, sel, v)
        return state
    state[sel] = new
    return state
