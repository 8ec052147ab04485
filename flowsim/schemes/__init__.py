"""Discrete schemes: each a discretization of a flow, each returning a Trajectory.

``SCHEMES`` maps the short names used by :func:`flowsim.compare` and the command line to
the functions; ``ORDERS`` gives each one's order as a discretization of its flow.
"""
from .gd import gradient_descent
from .others import heavy_ball, heun, nesterov, newton, proximal_gradient, sgd
from .proximal_point import proximal_point, proximal_step

SCHEMES = {"gd": gradient_descent, "prox": proximal_point, "prox_grad": proximal_gradient,
           "heavy_ball": heavy_ball, "nesterov": nesterov, "newton": newton, "sgd": sgd,
           "heun": heun}
ORDERS = {"gd": 1, "prox": 1, "prox_grad": 1, "heavy_ball": 1, "nesterov": 1, "newton": 1,
          "sgd": 1, "heun": 2}

__all__ = ["gradient_descent", "proximal_point", "proximal_step", "proximal_gradient",
           "heavy_ball", "nesterov", "newton", "sgd", "heun", "SCHEMES", "ORDERS"]
