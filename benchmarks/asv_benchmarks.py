"""The suite in asv's conventions (``time_*``, ``track_*``): ``asv run --python=same --quick``.

Each class times flowsim and, where one exists, the hand-written reference of the same work,
so asv's history shows both; ``track_*`` methods report ratios and errors.
"""
import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import rosen_der

import flowsim as fs
from flowsim import losses


class Derivatives:
    """Compiled gradient against scipy's hand-written rosen_der (n = 2, 100, 1000)."""

    params = [2, 100, 1000]
    param_names = ["n"]

    def setup(self, n):
        self.loss = losses.rosenbrock(n)
        self.x = np.random.default_rng(0).uniform(-1, 1, n)

    def time_flowsim_grad(self, n):
        self.loss.grad(self.x)

    def time_rosen_der(self, n):
        rosen_der(self.x)


class OneFlow:
    """The 2-D Rosenbrock flow to t = 10 against raw solve_ivp with a hand-written rhs."""

    params = ["RK45", "LSODA"]
    param_names = ["method"]

    def setup(self, method):
        self.loss = losses.rosenbrock(2)
        self.x0 = np.array([-1.0, 1.0])

    def time_flowsim(self, method):
        fs.gradient_flow(self.loss, self.x0, 10.0, method=method, rtol=1e-8, atol=1e-10)

    def time_solve_ivp(self, method):
        def rhs(t, x):
            a, b = x
            return [2 * (1 - a) + 400 * a * (b - a * a), -200 * (b - a * a)]
        solve_ivp(rhs, (0, 10.0), self.x0, method=method, rtol=1e-8, atol=1e-10)


class ManyStarts:
    """Batched flow and GD on 10,000 starts."""

    def setup(self):
        self.loss = losses.rosenbrock(2)
        self.X = np.random.default_rng(0).uniform(-2, 2, (10_000, 2))

    def time_flow_rk45(self):
        fs.gradient_flow(self.loss, self.X, 1.0, method="RK45", rtol=1e-6, atol=1e-9,
                         t_eval=[0.0, 1.0], dense_output=False)

    def time_gd_final_only(self):
        fs.gradient_descent(self.loss, self.X, 1e-4, 200, record="final")


class Accuracy:
    """Errors that should not move: GD and Heun against the closed-form flow of a quadratic."""

    def setup(self):
        self.loss = losses.ill_conditioned_quadratic(100.0)
        self.x0 = np.array([1.0, 1.0])
        self.exact = self.loss.facts.flow_solution(1.0, self.x0)

    def track_gd_error_eta_1e3(self):
        traj = fs.gradient_descent(self.loss, self.x0, 1e-3, 1000)
        return float(np.linalg.norm(traj.x_final - self.exact))

    def track_heun_error_eta_1e3(self):
        traj = fs.heun(self.loss, self.x0, 1e-3, 1000)
        return float(np.linalg.norm(traj.x_final - self.exact))

    track_gd_error_eta_1e3.unit = "distance"
    track_heun_error_eta_1e3.unit = "distance"
