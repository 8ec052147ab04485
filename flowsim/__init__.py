"""flowsim: gradient methods as dynamical systems.

Compile a loss from a formula, integrate its gradient flow, compare the flow step by step with
its discretizations, and explain what is seen with Lyapunov, critical-point and step-size
diagnostics. ``flowsim.methods`` is the registry of every flow and scheme.
"""
import importlib
import sys
import types

__version__ = "0.2.0"

#: public name -> the module that defines it; imported on first use, so ``import flowsim``
#: costs no more than the package itself (the numerics load when a function is called)
_WHERE = {
    **{name: "flowsim.compare" for name in ("Comparison", "compare")},
    **{name: "flowsim.diagnostics" for name in (
        "classify", "critical_points", "lipschitz_estimate", "lyapunov", "saddle_escape",
        "sharpness", "stability")},
    **{name: "flowsim.diagnostics.facts_on_demand" for name in ("derive_facts",
                                                                 "with_facts")},
    **{name: "flowsim.facts" for name in ("KnownPoint", "LossFacts", "PointKind",
                                          "kind_of_spectrum")},
    **{name: "flowsim.flows" for name in (
        "adam_flow", "central_flow", "gradient_flow", "heavy_ball_flow", "mirror_flow",
        "nesterov_flow", "newton_flow", "sgd_sde", "sharpness_gradient", "sign_flow")},
    **{name: "flowsim.loss" for name in ("Budget", "EvalCounts", "Loss")},
    "register": "flowsim.methods",
    **{name: "flowsim.rules" for name in ("LossOps", "SecondOrderField", "UpdateRule",
                                          "VectorField")},
    **{name: "flowsim.modified" for name in ("ModifiedEquation", "modified_equation")},
    **{name: "flowsim.order" for name in ("ConvergenceOrder", "convergence_order")},
    **{name: "flowsim.results" for name in ("BatchTrajectory", "Status", "Trajectory")},
    **{name: "flowsim.study" for name in ("Study", "load_study", "sweep")},
    **{name: "flowsim.schemes" for name in (
        "adagrad", "adam", "bregman_proximal_point", "gradient_descent", "heavy_ball",
        "heun", "mirror_descent", "natural_gradient", "nesterov", "newton",
        "proximal_gradient", "proximal_point", "rmsprop", "sgd", "sign_descent")},
}
#: public submodules, imported on first use
_SUBMODULES = ("diagnostics", "losses", "methods", "prox", "schedules", "schemes", "study",
               "plot", "rules")

#: every public name: the lazy ones and the submodules (not ``plot``: a star import should
#: not pull in matplotlib)
__all__ = [*_WHERE, *(m for m in _SUBMODULES if m != "plot"), "__version__"]


def _load(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'flowsim' has no attribute {name!r}")


class _Package(types.ModuleType):
    """The package module: public names load on first use. ``compare`` names both a function
    and its module (``flowsim.compare``): the function wins, also after the module is
    imported (the import system's own assignment of the module is ignored)."""

    @property
    def compare(self):
        return _load("compare")

    @compare.setter
    def compare(self, value):
        pass


def __getattr__(name):
    value = _load(name)
    if name != "compare":
        globals()[name] = value   # cached: the next access is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


sys.modules[__name__].__class__ = _Package
