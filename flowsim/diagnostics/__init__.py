"""Diagnostics: Lyapunov checks, critical points and saddles, step-size stability."""
from .critical import CriticalPoint, classify, critical_points
from .critical_set import CriticalPointSet, UndecidedRegion
from .lyapunov import LyapunovReport, lyapunov
from .saddle import SaddleEscape, saddle_escape
from .stability import (LipschitzEstimate, Sharpness, StabilityReport, lipschitz_estimate,
                        sharpness, stability)

__all__ = ["CriticalPoint", "CriticalPointSet", "UndecidedRegion", "classify",
           "critical_points", "LyapunovReport", "lyapunov",
           "SaddleEscape", "saddle_escape", "StabilityReport", "stability",
           "LipschitzEstimate", "lipschitz_estimate", "Sharpness", "sharpness"]
