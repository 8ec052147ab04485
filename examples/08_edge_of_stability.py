"""Gradient descent at the edge of stability: sharpness lambda_max(H(x_k)) against 2/eta.

On L = (x y - 1)^2 the minima form the curve x y = 1, with sharpness 2 (x^2 + y^2) there.
Started near a sharp stretch of it, GD with a small step settles nearby; with 2/eta below
the local sharpness it cannot, is thrown out (a catapult) and settles where
lambda_max <= 2/eta.
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import save, setup
import flowsim as fs

args, out = setup(__doc__, "08_edge_of_stability")
loss = fs.Loss("(x*y - 1)**2")
fig, ax = plt.subplots(figsize=(6.5, 4.2))
steps = 40 if args.quick else 60
for i, eta in enumerate((0.02, 0.08, 0.12)):
    traj = fs.gradient_descent(loss, [0.2, 4.0], eta, steps)
    s = fs.sharpness(loss, traj)
    print(f"eta = {eta}: 2/eta = {2 / eta:g}; sharpness at start {s.lambda_max[0]:.4g}, at end "
          f"{s.lambda_max[-1]:.4g}; steps above 2/eta: {int(s.above.sum())}; "
          f"final L = {traj.values[-1]:.3g}")
    ax.semilogy(np.arange(len(s.lambda_max)), s.lambda_max, color=f"C{i}", label=f"eta={eta}")
    ax.axhline(2 / eta, color=f"C{i}", ls=":", lw=1)
ax.set(xlabel="step k", ylabel="lambda_max(H(x_k))", title="sharpness vs 2/eta (dotted)")
ax.legend(fontsize=8)
save(fig, out, "edge_of_stability.png")
