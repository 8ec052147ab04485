"""Smoke tests that check something real in every picture (Agg backend)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import flowsim as fs  # noqa: E402
from flowsim import losses, plot  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_contour_draws_paths_and_critical_points():
    loss = losses.himmelblau()
    flow = fs.gradient_flow(loss, [0.0, 0.0], 1.0)
    gd = fs.gradient_descent(loss, [0.0, 0.0], 0.01, 50)
    ax = plot.contour(loss, [flow, gd])
    data = [line.get_xydata() for line in ax.lines]
    def drawn(xs):
        return any(d.shape == xs.shape and np.allclose(d, xs) for d in data)

    assert drawn(flow.xs) and drawn(gd.xs)
    markers = [line for line in ax.lines if len(line.get_xdata()) == 1 and line.get_marker() != "s"]
    assert len(markers) == 9  # Himmelblau's nine critical points
    with pytest.raises(ValueError, match="two variables"):
        plot.contour(losses.rosenbrock(3))


def test_values_deviation_and_comparison_figure(tmp_path):
    loss = losses.rosenbrock(2)
    c = fs.compare(loss, [-1.2, 1.0], 1e-3, 100)
    ax = plot.values(c)
    assert ax.get_yscale() == "log" and len(ax.lines) == 3
    assert np.allclose(ax.lines[1].get_ydata(), c.schemes["gradient_descent"].values)
    ax = plot.deviation(c)
    assert np.allclose(ax.lines[0].get_ydata(), c.deviation["gradient_descent"][1:])
    fig = plot.comparison_figure(c, loss)
    assert len(fig.axes) == 3
    fig.savefig(tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_stability_picture_marks_the_limit():
    ax = plot.stability_picture("(x**2 + 4*y**2)/2", [0.0, 0.0])
    assert len(ax.lines) == 2 * 2 + 2
    assert ax.lines[-1].get_xdata()[0] == pytest.approx(0.5)  # 2/lambda_max with lambda_max = 4
    eta = ax.lines[0].get_xdata()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.abs(1 - eta * 1.0))


def test_spectrum_stems_are_the_eigenvalues():
    ax = plot.spectrum(losses.rosenbrock(3), [1.0, 1.0, 1.0])
    stems = ax.containers[0].markerline.get_ydata()
    np.testing.assert_allclose(stems, np.linalg.eigvalsh(losses.rosenbrock(3).hess([1, 1, 1])))


def test_basins_label_each_start_by_its_minimum():
    ax = plot.basins(losses.double_well(), bounds=[(-2, 2), (-1, 1)], resolution=12)
    labels = np.asarray(ax.images[0].get_array())
    assert labels.shape == (12, 12)
    xs = np.linspace(-2, 2, 12)
    # minima sorted by value then position: (-1, 0) is label 0, (1, 0) label 1
    assert np.all(labels[:, xs < 0] == 0) and np.all(labels[:, xs > 0] == 1)


def test_surface_and_animation(tmp_path):
    loss = losses.himmelblau()
    flow = fs.gradient_flow(loss, [0.0, 0.0], 1.0)
    ax = plot.surface(loss, flow, resolution=20)
    assert ax.name == "3d" and len(ax.lines) == 1
    gd = fs.gradient_descent(loss, [0.0, 0.0], 0.01, 30)
    gif = tmp_path / "ball.gif"
    plot.animate(loss, [flow, gd], gif, frames=8)
    from PIL import Image
    with Image.open(gif) as im:
        assert im.n_frames >= 4  # Pillow merges frames where nothing moved
