"""Discrete schemes, one file per scheme, each returning a Trajectory.

All share the signature ``(loss, x0, eta, steps, *, ...)`` with ``eta`` a number or a
schedule ``k -> eta_k``, and one loop (:mod:`flowsim.schemes._driver`). What each one
discretizes, its order and its time per step are in :mod:`flowsim.methods`.
"""
from .adaptive import adagrad, adam, rmsprop, sign_descent
from .gd import gradient_descent
from .heavy_ball import heavy_ball
from .heun import heun
from .mirror_descent import bregman_proximal_point, mirror_descent, natural_gradient
from .nesterov import nesterov
from .newton import newton
from .proximal_gradient import proximal_gradient
from .proximal_point import proximal_point, proximal_step
from .sgd import sgd

__all__ = ["gradient_descent", "proximal_point", "proximal_step", "proximal_gradient",
           "heavy_ball", "nesterov", "newton", "sgd", "heun", "mirror_descent",
           "natural_gradient", "bregman_proximal_point", "adam", "rmsprop", "adagrad",
           "sign_descent"]
