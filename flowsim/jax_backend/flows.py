r"""Flows of many starts on diffrax: ``vmap`` over the starts of one ``diffeqsolve``,
compiled once per loss, solver and settings.

A first-order flow is its :class:`~flowsim.rules.VectorField`, the same one the numpy paths
run (:func:`field_flow_jax`: the gradient flow's ``GRADIENT_FIELD``, the Newton flow's
``NEWTON_FIELD`` with its guard, a researcher's own); the momentum ODEs are their shared
rates in y = (x, v) (:func:`second_order_jax`).

Each start has its own adaptive steps (a PID controller with ``rtol``/``atol``) and its own
stop rules, as diffrax events checked after every accepted step: ``converged`` where
|grad L| <= gtol, ``diverged`` where |x| > max_norm or x is not finite. A start that spends
``max_steps`` ends ``failed``. States are saved at the output times and at the end; a start
that stopped holds its last state at the later outputs, as on the numpy engines.

Solvers (the numpy names map to diffrax's): RK23 -> Bosh3, RK45 -> Dopri5, DOP853 -> Dopri8,
``"auto"`` -> Tsit5 (explicit), and Radau, BDF, LSODA -> Kvaerno5 (an implicit ESDIRK method;
its Newton iterations differentiate the printed gradient with JAX).
"""
from __future__ import annotations

import numpy as np

from .. import stops
from .._contract import checked_field
from ..ensemble.run import DEFAULT_OUTPUTS, GridDense
from ..results import BatchTrajectory, Status
from . import require, untraceable
from .compiled import jax_loss
from .programs import Program

__all__ = ["second_order_jax", "field_flow_jax", "SOLVERS"]

#: numpy method name -> diffrax solver class name
SOLVERS = {"RK23": "Bosh3", "RK45": "Dopri5", "DOP853": "Dopri8", "auto": "Tsit5",
           "Radau": "Kvaerno5", "BDF": "Kvaerno5", "LSODA": "Kvaerno5"}


def _solver(diffrax, method, rtol, atol):
    """diffrax's solver for ``method``; the implicit one with Newton's method (a fresh
    Jacobian each iteration) at a tenth of the step tolerances as its root finder: diffrax's
    default VeryChord, and a plain chord, reject every step from some stiff starts of the
    Rosenbrock flow (100,000 times in a row, the start held at t = 0), where Newton takes
    52 to 92 steps."""
    name = SOLVERS[method]
    if name != "Kvaerno5":
        return getattr(diffrax, name)()
    import optimistix
    return diffrax.Kvaerno5(root_finder=optimistix.Newton(rtol=rtol / 10, atol=atol / 10))


def _second_order_field(J, jnp, coefficients):
    """y = (x, v): x' = v, v' = (-c(t) v - grad L(x)) / m(t), the numpy paths' own rates."""
    from ..flows.batch import second_order_rates
    n = J.n

    def field(t, y, args):
        c, mass = coefficients(jnp, t)
        x, v = y[:n], y[n:]
        return jnp.concatenate(second_order_rates(x, v, J.grad(x), c, mass))
    return field


def _compiled(loss, key, field, n, method, rtol, atol, t_out, gtol, max_norm, budget,
              guard=None, rates=False):
    """The jitted, vmapped solve of y' = field(t, y) (x: the first n entries of y), cached on
    the loss under ``key`` and the settings, and between processes as a
    :class:`~flowsim.jax_backend.programs.Program` (``key`` names the field and its options:
    the trace depends on nothing else); with ``rates``, y' at the outputs too (for the dense
    solution, from the same device arrays)."""
    key = ("jax_flow", key, method, rtol, atol, tuple(t_out), gtol, max_norm, budget, rates)
    cache = loss.memo("jax_runs", dict)
    if key not in cache:
        cache[key] = Program(lambda: _traced(loss, field, n, method, rtol, atol, t_out, gtol,
                                             max_norm, budget, guard, rates),
                             (key, loss))
    return cache[key]


def _traced(loss, field, n, method, rtol, atol, t_out, gtol, max_norm, budget, guard, rates):
    """The ``jax.jit`` of :func:`_compiled`'s solve (traced on its first call)."""
    jax, jnp = require()
    import diffrax
    J = jax_loss(loss)
    f = field(J, jnp)
    term = diffrax.ODETerm(f)
    solver = _solver(diffrax, method, rtol, atol)
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=jnp.asarray(t_out)),
                                  diffrax.SubSaveAt(t1=True)])

    def converged(t, y, args, **kwargs):
        return jnp.linalg.norm(J.grad(y[:n])) <= (gtol if gtol is not None else -1.0)

    def escaped(t, y, args, **kwargs):
        return ~(jnp.linalg.norm(y[:n]) <= max_norm)

    def guarded(t, y, args, **kwargs):   # the flow's own rule (None: always fine)
        return guard(J, jnp, y) if guard is not None else False

    event = diffrax.Event([converged, escaped, guarded])

    def solve(y0):
        sol = diffrax.diffeqsolve(term, solver, float(t_out[0]), float(t_out[-1]), None, y0,
                                  saveat=saveat, stepsize_controller=controller, event=event,
                                  max_steps=budget, throw=False)
        ok = sol.result == diffrax.RESULTS.successful
        hit = sol.result == diffrax.RESULTS.event_occurred
        ys, final, t_stop = sol.ys[0], sol.ys[1][0], sol.ts[1][0]
        # a failed solve saves no end state: its last saved output stands for it
        saved = jnp.all(jnp.isfinite(ys), axis=1)
        last = jnp.maximum(jnp.sum(saved) - 1, 0)
        lost = ~jnp.all(jnp.isfinite(final))
        final = jnp.where(lost, ys[last], final)
        times = jnp.asarray(t_out)
        t_stop = jnp.where(lost, times[last], t_stop)
        held = ~saved | (times > t_stop)
        ys = jnp.where(held[:, None], final, ys)
        own, crossed = sol.event_mask[2], jnp.array(False)
        if guard is not None:
            # the flow's rule on the outputs too: a start ends at the first output where it
            # fails (the step that crossed into it may reach far past it), as on numpy,
            # whose steps land on the output times
            bad = jax.vmap(lambda y: guard(J, jnp, y))(ys) & (times <= t_stop)
            first = jnp.argmax(bad)
            crossed = jnp.any(bad)
            t_stop = jnp.where(crossed, jnp.minimum(t_stop, times[first]), t_stop)
            final = jnp.where(crossed, ys[first], final)
            ys = jnp.where((times > t_stop)[:, None], final, ys)
        # L, grad L at the outputs, on the device (the numpy path's bookkeeping)
        values = jax.vmap(J.value)(ys[:, :n])
        grads = jax.vmap(J.grad)(ys[:, :n])
        velocities = jax.vmap(lambda t, y: f(t, y, None))(times, ys) if rates else None
        return (ys, values, grads, final, jnp.linalg.norm(J.grad(final[:n])), t_stop, ok, hit,
                sol.event_mask[0], sol.event_mask[1], own, crossed,
                sol.stats["num_steps"], velocities)

    return jax.jit(jax.vmap(solve))


def _output_times(t0, t_end, t_eval):
    t_out = np.linspace(t0, t_end, DEFAULT_OUTPUTS) if t_eval is None else \
        np.asarray(t_eval, dtype=float)
    if t_out[0] > t0:
        return np.concatenate([[t0], t_out]), True
    return t_out, False


def _run(loss, key, field, Y0, n, t0, t_end, method, rtol, atol, t_eval, gtol, max_norm,
         max_steps, guard=None, guard_message=None, rates=False):
    """Solve, and the outputs on the host: (t_out, ys, values, grads, grad_norms, status,
    message, extras, t_stop, velocities) with ``extras["steps_taken"]`` (each start's
    accepted steps, at every output), each start's stop time and, with ``rates``, y' at
    every output (else None); the start time t0 left out unless asked for in t_eval.
    ``guard(J, jnp, y)`` -> bool is a flow's own stop rule (status ``failed``,
    ``guard_message(x)`` saying why), checked after every step and at the start."""
    _, jnp = require()
    t_out, drop_first = _output_times(t0, t_end, t_eval)
    budget = stops.budget(max_steps, Y0.shape[1])
    run = _compiled(loss, key, field, n, method, float(rtol), float(atol), t_out, gtol,
                    float(max_norm), budget, guard, rates)
    *solved, velocities = run(jnp.asarray(Y0))
    ys, values, grads, final, gnorms, t_stop, ok, hit, conv, out, own, crossed, steps = (
        np.array(v) for v in solved)   # writable copies
    velocities = np.array(velocities) if rates else None
    status, message = _outcomes(hit & conv, hit & out & ~conv, ok, final[:, :n], gnorms,
                                t_stop, steps, t_end, gtol, max_norm, budget,
                                np.linalg.norm(Y0[:, :n], axis=1))
    if guard is not None:
        status, message = list(status), list(message)
        # the rule stopped a start: at an output before its last step ended (crossed; the
        # first output is t0 itself, so a start the rule refuses is held there, its state,
        # L, grad L and rates those of its start), or by the event at a step's end that no
        # converged/diverged event shares
        for i in np.flatnonzero(crossed | (hit & own & ~conv & ~out)):
            status[i], message[i] = Status.FAILED, guard_message(final[i, :n])
        status, message = tuple(status), tuple(message)
    outside, why = stops.outside(Y0[:, :n], max_norm)
    if outside.size:   # held at t0 by the solve's first output (max_norm is checked there)
        status, message = list(status), list(message)
        for i, text in zip(outside, why):
            status[i], message[i] = Status.DIVERGED, text
        status, message = tuple(status), tuple(message)
    if drop_first:
        t_out, ys, values, grads = t_out[1:], ys[:, 1:], values[:, 1:], grads[:, 1:]
        velocities = velocities[:, 1:] if rates else None
    loss.charge(grad=steps.sum())
    extras = {"steps_taken": np.broadcast_to(steps[:, None], ys.shape[:2]).copy()}
    return (t_out, ys, values, grads, np.linalg.norm(grads, axis=2), status, message, extras,
            t_stop, velocities)


def field_flow_jax(loss, name, vector_field, options, X0, t_end, method, rtol, atol, t_eval,
                   dense_output, gtol, max_norm, max_steps, label):
    """A registered :class:`~flowsim.rules.VectorField` on diffrax (arguments checked by
    :class:`flowsim.flows.field.FieldFlow`); the same field function the numpy paths run."""
    from ..rules import jax_ops, numpy_ops
    key = ("field", name, vector_field, tuple(sorted(options.items())))

    owner = f"the vector field of {name!r}"

    def field(J, jnp):
        ops = jax_ops(J, jnp)
        return lambda t, y, args: checked_field(vector_field.field(y, ops, options), y, owner,
                                                jnp)

    guard = why = None
    if vector_field.guard is not None:   # the field's own rule, on the device
        def guard(J, jnp, y):
            return vector_field.guard(y, jax_ops(J, jnp), options)

        def why(x):
            with loss.uncounted():
                return vector_field.stop_message(x, numpy_ops(loss), options)

    with untraceable(owner):
        t_out, xs, values, grads, grad_norms, status, message, extras, t_stop, velocities = \
            _run(loss, key, field, X0, loss.n, 0.0, t_end, method, rtol, atol, t_eval, gtol,
                 max_norm, max_steps, guard, why, rates=bool(dense_output))
    dense = GridDense(t_out, xs, velocities) if dense_output else None
    return BatchTrajectory(t_out, xs, values, grad_norms, status, message, name,
                           f"{label} (diffrax {SOLVERS[method]}), m={len(X0)}", dense=dense,
                           t_stop=t_stop, extras=extras,
                           variables=loss.variable_names)


def second_order_jax(loss, Y0, t0, t_end, method, rtol, atol, t_eval, dense_output, max_norm,
                     max_steps, coefficients, key, name, label, batch_extras=None):
    """m(t) x'' + c(t) x' + grad L(x) = 0 on diffrax from the rows (x0, v0) of ``Y0``
    (m, 2n); ``coefficients(jnp, t)`` -> (c, m) in JAX, ``key`` names them for the cache."""
    n = loss.n
    t_out, ys, values, grads, grad_norms, status, message, extras, t_stop, _ = _run(
        loss, ("second_order",) + tuple(key),
        lambda J, jnp: _second_order_field(J, jnp, coefficients), Y0, n, t0, t_end, method,
        rtol, atol, t_eval, None, max_norm, max_steps)
    xs = ys[..., :n]
    if batch_extras is not None:
        extras.update(batch_extras(ys, values))
    dense = GridDense(t_out, xs, ys[..., n:]) if dense_output else None
    return BatchTrajectory(t_out, xs, values, grad_norms, status, message, name,
                           f"{label} (diffrax {SOLVERS[method]}), m={len(Y0)}", dense=dense,
                           t_stop=t_stop, extras=extras,
                           variables=loss.variable_names)


def _outcomes(conv, out, ok, final, gnorms, t_stop, steps, t_end, gtol, max_norm, budget,
              start_norms):
    """Each start's Status and message, built per kind (a million starts in well under a
    second). A start whose solver gave up far out (|x| grown tenfold and beyond 10) is a
    blow-up, ``diverged`` as on numpy (:func:`flowsim.flows._solver._blow_up`)."""
    m = len(ok)
    norms = np.linalg.norm(final, axis=1)
    blown = ~ok & ~conv & ~out & (norms > 10 * np.maximum(1.0, start_norms))
    code = np.where(conv, 1, np.where(out, 2, np.where(ok, 0, np.where(
        blown, stops.DIVERGED_OWN, 3))))   # the codes of flowsim.stops.CODES
    status = [stops.CODES[c] for c in code.tolist()]
    message = [""] * m
    for i, n in zip(np.flatnonzero(code == 0).tolist(), steps[code == 0].tolist()):
        message[i] = stops.reached_end(t_end, n)
    for i in np.flatnonzero(code == 1).tolist():
        message[i] = stops.converged(gnorms[i], gtol)
    for i in np.flatnonzero(code == stops.DIVERGED_OWN).tolist():   # a blow-up
        message[i] = stops.blew_up(norms[i], t_stop[i], "the solver")
    for i in np.flatnonzero(code == 2).tolist():
        message[i] = stops.diverged(norms[i], max_norm)
    for i in np.flatnonzero(code == 3).tolist():
        message[i] = (f"did not reach t_end: spent its max_steps = {budget} steps, or the "
                      f"solver failed (diffrax); held at its last output, t = {t_stop[i]:.6g}")
    return tuple(status), tuple(message)
