"""Lyapunov decay along the flow, and where gradient descent breaks it
===================================================================

Along the flow ``V = L - L*`` falls at exactly ``-|grad L|^2``; gradient descent keeps V
falling while eta is below ``2/lambda_max`` and loses monotone decrease above.
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import save, setup
import flowsim as fs
from flowsim import losses

args, out = setup(__doc__, "07_lyapunov")
loss = losses.himmelblau()
x0 = [0.0, 0.0]
flow = fs.gradient_flow(loss, x0, 1.0)
report = fs.lyapunov(loss, flow)
print(report.summary())
lam = fs.lipschitz_estimate(loss, (-5, 5), n_samples=512 if args.quick else 4096).value
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
axes[0].semilogy(report.rate_ts, -report.predicted, "k-", lw=3, alpha=0.4,
                 label="-|grad L|^2 (predicted)")
axes[0].semilogy(report.rate_ts, -report.dVdt, "C1--", label="-dV/dt from the dense path")
axes[0].set(xlabel="t", ylabel="-dV/dt", title="the flow's Lyapunov rate")
axes[0].legend(fontsize=8)
steps = 40 if args.quick else 120
for eta in (0.005, 0.02, 0.03):
    gd = fs.gradient_descent(loss, x0, eta, steps)
    r = fs.lyapunov(loss, gd, lipschitz=lam)
    print(f"GD eta = {eta}: V rose at {len(r.rises)} of {len(r.V) - 1} steps; "
          f"status {gd.status.value}")
    axes[1].semilogy(np.arange(len(r.V)), np.maximum(r.V, 1e-16), ".-", ms=3,
                     label=f"GD eta={eta}")
axes[1].set(xlabel="step k", ylabel="V = L - L*", title="GD: monotone only for small steps")
axes[1].legend(fontsize=8)
save(fig, out, "lyapunov.png")
