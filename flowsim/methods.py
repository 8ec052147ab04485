"""The method registry: one record per flow and per scheme, read by everything that iterates
over methods (:func:`flowsim.compare`, :func:`flowsim.convergence_order`, the command line,
the pictures and the table-driven tests).

A record says what a method is (its callable, kind and accuracy order), which ODE a scheme
discretizes and how much of that ODE's time one step covers, what it accepts, and how it is
drawn. Adding a method is one file (the function) plus one :func:`register` call.

======================  =========  =====  ==================  ==============  =============
name                    short      order  discretizes         time per step   accepts
======================  =========  =====  ==================  ==============  =============
gradient_descent        gd         1      gradient_flow       eta             batch, schedule
proximal_point          pp         1      gradient_flow       eta             schedule
heun                    heun       2      gradient_flow       eta             schedule
sgd                     sgd        --     gradient_flow       eta             schedule, samples
newton                  newton     1      newton_flow         eta (damping)   schedule
heavy_ball              hb         1      heavy_ball_flow     sqrt(eta)       schedule
nesterov                nag        1      nesterov_flow       sqrt(eta)       schedule
proximal_gradient       pg         1      --                  eta             schedule, prox
mirror_descent          md         1      mirror_flow         eta             schedule
natural_gradient        ngd        1      mirror_flow         eta             schedule
bregman_proximal_point  bpp        1      mirror_flow         eta             schedule
adam                    adam       1      adam_flow           eta             schedule
rmsprop                 rmsprop    --     --                  eta             schedule
adagrad                 adagrad    --     --                  eta             schedule
sign_descent            signgd     1      sign_flow           eta             schedule
======================  =========  =====  ==================  ==============  =============

Examples
--------
>>> from flowsim import methods
>>> methods.get("gd").name, methods.get("gd").flow
('gradient_descent', 'gradient_flow')
>>> [m.name for m in methods.schemes() if m.order == 2]
['heun']
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

from .flows import gradient_flow, heavy_ball_flow, mirror_flow, nesterov_flow, newton_flow
from .flows.adam import adam_flow
from .flows.gradient import GRADIENT_FIELD
from .flows.momentum import HEAVY_BALL_FIELD, NESTEROV_FIELD
from .flows.newton import NEWTON_FIELD
from .flows.sign import sign_flow
from .schemes import (bregman_proximal_point, gradient_descent, heavy_ball, heun,
                      mirror_descent, natural_gradient, nesterov, newton, proximal_gradient,
                      proximal_point, sgd)
from .schemes.adaptive import (ADAGRAD, ADAM, RMSPROP, SIGN_DESCENT, adagrad, adam, rmsprop,
                               sign_descent)
from .schemes.gd import GRADIENT_DESCENT
from .schemes.heavy_ball import DEFAULT_MOMENTUM, HEAVY_BALL
from .schemes.heun import HEUN
from .schemes.nesterov import NESTEROV
from .schemes.newton import NEWTON

__all__ = ["Method", "REGISTRY", "register", "unregister", "get", "schemes", "flows",
           "style"]

KINDS = ("flow", "scheme")
STEP_TIMES = ("eta", "sqrt(eta)")
FEATURES = frozenset({"batch", "schedule", "prox", "samples", "line_search", "maximize",
                      "momentum", "jax", "numba"})


@dataclass(frozen=True)
class Method:
    """One flow or scheme, as the rest of flowsim sees it.

    Attributes
    ----------
    name : str
        The machine name, the function's name (``"gradient_descent"``); results carry it in
        ``Trajectory.method``.
    label : str
        The human name for tables and legends (``"gradient descent"``).
    kind : {"flow", "scheme"}
    function : callable
        Schemes ``(loss, x0, eta, steps, *, ...)``; flows ``(loss, x0, t_end, *, method=...)``.
    short : str or None
        A short name accepted wherever a name is (``"gd"``).
    order : float or None
        Accuracy order p of a scheme as a discretization of ``flow``: its global error over
        a fixed time falls like h^p. None where no deterministic order exists (SGD).
    flow : str or None
        The name of the flow record the scheme discretizes (None: none is registered).
    step_time : {"eta", "sqrt(eta)"}
        The ODE time h covered by one step of size eta: iterate k sits at h_0 + ... + h_{k-1}.
    accepts : frozenset of str
        Features: ``batch`` (x0 of shape (m, n)), ``schedule`` (eta as k -> eta_k),
        ``prox`` (a penalty), ``samples`` (needs a finite-sum loss), ``line_search``,
        ``maximize``, ``momentum``, ``jax`` (``backend="jax"``, :mod:`flowsim.jax_backend`),
        ``numba`` (``backend="numba"``, :mod:`flowsim.compiled`).
    color, marker : str
        How every picture draws it (matplotlib colour and marker).
    reference : callable or None
        ``reference(options, h)`` -> ``(flow name, keyword arguments)``: the ODE that the
        scheme with these options and ODE step h discretizes, when it is not ``flow`` with
        no arguments (the heavy ball's friction is (1 - beta)/h).
    fixed_ode : callable or None
        ``fixed_ode(h, friction)`` -> scheme options that keep one ODE fixed as h shrinks
        (for :func:`flowsim.convergence_order`; the heavy ball's beta = 1 - friction h).
    max_eta : float or None
        The largest step the scheme takes (Newton's damping is at most 1).
    one_step : callable or None
        ``one_step(f, x, h, depth)`` -> the scheme's one-step map as a sympy Matrix, for the
        field ``f`` (a function of a symbolic point) of its flow and the symbol h; implicit
        maps are unrolled ``depth`` times (exact to h^depth). Read by
        :func:`flowsim.modified_equation`.
    rule : UpdateRule, VectorField, SecondOrderField or None
        The method written once (:mod:`flowsim.rules`): every backend runs it. A method
        with a rule runs batched and on JAX (``accepts`` gains ``batch`` and ``jax``), and
        compiled (``numba``) where it is an update rule that compiles, a vector field made a
        flow or a momentum flow's coefficients.
    """

    name: str
    label: str
    kind: str
    function: object = field(repr=False)
    short: str | None = None
    order: float | None = None
    flow: str | None = None
    step_time: str = "eta"
    accepts: frozenset = frozenset()
    color: str = "tab:gray"
    marker: str = "o"
    reference: object = field(default=None, repr=False)
    fixed_ode: object = field(default=None, repr=False)
    max_eta: float | None = None
    one_step: object = field(default=None, repr=False)
    rule: object = field(default=None, repr=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}.")
        if self.step_time not in STEP_TIMES:
            raise ValueError(f"step_time must be one of {STEP_TIMES}, got {self.step_time!r}.")
        if not callable(self.function):
            raise TypeError(f"function must be callable, got {type(self.function).__name__}.")
        unknown = set(self.accepts) - FEATURES
        if unknown:
            raise ValueError(f"accepts: unknown features {sorted(unknown)}; use "
                             f"{sorted(FEATURES)}.")
        accepts = frozenset(self.accepts)
        if self.rule is not None:
            from .rules import SecondOrderField, UpdateRule, VectorField
            wanted = (UpdateRule,) if self.kind == "scheme" else (VectorField,
                                                                   SecondOrderField)
            if not isinstance(self.rule, wanted):
                names = " or ".join(f"flowsim.{w.__name__}" for w in wanted)
                raise TypeError(f"rule of a {self.kind} must be a {names}, got "
                                f"{type(self.rule).__name__}.")
            accepts |= {"batch", "jax"} | ({"schedule"} if self.kind == "scheme" else set())
            from .flows.field import FieldFlow
            if isinstance(self.rule, UpdateRule) and self.rule.compiles or \
                    isinstance(self.function, FieldFlow) or \
                    isinstance(self.rule, SecondOrderField):
                accepts |= {"numba"}   # (flowsim.compiled: rules, fields made flows, momentum)
        object.__setattr__(self, "accepts", accepts)

    def step_of(self, eta):
        """The ODE time h of one step of size ``eta`` (array or float)."""
        return np.sqrt(eta) if self.step_time == "sqrt(eta)" else eta

    def eta_of(self, h):
        """The step size eta whose ODE time is ``h``: the inverse of :meth:`step_of`."""
        return h * h if self.step_time == "sqrt(eta)" else h

    def reference_flow(self, options, h):
        """``(flow record, keyword arguments)`` of the ODE this scheme follows.

        Raises
        ------
        ValueError
            For a scheme with no registered flow.
        """
        if self.kind != "scheme" or (self.flow is None and self.reference is None):
            raise ValueError(f"{self.name} has no flow to compare with; choose from "
                             f"{', '.join(m.name for m in schemes() if m.flow)}.")
        name, kwargs = self.reference(options, h) if self.reference else (self.flow, {})
        return get(name), kwargs


#: The registry, in the order methods are listed, drawn and tabulated.
REGISTRY = {}


#: Colours and markers a registered method gets when it names none (after the built-ins').
_PALETTE = ("tab:pink", "darkcyan", "mediumvioletred", "peru", "steelblue", "yellowgreen",
            "orchid", "cadetblue")
_MARKERS = ("*", "X", "p", "8", "1", "2", "3", "4")


def register(method, rule=None, *, label=None, short=None, flow=None, order=None,
             step_time="eta", color=None, marker=None, reference=None, fixed_ode=None,
             one_step=None, accepts=()):
    r"""Add a method to the registry: a :class:`Method` record, or a name and its rule.

    Parameters
    ----------
    method : str or Method
        The new method's machine name (a Python identifier not yet registered), or a
        complete record.
    rule : UpdateRule, VectorField or SecondOrderField
        With a name: the scheme's update rule, the flow's vector field, or a momentum
        flow's friction and mass (:mod:`flowsim.rules`). The function that runs it (numpy,
        batches, workers, JAX) is made from it, and every consumer takes the method from
        then on: ``compare``,
        ``convergence_order``, ``modified_equation`` (with ``one_step``), ``sweep``, the
        pictures and the ``flowsim`` command (``--plugin MODULE``).
    label, short, flow, order, step_time, color, marker, reference, fixed_ode, one_step
        The record's fields (see :class:`Method`); ``flow`` names the registered flow a
        scheme discretizes.
    accepts : iterable of str
        Further features (``batch``, ``jax`` and ``schedule`` follow from the rule).

    Returns
    -------
    Method
        The registered record (its ``function`` is the runnable scheme or flow).

    Examples
    --------
    A researcher's own scheme, gradient descent with a relaxed step (1 + a) eta / 2:

    >>> import flowsim as fs
    >>> def relaxed(k, eta, x, state, ops, options):
    ...     g = ops.grad(x)
    ...     return x - (1 + options["a"]) * eta / 2 * g, g, state, False
    >>> record = fs.register("relaxed_gd", fs.UpdateRule(relaxed, options={"a": 1.0}),
    ...                      flow="gradient_flow", order=1)
    >>> record.function("x**2 / 2", [1.0], 0.5, 2).xs[:, 0].tolist()
    [1.0, 0.5, 0.25]
    >>> _ = fs.methods.unregister("relaxed_gd")
    """
    if isinstance(method, Method):
        if rule is not None:
            raise TypeError("rule: a Method record carries its own rule; pass the record "
                            "alone.")
        record = method
    else:
        record = _record_from_rule(method, rule, label=label, short=short, flow=flow,
                                   order=order, step_time=step_time, color=color,
                                   marker=marker, reference=reference, fixed_ode=fixed_ode,
                                   one_step=one_step, accepts=accepts)
    taken = {m.name for m in REGISTRY.values()} | {m.short for m in REGISTRY.values()}
    for name in (record.name, record.short):
        if name is not None and name in taken:
            raise ValueError(f"a method named {name!r} is already registered; pick a new name "
                             "(or remove the old one with flowsim.methods.unregister).")
    if record.flow is not None and record.flow not in REGISTRY:
        raise ValueError(f"flow: no flow named {record.flow!r} is registered; register the "
                         "flow first, or pass flow=None.")
    REGISTRY[record.name] = record
    return record


def _record_from_rule(name, rule, *, label, short, flow, order, step_time, color, marker,
                      **fields):
    from .rules import SecondOrderField, UpdateRule, VectorField
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise ValueError(f"method must be a Method record or a name that is a Python "
                         f"identifier (letters, digits, _), got {name!r}.")
    if short is not None and (not isinstance(short, str) or not short.isidentifier()):
        raise ValueError(f"short must be a Python identifier or None, got {short!r}.")
    if label is not None and not isinstance(label, str):
        raise TypeError(f"label must be a str, got {type(label).__name__}.")
    if isinstance(rule, UpdateRule):
        from .schemes.from_rule import RuleScheme
        kind, function = "scheme", RuleScheme(name, label or name.replace("_", " "), rule,
                                              step_time)
    elif isinstance(rule, VectorField):
        from .flows.field import FieldFlow
        kind, function = "flow", FieldFlow(name, label or name.replace("_", " "), rule)
    elif isinstance(rule, SecondOrderField):
        from .flows.second_order_flow import SecondOrderFlow
        kind, function = "flow", SecondOrderFlow(name, label or name.replace("_", " "), rule)
    else:
        raise TypeError("rule must be a flowsim.UpdateRule (a scheme), a flowsim.VectorField or "
                        "a flowsim.SecondOrderField (a flow), got "
                        f"{type(rule).__name__}.")
    own = sum(1 for m in REGISTRY.values() if m.color in _PALETTE)
    if order is not None:
        from ._validate import positive
        order = positive(order, "order")
    return Method(name, label or name.replace("_", " "), kind, function, short=short,
                  order=order, flow=flow, step_time=step_time,
                  color=color or _PALETTE[own % len(_PALETTE)],
                  marker=marker if marker is not None else
                  ("" if kind == "flow" else _MARKERS[own % len(_MARKERS)]),
                  rule=rule, **fields)


def unregister(name):
    """Remove the method ``name`` (a machine or short name) from the registry; returns its
    record. Built-in methods can be removed too (for a session that replaces one)."""
    record = get(name)
    del REGISTRY[record.name]
    return record


def get(name, kind=None):
    """The record of ``name`` (a machine name or a short name), optionally of one kind.

    Raises
    ------
    ValueError
        Naming the registered methods (and the closest ones) when ``name`` is unknown.
    """
    if isinstance(name, Method):
        return name
    record = REGISTRY.get(name) if isinstance(name, str) else None
    if record is None and isinstance(name, str):
        record = next((m for m in REGISTRY.values() if m.short == name), None)
    if record is None or (kind is not None and record.kind != kind):
        pool = [m for m in REGISTRY.values() if kind is None or m.kind == kind]
        names = [m.name for m in pool] + [m.short for m in pool if m.short]
        near = [m.name for m in pool if isinstance(name, str) and name and
                m.name.startswith(name)] or difflib.get_close_matches(str(name), names, n=2,
                                                                        cutoff=0.5)
        hint = f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""
        raise ValueError(f"unknown {kind or 'method'} {name!r}{hint}; choose from "
                         f"{', '.join(_listing(pool))}.")
    return record


def _listing(pool):
    return [m.name + (f" ({m.short})" if m.short and m.short != m.name else "") for m in pool]


def schemes():
    """The scheme records, in registry order."""
    return tuple(m for m in REGISTRY.values() if m.kind == "scheme")


def flows():
    """The flow records, in registry order."""
    return tuple(m for m in REGISTRY.values() if m.kind == "flow")


def style(name, index=0):
    """``(color, marker, is_flow)`` of a registered method; a cycle colour for others."""
    record = REGISTRY.get(name)
    if record is None:
        return f"C{index % 10}", "o", False
    return record.color, record.marker, record.kind == "flow"


def _gradient_flow_of(options, h):
    return "gradient_flow", {"maximize": True} if options.get("maximize") else {}


def _heavy_ball_ode(options, h):
    beta = options.get("momentum", DEFAULT_MOMENTUM)
    return "heavy_ball_flow", {"mass": 1.0, "friction": (1 - beta) / h}


def _heavy_ball_ladder(h, friction):
    return {"momentum": 1 - friction * h}


def _explicit_euler(f, x, h, depth):
    return x + h * f(x)


def _implicit_euler(f, x, h, depth):
    y = x
    for _ in range(depth):  # each fixed-point sweep is exact to one more power of h
        y = x + h * f(y)
    return y


def _heun_step(f, x, h, depth):
    k1 = f(x)
    return x + h / 2 * (k1 + f(x + h * k1))


def _mirror_of(options, h):
    return "mirror_flow", {k: options[k] for k in ("potential", "metric") if k in options}


def _adam_ode(options, h):
    return "adam_flow", {"a": (1 - options.get("beta1", 0.9)) / h,
                         "b": (1 - options.get("beta2", 0.999)) / h,
                         "eps": options.get("eps", 1e-8)}


def _adam_ladder(h, friction):
    return {"beta1": 1 - friction * h, "beta2": 1 - 2 * friction * h}


def _nesterov_ode(options, h):
    if options.get("momentum") is not None:  # constant momentum: the heavy ball's ODE
        return _heavy_ball_ode(options, h)
    return "nesterov_flow", {"r": options.get("r", 3.0)}


for _record in (
        Method("gradient_flow", "gradient flow", "flow", gradient_flow,
               accepts={"maximize", "numba"}, color="black", marker="", rule=GRADIENT_FIELD),
        Method("newton_flow", "Newton flow", "flow", newton_flow, color="dimgray", marker="",
               rule=NEWTON_FIELD),
        Method("heavy_ball_flow", "heavy ball ODE", "flow", heavy_ball_flow,
               color="darkred", marker="", rule=HEAVY_BALL_FIELD),
        Method("nesterov_flow", "Nesterov ODE", "flow", nesterov_flow, color="indigo",
               marker="", rule=NESTEROV_FIELD),
        Method("mirror_flow", "mirror flow", "flow", mirror_flow, accepts={"batch"},
               color="darkgreen", marker=""),
        Method("adam_flow", "Adam ODE", "flow", adam_flow, accepts={"batch"},
               color="darkorange", marker=""),
        Method("sign_flow", "sign-gradient flow", "flow", sign_flow, accepts={"batch"},
               color="darkslategray", marker=""),
        Method("gradient_descent", "gradient descent", "scheme", gradient_descent, short="gd",
               order=1, flow="gradient_flow", reference=_gradient_flow_of,
               accepts={"line_search", "maximize"}, color="tab:blue",
               marker="o", one_step=_explicit_euler, rule=GRADIENT_DESCENT),
        Method("proximal_point", "proximal point", "scheme", proximal_point, short="pp",
               order=1, flow="gradient_flow", accepts={"batch", "schedule", "jax"},
               color="tab:orange",
               marker="s", one_step=_implicit_euler),
        Method("heun", "Heun", "scheme", heun, order=2, flow="gradient_flow",
               color="tab:green", marker="^", one_step=_heun_step, rule=HEUN),
        Method("sgd", "SGD", "scheme", sgd, order=None, flow="gradient_flow",
               accepts={"batch", "schedule", "samples", "jax"}, color="tab:olive", marker="."),
        Method("newton", "Newton", "scheme", newton, order=1, flow="newton_flow",
               color="tab:brown", marker="P", max_eta=1.0, rule=NEWTON),
        Method("heavy_ball", "heavy ball", "scheme", heavy_ball, short="hb", order=1,
               flow="heavy_ball_flow", step_time="sqrt(eta)", reference=_heavy_ball_ode,
               fixed_ode=_heavy_ball_ladder, accepts={"momentum"}, color="tab:red",
               marker="D", rule=HEAVY_BALL),
        Method("nesterov", "Nesterov", "scheme", nesterov, short="nag", order=1,
               flow="nesterov_flow", step_time="sqrt(eta)", reference=_nesterov_ode,
               accepts={"momentum"}, color="tab:purple", marker="v", rule=NESTEROV),
        Method("proximal_gradient", "proximal gradient", "scheme", proximal_gradient,
               short="pg", order=1, accepts={"batch", "schedule", "prox", "jax"},
               color="tab:cyan",
               marker="x"),
        Method("mirror_descent", "mirror descent", "scheme", mirror_descent, short="md",
               order=1, flow="mirror_flow", reference=_mirror_of,
               accepts={"batch", "schedule", "jax"}, color="olivedrab", marker="h"),
        Method("natural_gradient", "natural gradient", "scheme", natural_gradient,
               short="ngd", order=1, flow="mirror_flow", reference=_mirror_of,
               accepts={"batch", "schedule", "jax"}, color="teal", marker="p"),
        Method("bregman_proximal_point", "Bregman proximal point", "scheme",
               bregman_proximal_point, short="bpp", order=1, flow="mirror_flow",
               reference=_mirror_of, accepts={"batch", "schedule"}, color="sienna",
               marker="H"),
        Method("adam", "Adam", "scheme", adam, order=1, flow="adam_flow", reference=_adam_ode,
               fixed_ode=_adam_ladder, color="crimson", marker="*", rule=ADAM),
        Method("rmsprop", "RMSProp", "scheme", rmsprop, color="navy", marker="<", rule=RMSPROP),
        Method("adagrad", "AdaGrad", "scheme", adagrad, color="gold", marker=">", rule=ADAGRAD),
        Method("sign_descent", "sign descent", "scheme", sign_descent, short="signgd",
               order=1, flow="sign_flow", color="slategray", marker="d", rule=SIGN_DESCENT)):
    register(_record)
del _record
