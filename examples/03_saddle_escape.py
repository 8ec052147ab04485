"""Escaping a saddle: predicted and measured escape times of the flow and of GD
============================================================================

Near a saddle the flow is ``y' = -H y``: the unstable component grows like
``e^{|lambda| t}``, so from distance delta it leaves a ball of radius r at
``t = ln(r/delta)/|lambda|``; GD multiplies it by ``1 + eta |lambda|`` per step.
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import save, setup
import flowsim as fs
from flowsim import PointKind, losses, plot

args, out = setup(__doc__, "03_saddle_escape")
loss = losses.himmelblau()
saddle = next(p.point for p in loss.facts.critical_points if p.kind is PointKind.SADDLE)
deltas = (1e-2, 1e-4) if args.quick else (1e-2, 1e-4, 1e-6, 1e-8)
rows = []
for delta in deltas:
    e = fs.saddle_escape(loss, saddle, delta=delta, radius=0.05, eta=2e-3)
    rows.append((delta, e.predicted_time, e.measured_time))
    print(e.summary())
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
d, pred, meas = map(np.array, zip(*rows))
axes[0].semilogx(d, pred, "k--", label="predicted ln(r/delta)/|lambda|")
axes[0].semilogx(d, meas, "o", label="measured (integrated flow)")
axes[0].set(xlabel="delta", ylabel="escape time", title="leaving a ball of radius 0.05")
axes[0].legend(fontsize=8)
v = e.unstable_directions[:, 0]
paths = [fs.gradient_flow(loss, saddle + s * 1e-3 * v, 1.0) for s in (1, -1)]
plot.contour(loss, paths, ax=axes[1])
axes[1].set_title("the two ways down from the saddle")
save(fig, out, "saddle_escape.png")
