"""flowsim: gradient methods as dynamical systems.

Compile a loss from a formula, integrate its gradient flow, compare the flow step by step with
its discretizations, and explain what is seen with Lyapunov, critical-point and step-size
diagnostics.
"""
from . import diagnostics, losses, prox, schedules, schemes
from .diagnostics import (classify, critical_points, lipschitz_estimate, lyapunov,
                          saddle_escape, sharpness, stability)
from .compare import Comparison, compare
from .order import ConvergenceOrder, convergence_order
from .facts import KnownPoint, LossFacts, PointKind
from .flow import gradient_flow, newton_flow
from .loss import Budget, EvalCounts, Loss
from .second_order import heavy_ball_flow, nesterov_flow
from .schemes import (gradient_descent, heavy_ball, heun, nesterov, newton, proximal_gradient,
                      proximal_point, sgd)
from .trajectory import BatchTrajectory, Status, Trajectory

__version__ = "0.1.0"

__all__ = ["Loss", "Budget", "EvalCounts", "LossFacts", "KnownPoint", "PointKind", "losses",
           "Trajectory", "BatchTrajectory", "Status", "gradient_flow", "heavy_ball_flow",
           "nesterov_flow", "newton_flow", "gradient_descent", "proximal_point",
           "proximal_gradient", "heavy_ball", "nesterov", "newton", "sgd", "heun", "compare",
           "Comparison", "convergence_order", "ConvergenceOrder", "prox", "schedules",
           "schemes", "classify", "critical_points", "lyapunov", "saddle_escape", "stability",
           "lipschitz_estimate", "sharpness", "diagnostics", "__version__"]
