"""Proximal gradient on l1-regularized least squares
=================================================

Sparsity appears, and the Moreau envelope. Forward-backward splitting soft-thresholds after
each gradient step, so coefficients reach exactly zero; the Moreau envelope of ``lam |w|`` is
the Huber function, a smooth stand-in.
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import save, setup
import flowsim as fs
from flowsim import losses
from flowsim.prox import L1, MoreauEnvelope

args, out = setup(__doc__, "05_lasso_prox")
rng = np.random.default_rng(0)
X = rng.normal(size=(60, 8))
w_true = np.array([2.0, 0, 0, -1.5, 0, 0, 0.5, 0])
y = X @ w_true + 0.1 * rng.normal(size=60)
lam = 0.1
problem = losses.lasso(X, y, lam)
step = 1 / np.linalg.eigvalsh(X.T @ X / 60).max()
traj = fs.proximal_gradient(problem, np.zeros(8), step, 60 if args.quick else 300)
zeros = np.sum(np.abs(traj.xs) < 1e-12, axis=1)
print(f"final w = {np.round(traj.x_final, 4).tolist()}")
print(f"exact zeros: {zeros[-1]} of 8 (true model has {np.sum(w_true == 0)}); "
      f"gradient mapping {traj.grad_norms[-1]:.2e}; F = f + g = {traj.values[-1]:.6f}")
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
axes[0].plot(traj.xs)
axes[0].set(xlabel="step k", ylabel="w_i", title=f"proximal gradient, lam = {lam}")
u = np.linspace(-2, 2, 401)[:, None]
for eta in (0.25, 1.0):
    axes[1].plot(u[:, 0], MoreauEnvelope(L1(1.0), eta).value(u), label=f"envelope, eta={eta}")
axes[1].plot(u[:, 0], L1(1.0).value(u), "k--", label="|w|")
axes[1].set(xlabel="w", title="Moreau envelope of |w| (Huber)")
axes[1].legend(fontsize=8)
save(fig, out, "lasso_prox.png")
