"""Learning rates 0.1, 0.5, 1, 1.5, 2.1 on the quadratic bowl
==========================================================

The flow gives ``e^{-t}``; gradient descent with step eta multiplies the distance by
``|1 - eta|`` per step, ``|x_k - x*| = |1 - eta|^k |x0 - x*|``: monotone below 1, exact in one
step at 1, oscillating between 1 and 2, divergent above 2.
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import save, setup
import flowsim as fs
from flowsim import losses

args, out = setup(__doc__, "02_learning_rates")
loss = losses.quadratic(np.eye(1), [1.0])
steps = 10 if args.quick else 25
fig, ax = plt.subplots(figsize=(6.5, 4.2))
# eta = 0.5 and 1.5 shrink the distance by the same |1 - eta| = 0.5 (one from one side, one
# oscillating): their curves coincide, so each eta has its own marker and dash
STYLES = {0.1: ("o", "-"), 0.5: ("s", "-"), 1.0: ("^", "-"), 1.5: ("D", "--"), 2.1: ("v", "-")}
for eta in (0.1, 0.5, 1.0, 1.5, 2.1):
    traj = fs.gradient_descent(loss, [3.0], eta, steps)
    dist = np.abs(traj.xs[:, 0] - 1.0)
    predicted = abs(1 - eta) ** np.arange(len(dist)) * 2.0
    print(f"eta = {eta:3.1f}: |x_k - x*| after {len(dist) - 1} steps = {dist[-1]:.4g} "
          f"(|1 - eta|^k |x0 - x*| = {predicted[-1]:.4g}); status {traj.status.value}")
    marker, dash = STYLES[eta]
    shown = np.where(dist > 0, dist, np.nan)   # eta = 1 lands exactly: no point at 0 on a log axis
    ax.semilogy(np.arange(len(dist)), shown, marker=marker, ls=dash, ms=4 if dash == "-" else 7,
                mfc="none" if dash != "-" else None,
                label=f"eta={eta}" + (" (exact in one step)" if eta == 1.0 else ""))
t = np.linspace(0, steps, 200)
ax.semilogy(t, 2.0 * np.exp(-0.5 * t), "k--", label="flow e^{-t} at eta=0.5")
ax.set(xlabel="step k", ylabel="|x_k - x*|", title="the quadratic bowl")
ax.legend(fontsize=8)
save(fig, out, "learning_rates.png")
