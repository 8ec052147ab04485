"""flowsim: gradient methods as dynamical systems.

Compile a loss from a formula, integrate its gradient flow, compare the flow step by step with
its discretizations, and explain what is seen with Lyapunov, critical-point and step-size
diagnostics. ``flowsim.methods`` is the registry of every flow and scheme.
"""
from . import diagnostics, losses, methods, prox, schedules, schemes, study
from .compare import Comparison, compare
from .diagnostics import (classify, critical_points, lipschitz_estimate, lyapunov,
                          saddle_escape, sharpness, stability)
from .diagnostics.facts_on_demand import derive_facts, with_facts
from .facts import KnownPoint, LossFacts, PointKind, kind_of_spectrum
from .flows import (adam_flow, central_flow, gradient_flow, heavy_ball_flow, mirror_flow,
                    nesterov_flow, newton_flow, sgd_sde, sharpness_gradient, sign_flow)
from .loss import Budget, EvalCounts, Loss
from .methods import register
from .rules import LossOps, UpdateRule, VectorField
from .modified import ModifiedEquation, modified_equation
from .order import ConvergenceOrder, convergence_order
from .results import BatchTrajectory, Status, Trajectory
from .study import Study, load_study, sweep
from .schemes import (adagrad, adam, bregman_proximal_point, gradient_descent, heavy_ball, heun,
                      mirror_descent, natural_gradient, nesterov, newton, proximal_gradient,
                      proximal_point, rmsprop, sgd, sign_descent)

__version__ = "0.2.0"

__all__ = ["Loss", "Budget", "EvalCounts", "LossFacts", "KnownPoint", "PointKind",
           "kind_of_spectrum", "losses", "Trajectory", "BatchTrajectory", "Status",
           "gradient_flow", "heavy_ball_flow", "nesterov_flow", "newton_flow",
           "gradient_descent", "proximal_point", "proximal_gradient", "heavy_ball", "nesterov",
           "newton", "sgd", "heun", "compare", "Comparison", "convergence_order",
           "ConvergenceOrder", "methods", "prox", "schedules", "schemes", "classify",
           "critical_points", "lyapunov", "saddle_escape", "stability", "lipschitz_estimate",
           "sharpness", "diagnostics", "sweep", "Study", "load_study", "study",
           "modified_equation", "ModifiedEquation", "central_flow",
           "sharpness_gradient", "sgd_sde", "mirror_flow", "mirror_descent",
           "natural_gradient", "bregman_proximal_point", "adam", "rmsprop", "adagrad",
           "sign_descent", "adam_flow", "sign_flow", "with_facts", "derive_facts",
           "register", "UpdateRule", "VectorField", "LossOps",
           "__version__"]


def __getattr__(name):
    """``flowsim.plot`` on first use (matplotlib is imported only by the pictures)."""
    if name == "plot":
        import importlib
        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'flowsim' has no attribute {name!r}")
