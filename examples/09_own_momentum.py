"""A momentum ODE of your own: the Wibisono-Wilson-Jordan family, registered in one call
=====================================================================================

``x'' + (p + 1)/t x' + C p^2 t^(p-2) grad L(x) = 0`` converges like ``L - L* = O(1/t^p)``
on convex losses (Wibisono, Wilson and Jordan, 2016). Divided by ``C p^2 t^(p-2)`` it is
``m(t) x'' + c(t) x' + grad L = 0``: one ``flowsim.SecondOrderField`` of its friction and
mass, written once, that runs on one start, batches and JAX. At p = 2, C = 1/4 it is
Nesterov's ODE (checked against the built-in one).
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import save, setup
import flowsim as fs
from flowsim import losses


def wwj(t, options, xp):
    """c(t) and m(t) of the family; t > 0 (the flow starts at t0 = 1)."""
    p, C = options["p"], options["C"]
    t = xp.where(t > 0, t, 1.0)
    return (p + 1) * t ** (1 - p) / (C * p * p), t ** (2 - p) / (C * p * p)


args, out = setup(__doc__, "09_own_momentum")
flow = fs.register("wwj_flow", fs.SecondOrderField(wwj, options={"p": 2.0, "C": 0.25}))
loss = losses.quadratic(np.diag([1.0, 10.0]))
x0 = np.array([1.0, 1.0])
t_end = 30.0 if args.quick else 100.0
t = np.geomspace(1.0, t_end, 200)
nesterov = fs.nesterov_flow(loss, x0, t_end, t0=1.0, t_eval=t, rtol=1e-10, atol=1e-12)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for p, style in ((2.0, "-"), (3.0, "--"), (4.0, "-.")):
    # DOP853: the flow oscillates ever faster (frequency ~ p t^(p/2 - 1) sqrt(C lambda)); LSODA
    # at this tolerance spends its 100,000 steps by t = 32 for p = 4, DOP853 needs 70,000
    run = flow.function(loss, x0, t_end, p=p, C=0.25, t0=1.0, t_eval=t, method="DOP853",
                        rtol=1e-10, atol=1e-12)
    axes[0].loglog(run.ts, run.values, style, label=f"p = {p:g} ({run.status.value})")
    axes[0].loglog(t, run.values[0] * t ** -p, ":", color=axes[0].lines[-1].get_color(),
                   lw=0.8)
    if p == 2.0:
        gap = np.abs(run.xs - nesterov.xs).max()
        print(f"p = 2, C = 1/4 against the built-in Nesterov ODE: max |x - x_N| = {gap:.2e}")
    tail = run.values[-1] * run.ts[-1] ** p
    print(f"p = {p:g}: L(x(t)) t^p at t = {t_end:g} is {tail:.3g} (bounded: O(1/t^p))")
axes[0].set(xlabel="t", ylabel="L(x(t))", title="WWJ flows, dotted: the 1/t^p envelopes")
axes[0].legend(fontsize=8)
# many starts at once, on the per-start engines (each its own steps)
starts = np.random.default_rng(0).uniform(-2, 2, size=(50 if args.quick else 400, 2))
batch = flow.function(loss, starts, 20.0, p=3.0, C=0.25, t0=1.0)
axes[1].semilogy(batch.ts, batch.values.T, lw=0.5, alpha=0.5)
axes[1].set(xlabel="t", ylabel="L(x(t))", title=f"p = 3 from {len(starts)} starts "
            f"({batch.label.split(', batched on ')[-1]})")
print(f"{len(starts)} starts: {sum(s.value == 'reached_end' for s in batch.status)} reached "
      f"t = 20; largest L there {batch.values[:, -1].max():.3g}")
save(fig, out, "own_momentum.png")
fs.methods.unregister("wwj_flow")
