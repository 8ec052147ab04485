"""Flow vs gradient descent vs proximal point in a narrow valley
=============================================================

On ``L = (x^2 + 25 y^2)/2`` (condition number 25) with eta just below ``2/lambda_max``,
gradient descent zigzags across the valley (factor ``1 - 25 eta < 0``) while proximal point
and the flow glide down it.
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import save, setup
import flowsim as fs
from flowsim import losses, plot

args, out = setup(__doc__, "01_narrow_valley")
loss = losses.quadratic(np.diag([1.0, 25.0]))
eta, steps = 0.075, 15 if args.quick else 40
c = fs.compare(loss, [4.0, 1.0], eta, steps, schemes=("gd", "pp"))
print(c.summary(rows=8))
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
plot.contour(loss, [*c.flows.values(), *c.schemes.values()], ax=axes[0],
             bounds=[(-4.5, 4.5), (-1.5, 1.5)])
axes[0].set_title(f"narrow valley, eta = {eta} (2/lambda_max = {2 / 25:.3f})")
plot.deviation(c, ax=axes[1])
save(fig, out, "narrow_valley.png")
