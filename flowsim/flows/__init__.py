"""Continuous flows on scipy's ODE solvers, one file per flow.

``gradient`` (dx/dt = -grad L), ``newton`` (dx/dt = -H^{-1} grad L), ``momentum`` (the heavy
ball and Nesterov ODEs in (x, v)), ``batch`` (many starts on the per-start engines of
:mod:`flowsim.ensemble`),
``nonsmooth`` (the minimal-norm subgradient flow of losses with kinks); ``_solver`` is the
loop around ``solve_ivp``'s steppers (stop rules, step budget, stiffness watch) and
``_common`` what every flow checks and returns; ``central`` the sharpness gradient and the
central flow of GD at the edge of stability; ``sde`` the stochastic modified equations of SGD;
``sign`` the sign-gradient flow (Filippov, on the switching loop of ``nonsmooth``).
"""
from .adam import adam_flow
from .central import central_flow, sharpness_gradient
from .gradient import gradient_flow
from .momentum import heavy_ball_flow, nesterov_flow
from .mirror import mirror_flow
from .newton import newton_flow
from .sde import sgd_sde
from .sign import sign_flow

__all__ = ["gradient_flow", "newton_flow", "heavy_ball_flow", "nesterov_flow", "central_flow",
           "sharpness_gradient", "sgd_sde", "mirror_flow", "adam_flow", "sign_flow"]
