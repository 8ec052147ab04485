"""Gradient descent at the edge of stability, and the central flow that explains it
================================================================================

On the deep scalar factorization ``L = (w1 w2 w3 - 1)^2 / 2`` the gradient flow sharpens: from
an unbalanced start it ends at a minimum with sharpness 5.5. Gradient descent with ``2/eta``
below that cannot follow it: its sharpness rises to ``2/eta``, it oscillates along the top
eigenvector, and it drifts along the minima holding ``lambda_max`` at ``2/eta``
(self-stabilization). The central flow (Cohen et al. 2024) is the ODE of GD's time average:
the gradient flow projected so that the sharpness stays at ``2/eta``; it also predicts GD's
time-averaged loss.

The second picture shows the same on a small tanh network fitted to 8 points
(``losses.tanh_network``): progressive sharpening from 2.3 to 26.6 along the flow, GD riding
the edge from t of about 60, and the central flow's predicted average loss against GD's.
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import save, setup
import flowsim as fs
from flowsim import losses

args, out = setup(__doc__, "08_edge_of_stability")
loss = losses.scalar_factorization(3)
x0 = [0.3, 0.6, 2.5]
T = 8.0 if args.quick else 30.0
eta = 0.45
gf = fs.gradient_flow(loss, x0, T)
gd = fs.gradient_descent(loss, x0, eta, int(T / eta))
cf = fs.central_flow(loss, x0, eta, T, n_outputs=151 if args.quick else 601)
sharp_gd = fs.sharpness(loss, gd).lambda_max
sharp_gf = np.linalg.eigvalsh(loss.hess(gf.xs))[:, -1]
print(f"2/eta = {2 / eta:.4g}; sharpness at T: flow {sharp_gf[-1]:.4g}, GD (mean of the last "
      f"20) {sharp_gd[-20:].mean():.4g}, central flow {cf.extras['sharpness'][-1]:.4g}")

# how closely the central flow follows GD's two-step average, for several steps
for step in ((0.45,) if args.quick else (0.38, 0.4, 0.45, 0.5)):
    run = fs.gradient_descent(loss, x0, step, int(T / step))
    c = cf if step == eta else fs.central_flow(loss, x0, step, T, n_outputs=301)
    tm = 0.5 * (run.ts[1:] + run.ts[:-1])
    mid = 0.5 * (run.xs[1:] + run.xs[:-1])
    along = np.stack([np.interp(tm, c.ts, c.xs[:, i]) for i in range(3)], axis=1)
    late = tm > T / 2
    print(f"eta = {step}: max |GD average - central flow| over the second half "
          f"{np.abs(mid - along)[late].max():.3g}; vs the gradient flow "
          f"{np.abs(mid - gf.at(tm))[late].max():.3g}")

fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
ax = axes[0]
ax.plot(gd.ts, sharp_gd, color="tab:blue", lw=0.8, label="GD")
ax.plot(gf.ts, sharp_gf, "k-", lw=2.5, alpha=0.6, label="gradient flow")
ax.plot(cf.ts, cf.extras["sharpness"], color="tab:red", lw=2, label="central flow")
ax.axhline(2 / eta, color="gray", ls=":", label="2/eta")
ax.set(xlabel="t = k eta", ylabel="lambda_max(H)", title=f"sharpness (eta = {eta})")
ax.legend(fontsize=8)
ax = axes[1]
ax.plot(gd.xs[:, 0], gd.xs[:, 2], ".-", color="tab:blue", lw=0.5, ms=3, label="GD iterates")
ax.plot(gf.xs[:, 0], gf.xs[:, 2], "k-", lw=2.5, alpha=0.6, label="gradient flow")
ax.plot(cf.xs[:, 0], cf.xs[:, 2], color="tab:red", lw=2, label="central flow")
ax.set(xlabel="w1", ylabel="w3", title="GD oscillates about the central flow")
ax.legend(fontsize=8)
ax = axes[2]
pair = 0.5 * (gd.values[1:] + gd.values[:-1])
ax.semilogy(gd.ts, np.maximum(gd.values, 1e-16), color="tab:blue", lw=0.5, alpha=0.6,
            label="GD loss")
ax.semilogy(0.5 * (gd.ts[1:] + gd.ts[:-1]), np.maximum(pair, 1e-16), color="tab:blue", lw=2,
            label="GD, two-step average")
ax.semilogy(cf.ts, np.maximum(cf.extras["predicted_loss"], 1e-16), "--", color="tab:red",
            lw=2, label="central flow: predicted average")
ax.semilogy(gf.ts, np.maximum(gf.values, 1e-16), "k-", lw=2.5, alpha=0.6,
            label="gradient flow")
ax.set(xlabel="t", ylabel="L", title="the time-averaged loss, predicted")
ax.legend(fontsize=8)
save(fig, out, "edge_of_stability.png")


# a small tanh network: progressive sharpening, then the edge (the same three panels)
net = losses.tanh_network(2, 8)
w0, T_net = [0.3, -0.2, 0.2, 0.1], 120.0
gf_net = fs.gradient_flow(net, w0, T_net)
sharp_gf_net = np.linalg.eigvalsh(net.hess(gf_net.xs))[:, -1]
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
for step, color in ((0.25, "tab:blue"),) + (() if args.quick else ((0.35, "tab:green"),)):
    n_steps = int(round(T_net / step))
    run = fs.gradient_descent(net, w0, step, n_steps)
    c = fs.central_flow(net, w0, step, T_net, n_outputs=n_steps + 1)
    mid = 0.5 * (run.xs[1:] + run.xs[:-1])
    tm = 0.5 * (run.ts[1:] + run.ts[:-1])
    late = run.ts >= 90
    print(f"tanh network, eta = {step}: GD's mean loss over t >= 90 {run.values[late].mean():.4g}, "
          f"central flow's prediction {c.extras['predicted_loss'][late].mean():.4g} (its own "
          f"loss {c.values[late].mean():.4g}); sharpness at GD's two-step averages / (2/eta) "
          f"{np.linalg.eigvalsh(net.hess(mid[late[1:]]))[:, -1].mean() * step / 2:.3f}")
    axes[0].plot(tm, np.linalg.eigvalsh(net.hess(mid))[:, -1], color=color, lw=0.8,
                 label=f"GD two-step average, eta = {step}")
    axes[0].plot(c.ts, c.extras["sharpness"], "--", color=color, lw=2,
                 label=f"central flow, eta = {step}")
    axes[0].axhline(2 / step, color=color, ls=":", lw=1)
    axes[1].plot(run.xs[:, 0], run.xs[:, 2], ".", color=color, ms=2, alpha=0.5)
    axes[1].plot(c.xs[:, 0], c.xs[:, 2], "-", color=color, lw=2,
                 label=f"GD iterates and central flow, eta = {step}")
    window = 8
    smooth = np.convolve(run.values, np.ones(window) / window, mode="valid")
    axes[2].plot(run.ts[window - 1:], smooth, color=color, lw=1,
                 label=f"GD loss, {window}-step mean, eta = {step}")
    axes[2].plot(c.ts, c.extras["predicted_loss"], "--", color=color, lw=2,
                 label="central flow: predicted average")
axes[0].plot(gf_net.ts, sharp_gf_net, "k-", lw=2.5, alpha=0.6, label="gradient flow")
axes[0].set(xlabel="t = k eta", ylabel="lambda_max(H)", ylim=(0, 14),
            title="tanh network: sharpening, then the edge 2/eta (dotted)")
axes[1].plot(gf_net.xs[:, 0], gf_net.xs[:, 2], "k-", lw=2.5, alpha=0.6, label="gradient flow")
axes[1].set(xlabel="w1", ylabel="v1", title="GD oscillates about the central flow")
axes[2].plot(gf_net.ts, gf_net.values, "k-", lw=2.5, alpha=0.6, label="gradient flow")
axes[2].set(xlabel="t", ylabel="L", ylim=(0.3, 1.0), xlim=(40, T_net),
            title="the time-averaged loss, predicted")
for ax in axes:
    ax.legend(fontsize=7)
save(fig, out, "edge_of_stability_tanh.png")
