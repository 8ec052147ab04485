"""Local minima and basins of attraction
=====================================

On the double well and Himmelblau: where gradient descent and proximal point send a start
elsewhere than the flow does. Every start flows to one minimum; the first map colours each
start by its destination, computed with one batched flow over the whole grid. The second runs
flowsim's basin-map study (the flow, GD and proximal point at one step size, every grid point)
and prints the share of starts where each scheme disagrees with the flow.
"""
import matplotlib.pyplot as plt

from _common import save, setup
import flowsim as fs
from flowsim import losses, plot
from flowsim.study.recipes import basin_map, disagreement

args, out = setup(__doc__, "04_basins")
resolution = 40 if args.quick else 200
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
for ax, loss, box in ((axes[0], losses.double_well(), [(-2, 2), (-2, 2)]),
                      (axes[1], losses.himmelblau(), None)):
    plot.basins(loss, ax=ax, bounds=box, resolution=resolution, t_end=10.0)
    labels = ax.images[0].get_array()
    shares = [float((labels == i).mean()) for i in range(int(labels.max()) + 1)]
    print(f"{loss.facts.name}: share of the grid flowing to each minimum "
          f"{[round(s, 3) for s in shares]}")
    ax.set_title(f"basins: {loss.facts.name}")
fig.tight_layout()
save(fig, out, "basins.png")

# at eta = 0.02 GD is stable at two of Himmelblau's minima (2/lambda_max = 0.0243, 0.0248)
# and unstable at the other two (0.0149, 0.0190): their basins vanish for GD
eta, him = 0.02, losses.himmelblau()
for point in him.facts.minimizers:
    limit = fs.stability(him, point).max_stable_step
    print(f"minimum {point.round(3).tolist()}: GD stable for eta < {limit:.4f}"
          f"{'' if eta < limit else '  (not at eta = 0.02)'}")
study = basin_map(him, eta=eta, resolution=30 if args.quick else 150, t_end=10.0,
                  progress=False)
for method, share in disagreement(study).items():
    print(f"himmelblau, eta = {eta}: {method} ends at another minimum than the flow from "
          f"{100 * share:.2f}% of the grid")
save(plot.basin_maps(study), out, "basin_map.png")
