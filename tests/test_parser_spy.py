"""No text reaches a parser: every public function and method, called with a code payload in
each of its arguments in turn, refuses it with a TypeError/ValueError before any sympy parser
(``parse_expr``, the string branch of ``sympify``), symengine's parser, ``eval`` or ``exec``
of text sees it, and the payload never runs.

The table ``CALLS`` holds one cheap valid call per public callable; ``test_the_table_covers
_the_public_api`` walks the public namespaces so that a new public function must be added.
"""
import builtins
import inspect
import os
import sys
import tempfile

import numpy as np
import pytest
import sympy.parsing.sympy_parser as sympy_parser
import symengine

import flowsim as fs
from flowsim import diagnostics, losses, methods, plot, prox, schedules, study
from flowsim.study import recipes

CANARY = os.path.join(tempfile.mkdtemp(prefix="flowsim-spy-"), "fired")
PAYLOAD = f"__import__('os').system('touch {CANARY}')"
PUBLIC = [fs, diagnostics, study, plot, prox, schedules, losses, methods]

Q = "x**2 + 2*y**2"
X0 = [1.0, 0.5]


def _traj():
    return fs.gradient_descent(Q, X0, 0.1, 3)


def _me():
    return fs.modified_equation(Q, "gd", 0.1)


def _study():
    return fs.sweep(Q, ["gd"], starts=[X0], etas=[0.1], steps=3)


def _fit():
    return fs.Loss.from_samples("(a*x - y)**2", {"x": [1.0, 2.0], "y": [2.0, 3.0]}, ["a"])


def _spy_step(k, eta, x, state, ops, options):
    g = ops.grad(x)
    return x - eta * g, g, state, False


def _spy_field(x, ops, options):
    return -ops.grad(x)


def _spy_coefficients(t, options, xp):
    return options["c"] + 0 * t, 1.0 + 0 * t


def _register_once(name, rule, **kwargs):
    """register, then take the record out again (each call starts from the same registry)."""
    record = fs.register(name, rule, **kwargs)
    methods.unregister(record.name)
    return record


def _unregister(name):
    if name == "spy_gone":
        fs.register("spy_gone", fs.UpdateRule(_spy_step))
    return methods.unregister(name)


#: name -> (callable or a factory of the bound method, args, kwargs)
CALLS = {
    "register": (_register_once, ("spy_method", fs.UpdateRule(_spy_step)),
                 {"label": "spy", "short": "spy", "flow": "gradient_flow", "order": 1.0,
                  "step_time": "eta", "color": "tab:pink", "marker": "o"}),
    "methods.unregister": (_unregister, ("spy_gone",), {}),
    "UpdateRule": (fs.UpdateRule, (_spy_step,), {"init": None, "options": {"a": 1.0},
                                                 "grads_per_step": 1, "failure": "why"}),
    "VectorField": (fs.VectorField, (_spy_field,), {"jacobian": None, "options": {"c": 1.0},
                                                    "guard": None, "why": None}),
    "SecondOrderField": (fs.SecondOrderField, (_spy_coefficients,),
                         {"rate": None, "options": {"c": 1.0}, "constant": True}),
    "Loss.evaluator": (lambda: fs.Loss(Q).evaluator, ("grad",), {"batched": True}),
    "Loss.charge": (lambda: fs.Loss(Q).charge, (), {"value": 1, "grad": 2, "hess": 0}),
    "Loss.uncounted": (lambda: fs.Loss(Q).uncounted, (), {}),
    "Loss": (fs.Loss, (Q,), {"variables": ["x", "y"], "params": None, "backend": "auto",
                            "budget": None}),
    "Loss.from_samples": (fs.Loss.from_samples, ("(a*x - y)**2", {"x": [1.0], "y": [2.0]},
                                                 ["a"]), {"params": None}),
    "Loss.value": (lambda: fs.Loss(Q).value, (X0,), {}),
    "Loss.grad": (lambda: fs.Loss(Q).grad, (X0,), {}),
    "Loss.hess": (lambda: fs.Loss(Q).hess, (X0,), {"sparse": False}),
    "Loss.with_params": (lambda: fs.Loss("a*x**2", params={"a": 1.0}).with_params, (),
                         {"a": 2.0}),
    "Loss.subset": (lambda: _fit().subset, ([0],), {}),
    "Loss.with_facts": (lambda: fs.Loss(Q).with_facts, (fs.LossFacts("q"),), {}),
    "with_facts": (fs.with_facts, (Q,), {"bounds": (-1, 1), "min_value": None,
                                         "minimizers": None, "time_limit": 5.0}),
    "derive_facts": (fs.derive_facts, (Q, (-1, 1)), {"time_limit": 5.0, "name": None}),
    "Budget": (fs.Budget, (), {"nodes": 1000, "depth": 50}),
    "LossFacts": (fs.LossFacts, ("q",), {"min_value": 0.0, "bounds": ((-1, 1), (-1, 1))}),
    "KnownPoint": (fs.KnownPoint, (np.zeros(2), fs.PointKind.MINIMUM), {"is_global": True}),
    "kind_of_spectrum": (fs.kind_of_spectrum, ([1.0, 2.0],), {"tol": 1e-8}),
    "gradient_flow": (fs.gradient_flow, (Q, X0, 0.1), {"method": "RK45", "rtol": 1e-6,
                                                        "atol": 1e-8, "gtol": None,
                                                        "max_norm": 1e8, "max_steps": 100,
                                                        "backend": "numpy", "workers": None,
                                                        "chunk_size": None}),
    "heavy_ball_flow": (fs.heavy_ball_flow, (Q, X0, 0.1), {"mass": 1.0, "friction": 1.0,
                                                            "method": "RK45"}),
    "nesterov_flow": (fs.nesterov_flow, (Q, X0, 0.1), {"r": 3.0, "t0": 0.0}),
    "newton_flow": (fs.newton_flow, (Q, X0, 0.1), {"method": "RK45"}),
    "gradient_descent": (fs.gradient_descent, (Q, X0, 0.1, 3), {
        "line_search": None, "c": 1e-4, "shrink": 0.5, "gtol": None, "record": "all",
        "record_every": 1, "backend": "numpy", "workers": None, "chunk_size": None}),
    "proximal_point": (fs.proximal_point, (Q, X0, 0.1, 3), {"tol": 1e-12, "max_inner": 50}),
    "proximal_gradient": (fs.proximal_gradient, (Q, X0, 0.1, 3), {"prox": prox.L1(0.1)}),
    "heavy_ball": (fs.heavy_ball, (Q, X0, 0.1, 3), {"momentum": 0.9}),
    "nesterov": (fs.nesterov, (Q, X0, 0.1, 3), {"r": 3.0, "momentum": None}),
    "newton": (fs.newton, (Q, X0, 0.5, 3), {}),
    "sgd": (lambda: fs.sgd, (), {}),   # args filled in below (needs a finite-sum loss)
    "heun": (fs.heun, (Q, X0, 0.1, 3), {}),
    "compare": (fs.compare, (Q, X0, 0.1, 3, ("gd",)), {"flow_method": "DOP853",
                                                       "options": None, "progress": None}),
    "convergence_order": (fs.convergence_order, (Q, X0, "gd", 0.1), {
        "etas": [0.02, 0.01, 0.005], "friction": 1.0, "flow_method": "DOP853"}),
    "classify": (fs.classify, (Q, [0.0, 0.0]), {"tol": 1e-8}),
    "critical_points": (fs.critical_points, (Q, [(-1, 1), (-1, 1)]), {
        "method": "auto", "kinds": None, "max_boxes": 1000, "time_limit": 5.0, "seed": 0}),
    "lyapunov": (lambda: lambda *a, **k: fs.lyapunov(Q, _traj(), *a, **k), (),
                 {"min_value": 0.0, "lipschitz": None}),
    "saddle_escape": (fs.saddle_escape, ("x**2 - y**2", [0.0, 0.0]), {
        "delta": 1e-3, "radius": 0.1, "max_steps": 1000}),
    "stability": (fs.stability, (Q, [0.0, 0.0]), {"eta": 0.1}),
    "lipschitz_estimate": (fs.lipschitz_estimate, (Q, [(-1, 1), (-1, 1)]), {
        "n_samples": 16, "seed": 0}),
    "sharpness": (lambda: lambda *a, **k: fs.sharpness(Q, _traj(), *a, **k), (), {}),
    "sweep": (fs.sweep, (Q, ["gd"]), {"starts": [X0], "etas": [0.1], "steps": 3,
                                      "options": None, "tol": None, "min_value": None,
                                      "chunk_size": 10, "workers": None, "seed": 0,
                                      "progress": False}),
    "grid_starts": (study.grid_starts, (Q, 3), {"bounds": (-1, 1)}),
    "load_study": (lambda: fs.load_study, (), {}),   # a path, filled in below
    "Study.save": (lambda: _study().save, (), {}),   # a path, filled in below
    "modified_equation": (fs.modified_equation, (Q, "gd", 0.1), {
        "order": 1, "max_terms": 1000, "time_limit": 5.0}),
    "modified_equation (heavy ball)": (fs.modified_equation, (Q, "hb", 0.1),
                                       {"momentum": 0.5}),
    "ModifiedEquation.flow": (lambda: _me().flow, (X0, 0.1), {
        "t_eval": None, "rtol": 1e-8, "atol": 1e-10, "method": "DOP853", "max_norm": 1e8}),
    "ModifiedEquation.start": (lambda: _me().start, (X0,), {}),
    "central_flow": (fs.central_flow, (Q, X0, 0.1, 0.1), {"n_outputs": 3, "gain": 10.0}),
    "sharpness_gradient": (fs.sharpness_gradient, (Q, X0), {}),
    "sgd_sde": (lambda: fs.sgd_sde, (), {}),   # filled in below
    "mirror_flow": (fs.mirror_flow, (Q, X0, 0.1), {"potential": None, "n_outputs": 3}),
    "mirror_descent": (fs.mirror_descent, (Q, X0, 0.1, 3), {"potential": None}),
    "natural_gradient": (fs.natural_gradient, (Q, X0, 0.1, 3), {"metric": None}),
    "bregman_proximal_point": (fs.bregman_proximal_point, (Q, X0, 0.1, 3), {
        "potential": None, "iterations": 5}),
    "adam": (fs.adam, (Q, X0, 0.1, 3), {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
    "rmsprop": (fs.rmsprop, (Q, X0, 0.1, 3), {"rho": 0.9}),
    "adagrad": (fs.adagrad, (Q, X0, 0.1, 3), {"eps": 1e-8}),
    "sign_descent": (fs.sign_descent, (Q, X0, 0.1, 3), {}),
    "adam_flow": (fs.adam_flow, (Q, X0, 0.1), {"a": 1.0, "b": 2.0, "n_outputs": 3}),
    "sign_flow": (fs.sign_flow, ("abs(x) + abs(y)", X0, 0.1), {"method": "DOP853"}),
    "Trajectory.at": (lambda: _traj().at, (0.1,), {}),
    "BatchTrajectory.trajectory": (
        lambda: fs.gradient_descent(Q, [X0, X0], 0.1, 3).trajectory, (1,), {}),
    "methods.get": (methods.get, ("gd",), {"kind": "scheme"}),
    "methods.style": (methods.style, ("gd",), {"index": 0}),
    "methods.schemes": (methods.schemes, (), {}),
    "methods.flows": (methods.flows, (), {}),
    "plot.contour": (plot.contour, (Q,), {"bounds": (-1, 1), "levels": 5,
                                          "resolution": 10, "critical": False}),
    "plot.values": (lambda: lambda *a, **k: plot.values([_traj()], *a, **k), (),
                    {"min_value": 0.0}),
    "plot.spectrum": (plot.spectrum, (Q, X0), {}),
    "plot.stability_picture": (plot.stability_picture, (Q, X0), {"eta_max": 1.0, "n": 10}),
    "plot.surface": (plot.surface, (Q,), {"bounds": (-1, 1), "resolution": 5}),
    "plot.basins": (plot.basins, (Q,), {"bounds": (-1, 1), "resolution": 3, "t_end": 0.1,
                                        "minima": [[0.0, 0.0]]}),
    "prox.L1": (prox.L1, (0.1,), {}),
    "prox.L2Squared": (prox.L2Squared, (0.1,), {}),
    "prox.ElasticNet": (prox.ElasticNet, (0.1, 0.1), {}),
    "prox.Box": (prox.Box, (-1.0, 1.0), {}),
    "prox.GroupL1": (prox.GroupL1, (((0, 1),), 0.1), {}),
    "prox.MoreauEnvelope": (prox.MoreauEnvelope, (prox.L1(0.1), 0.5), {}),
    "schedules.constant": (schedules.constant, (0.1,), {}),
    "schedules.inverse_time": (schedules.inverse_time, (0.1, 0.5), {}),
    "schedules.step_decay": (schedules.step_decay, (0.1, (10,)), {"factor": 0.5}),
    "schedules.as_schedule": (schedules.as_schedule, (0.1,), {}),
    "losses.quadratic": (losses.quadratic, ([[2.0, 0.0], [0.0, 1.0]],), {"x_star": None}),
    "losses.ill_conditioned_quadratic": (losses.ill_conditioned_quadratic, (),
                                         {"kappa": 10.0, "n": 2}),
    "losses.rosenbrock": (losses.rosenbrock, (), {"n": 2, "b": 100.0}),
    "losses.least_squares": (losses.least_squares, ([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0]),
                             {}),
    "losses.logistic_regression": (losses.logistic_regression,
                                   ([[1.0, 0.0], [0.0, 1.0]], [0.0, 1.0]), {"lam": 0.1}),
    "losses.lasso": (losses.lasso, ([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0], 0.1), {}),
    "recipes.step_size_sweep": (recipes.step_size_sweep, (Q, X0, [0.1]), {
        "methods": ("gd",), "steps": 3}),
    "recipes.time_to_tolerance": (recipes.time_to_tolerance, (Q, [X0]), {
        "tol": 1e-2, "methods": ("gd",), "eta": 0.1, "steps": 3}),
    "recipes.basin_map": (recipes.basin_map, (losses.himmelblau(),), {
        "eta": 0.01, "resolution": 2, "steps": 3, "methods": ("gd",)}),
}
FIT = _fit()
CALLS["sgd"] = (fs.sgd, (FIT, [1.0], 0.1, 3), {"batch_size": 1, "sampling": "reshuffle",
                                               "momentum": 0.0, "chains": None, "seed": 0})
CALLS["sgd_sde"] = (fs.sgd_sde, (FIT, [1.0], 0.1, 0.3), {
    "batch_size": 1, "sampling": "with_replacement", "order": 1, "paths": 4, "substeps": 2,
    "seed": 0, "n_outputs": 3})

#: Public callables that take no text from a user: results and records flowsim builds.
BUILT_BY_FLOWSIM = {
    "EvalCounts", "PointKind", "Trajectory", "BatchTrajectory", "Status", "Comparison",
    "ConvergenceOrder", "Study", "ModifiedEquation", "CriticalPoint", "CriticalPointSet",
    "UndecidedRegion", "LyapunovReport", "SaddleEscape", "StabilityReport",
    "LipschitzEstimate", "Sharpness", "QuadraticFlow", "Composite", "Method", "register",
    "NonNegative", "himmelblau", "six_hump_camel", "beale", "monkey_saddle", "saddle",
    "double_well", "comparison_figure", "deviation", "animate", "step_size_picture",
    "basin_maps", "time_to_tolerance_picture", "LossOps"}
#: ... and why each of the last ones needs no row of its own: constructors with no arguments
#: (the named losses, NonNegative), pictures of results (their arguments are flowsim's own
#: objects and an Axes), ``register`` (a Method record, checked by type), and ``animate``
#: (its path is checked by ``writable_path`` like ``Study.save``'s, tested there), and
#: ``LossOps`` (the loss as an update rule sees it, built by flowsim's drivers).


def test_the_table_covers_the_public_api():
    names = set()
    for module in PUBLIC:
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj) and not (isinstance(obj, type) and
                                      issubclass(obj, BaseException)):
                names.add(name)
    covered = {key.split(" ")[0].split(".")[-1] for key in CALLS} | BUILT_BY_FLOWSIM
    assert names - covered == set()


@pytest.fixture
def spied(monkeypatch, tmp_path):
    """Record text reaching sympy's parser, symengine's parser, eval or exec."""
    seen = []

    def parse_expr(s, *args, **kwargs):
        seen.append(("parse_expr", s))
        raise AssertionError("text reached sympy's parse_expr")

    def eval_expr(code, *args, **kwargs):
        seen.append(("eval_expr", code))
        raise AssertionError("text reached sympy's eval_expr")
    monkeypatch.setattr(sympy_parser, "parse_expr", parse_expr)
    monkeypatch.setattr(sympy_parser, "eval_expr", eval_expr)
    se_sympify = symengine.sympify

    def symengine_sympify(a, *args, **kwargs):
        if isinstance(a, (str, bytes)):
            seen.append(("symengine.sympify", a))
            raise AssertionError("text reached symengine's parser")
        return se_sympify(a, *args, **kwargs)
    monkeypatch.setattr(symengine, "sympify", symengine_sympify)
    for name in ("eval", "exec"):
        original = getattr(builtins, name)

        def spy(source, *args, _name=name, _original=original, **kwargs):
            if isinstance(source, (str, bytes)) and "system" in str(source):
                seen.append((_name, source))
                raise AssertionError(f"the payload reached {_name}")
            if not args and "globals" not in kwargs:   # run where the caller would have
                caller = sys._getframe(1)
                args = (caller.f_globals, caller.f_locals)
            return _original(source, *args, **kwargs)
        monkeypatch.setattr(builtins, name, spy)
    return seen


#: Arguments that are free text by design (labels and names looked up, never parsed).
TEXT = {("LossFacts", "argument 0"), ("methods.style", "argument 0"), ("derive_facts", "name"),
        ("register", "label"), ("register", "color"), ("register", "marker"),
        ("UpdateRule", "failure")}


def _resolve(name, tmp_path):
    target, args, kwargs = CALLS[name]
    if name in ("load_study", "Study.save"):
        folder = tmp_path / "study"
        if name == "load_study":
            _study().save(str(folder))
        args = (str(folder),)
    if isinstance(target, type(lambda: 0)) and target.__name__ == "<lambda>" and \
            not inspect.signature(target).parameters:
        target = target()
    return target, tuple(args), dict(kwargs)


def _variants(target, args, kwargs):
    """(label, args, kwargs) with the payload in one argument at a time."""
    for i in range(len(args)):
        yield f"argument {i}", args[:i] + (PAYLOAD,) + args[i + 1:], kwargs
    for key in kwargs:
        yield key, args, {**kwargs, key: PAYLOAD}
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params):
        yield "an unknown keyword", args, {**kwargs, "unknown_option": PAYLOAD}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_text_in_every_argument_reaches_no_parser(name, spied, tmp_path):
    target, args, kwargs = _resolve(name, tmp_path)
    target(*args, **kwargs)          # the baseline call is valid
    assert not spied
    for where, a, k in _variants(target, args, kwargs):
        if name == "Study.save" and where == "argument 0":
            continue   # any text is a valid folder name (and would be made here)
        if (name, where) in TEXT:
            target(*a, **k)    # accepted as the label it is
            assert not spied, (where, spied)
            continue
        try:
            target(*a, **k)
        except (TypeError, ValueError, IndexError) as error:
            assert "\n" not in str(error).strip(), (where, str(error))
        except Exception as error:  # noqa: BLE001 - the test reports which argument
            pytest.fail(f"{where}: raised {type(error).__name__}: {error}")
        else:
            pytest.fail(f"{where}: the payload was accepted")
        assert not spied, (where, spied)
    assert not os.path.exists(CANARY)
