"""Local minima and basins of attraction of the gradient flow (double well, Himmelblau).

Every start flows to one minimum; the map colours each start by its destination, computed
with one batched flow over the whole grid.
"""
import matplotlib.pyplot as plt

from _common import save, setup
from flowsim import losses, plot

args, out = setup(__doc__, "04_basins")
resolution = 25 if args.quick else 80
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
for ax, loss, box in ((axes[0], losses.double_well(), [(-2, 2), (-2, 2)]),
                      (axes[1], losses.himmelblau(), None)):
    plot.basins(loss, ax=ax, bounds=box, resolution=resolution, t_end=10.0)
    labels = ax.images[0].get_array()
    shares = [float((labels == i).mean()) for i in range(int(labels.max()) + 1)]
    print(f"{loss.facts.name}: share of the grid flowing to each minimum "
          f"{[round(s, 3) for s in shares]}")
    ax.set_title(f"basins: {loss.facts.name}")
save(fig, out, "basins.png")
