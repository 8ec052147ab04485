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


@pytest.mark.parametrize("schemes", [("gd", "pp"), ("gd", "pp", "heun"), ("hb", "nag"),
                                     ("gd", "pp", "heun", "hb", "nag")])
def test_every_method_shows_in_every_panel_of_the_comparison_figure(schemes):
    loss = losses.rosenbrock(2)
    comp = fs.compare(loss, [-1.2, 1.0], 1e-3, 2000, schemes=schemes)
    fig = fs.plot.comparison_figure(comp, loss)
    for legend in [ax.get_legend() for ax in fig.axes] + list(fig.legends):
        if legend is not None:
            legend.set_visible(False)
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


def _boxes_overlap(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_many_methods_share_one_legend_outside_the_panels():
    loss = losses.rosenbrock(2)
    comp = fs.compare(loss, [-1.0, 1.5], 1e-3, 400, schemes=("gd", "pp", "heun", "hb", "nag"))
    fig = fs.plot.comparison_figure(comp, loss)
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == len(set(labels)) and len(labels) >= 5
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend_box = fig.legends[0].get_window_extent(renderer)
    assert not any(_boxes_overlap(legend_box, ax.get_window_extent(renderer))
                   for ax in fig.axes)
    # gradient descent (t = k eta) and heavy ball (t = k sqrt(eta)) are compared on steps,
    # and the deviation's title names what each scheme is measured against
    assert fig.axes[1].get_xlabel().startswith("step k")
    assert fig.axes[2].get_title().startswith("distance to each scheme's own ODE")
    # every flow sits at its scheme's steps: the gradient flow ends at GD's last step, the
    # heavy-ball ODE at heavy ball's
    ends = {line.get_label(): line.get_xdata()[-1] for line in fig.axes[1].get_lines()}
    assert ends[comp.flows[comp.references["gradient_descent"]].label] == \
        pytest.approx(400, abs=1)
    assert ends[comp.flows[comp.references["heavy_ball"]].label] == pytest.approx(400, abs=1)


def test_a_legend_with_many_entries_goes_below_its_panel():
    loss = losses.himmelblau()
    runs = [fs.gradient_descent(loss, x0, 0.01, 50) for x0 in
            ([0.0, 0.0], [1.0, 1.0], [-1.0, 2.0], [2.0, -2.0], [-3.0, -3.0], [0.5, -0.5])]
    runs = [fs.Trajectory(**{**{f: getattr(r, f) for f in r.__dataclass_fields__},
                             "label": f"start {i}"}) for i, r in enumerate(runs)]
    ax = fs.plot.values(runs)
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = ax.get_legend().get_window_extent(renderer)
    assert box.y1 <= ax.get_window_extent(renderer).y0 + 1


def test_the_spectrum_has_integer_ticks():
    ax = fs.plot.spectrum(losses.rosenbrock(5), np.ones(5))
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
