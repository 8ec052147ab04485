"""Figures checked by what they draw: rendered to pixels (legends hidden), every method's
colour is found in every panel that plots it, also where the paths coincide (gradient descent
and proximal point at a small step, the README's first picture)."""
import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb

import flowsim as fs
from flowsim import losses, methods

matplotlib.use("Agg")


def _panel_pixels(fig, ax):
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float) / 255
    box = ax.get_window_extent()
    h = image.shape[0]
    x0, x1 = int(box.x0) + 2, int(box.x1) - 2
    y0, y1 = h - int(box.y1) + 2, h - int(box.y0) - 2
    return image[y0:y1, x0:x1]


def _shows(pixels, color, tol=0.12, least=6):
    rgb = np.array(to_rgb(color))
    return int(np.sum(np.all(np.abs(pixels - rgb) <= tol, axis=-1))) >= least


@pytest.mark.parametrize("schemes", [("gd", "pp"), ("gd", "pp", "heun"), ("hb", "nag")])
def test_every_method_shows_in_every_panel_of_the_comparison_figure(schemes):
    loss = losses.rosenbrock(2)
    comp = fs.compare(loss, [-1.2, 1.0], 1e-3, 2000, schemes=schemes)
    fig = fs.plot.comparison_figure(comp, loss)
    for ax in fig.axes:
        if ax.get_legend() is not None:
            ax.get_legend().set_visible(False)
    for ax in fig.axes:
        drawn = {line.get_color() for line in ax.get_lines()}
        pixels = _panel_pixels(fig, ax)
        for name in schemes:
            color = methods.get(name).color
            if to_rgb(color) in {to_rgb(c) for c in drawn}:   # this panel plots the method
                assert _shows(pixels, color), (ax.get_title(), name)


def test_legends_have_unique_entries():
    loss = losses.himmelblau()
    comp = fs.compare(loss, [0.0, 0.0], 0.01, 200, schemes=("gd", "pp", "heun"))
    fig = fs.plot.comparison_figure(comp, loss)
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            labels = [t.get_text() for t in legend.get_texts()]
            assert len(labels) == len(set(labels)), labels


def test_basin_maps_have_axis_labels_and_a_legend_of_minimizers():
    from flowsim.study.recipes import basin_map
    study = basin_map(losses.himmelblau(), 0.01, resolution=12, progress=False)
    fig = fs.plot.basin_maps(study)
    for ax in fig.axes:
        assert ax.get_xlabel() == "x" and ax.get_ylabel() == "y"
    legend = fig.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == len(study.spec["minimizers"]) + 1 and "no known" in labels[-1]
    ax = fs.plot.basins(losses.double_well(), resolution=20)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[-1].startswith("near no minimum") and len(labels) >= 3
