"""Pictures of flows, schemes and diagnostics (matplotlib, imported lazily).

Every function takes ``ax=None`` (a new figure is made when it is None), returns the Axes
(or the Figure, for multi-panel views) and never calls ``plt.show()``. Each method keeps one
colour and marker in every panel, taken from :mod:`flowsim.methods`; flows are thick lines
drawn on top, discrete runs thin lines with thinned markers (:mod:`flowsim.plot.style`).
"""
from .lines import comparison_figure, deviation, spectrum, stability_picture, values
from .maps import animate, basins, contour, surface
from .studies import basin_maps, step_size_picture, time_to_tolerance_picture
from .style import KIND_STYLE

__all__ = ["contour", "values", "deviation", "spectrum", "stability_picture", "basins",
           "surface", "comparison_figure", "animate", "step_size_picture", "basin_maps",
           "time_to_tolerance_picture", "KIND_STYLE"]
