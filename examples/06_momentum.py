"""Heavy ball against its overdamped limit; Nesterov's ODE against its iterates
=============================================================================

``m x'' + x' + grad L = 0`` tends to the gradient flow as ``m -> 0``; NAG with step s follows
``x'' + (3/t) x' + grad L = 0`` at times ``t_k = k sqrt(s)``.
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import save, setup
import flowsim as fs
from flowsim import losses

args, out = setup(__doc__, "06_momentum")
loss = losses.quadratic(np.diag([1.0, 10.0]))
x0 = np.array([1.0, 1.0])
t = np.linspace(0, 5, 101)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
flow = np.array([loss.facts.flow_solution(s, x0) for s in t])
for m in (1.0, 0.1, 0.01):
    hb = fs.heavy_ball_flow(loss, x0, 5.0, mass=m, friction=1.0, t_eval=t)
    gap = np.abs(hb.xs - flow).max()
    print(f"heavy ball m = {m:5g}: max distance to the gradient flow on [0, 5] = {gap:.4g}")
    axes[0].plot(hb.ts, hb.xs[:, 1], label=f"heavy ball m={m}")
axes[0].plot(t, flow[:, 1], "k--", label="gradient flow")
axes[0].set(xlabel="t", ylabel="x2", title="heavy ball -> gradient flow as m -> 0")
axes[0].legend(fontsize=8)
s = 1e-2 if args.quick else 2.5e-3
c = fs.compare(loss, x0, s, int(8 / np.sqrt(s)), schemes=("nesterov",))
ode = c.flows["nesterov_flow"]
nag = c.schemes["nesterov"]
print(f"NAG (s = {s}) against Nesterov's ODE: max deviation {np.nanmax(c.deviation['nesterov']):.4g}")
axes[1].semilogy(ode.ts, ode.values, "k-", label="Nesterov ODE")
axes[1].semilogy(nag.ts, nag.values, ".", ms=3, label=f"NAG iterates at k sqrt(s), s={s}")
axes[1].semilogy(ode.ts[1:], 2 * np.sum(x0 ** 2) / ode.ts[1:] ** 2, ":", label="2|x0|^2/t^2")
axes[1].set(xlabel="t", ylabel="L", title="Nesterov: ODE and iterates", ylim=(1e-8, 10))
axes[1].legend(fontsize=8)
save(fig, out, "momentum.png")
