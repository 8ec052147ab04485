"""flowsim: gradient methods as dynamical systems.

Compile a loss from a formula, integrate its gradient flow, compare the flow step by step with
its discretizations, and explain what is seen with Lyapunov, critical-point and step-size
diagnostics.
"""
from . import losses
from .facts import KnownPoint, LossFacts, PointKind
from .loss import EvalCounts, Loss

__version__ = "0.1.0"

__all__ = ["Loss", "EvalCounts", "LossFacts", "KnownPoint", "PointKind", "losses",
           "__version__"]
