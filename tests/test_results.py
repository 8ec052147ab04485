"""One result family: Trajectory and BatchTrajectory share fields and methods; every report
has summary() and to_frame()."""
import numpy as np
import pandas
import pytest

import flowsim as fs
from flowsim import Status, losses

from .test_pickle import _results

FIELDS = ("ts", "xs", "values", "grad_norms", "status", "message", "method", "label", "nfev",
          "ngev", "nhev", "extras", "dense", "variables")


def test_trajectory_and_batch_have_the_same_fields_and_methods():
    single = set(fs.Trajectory.__dataclass_fields__)
    batch = set(fs.BatchTrajectory.__dataclass_fields__)
    assert single == set(FIELDS) and batch == single | {"t_stop"}   # each start's end time
    for name in ("at", "summary", "to_frame", "x_final", "t_final", "n_points", "counts"):
        assert hasattr(fs.Trajectory, name) and hasattr(fs.BatchTrajectory, name)


def test_batch_flow_at_matches_each_start_and_the_single_flow():
    him = losses.himmelblau()
    starts = np.array([[0.0, 0.0], [1.0, -1.0], [-2.0, 2.0]])
    batch = fs.gradient_flow(him, starts, 0.5, method="DOP853", rtol=1e-10, atol=1e-12)
    t = np.array([0.1, 0.25, 0.5])
    assert batch.at(0.3).shape == (3, 2) and batch.at(t).shape == (3, 3, 2)
    for i, x0 in enumerate(starts):
        one = fs.gradient_flow(him, x0, 0.5, method="DOP853", rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(batch.at(t)[i], one.at(t), atol=1e-8)
        np.testing.assert_allclose(batch.at(0.3)[i], batch.trajectory(i).at(0.3), rtol=1e-14)
    assert batch.method == "gradient_flow" and batch.label.startswith("gradient flow (DOP853)")
    assert len(batch.status) == len(batch.message) == 3


def test_batch_gd_counts_extras_and_table_per_start():
    starts = np.array([[1.0, 1.0], [0.5, -2.0]])
    batch = fs.gradient_descent("x**2 + 3*y**2", starts, 0.1, 20)
    one = fs.gradient_descent("x**2 + 3*y**2", starts[1], 0.1, 20)
    second = batch.trajectory(1)
    np.testing.assert_allclose(second.xs, one.xs, rtol=1e-14)
    assert second.ngev == one.ngev == 20  # its share of the batch's counts is its own work
    np.testing.assert_array_equal(second.extras["step_sizes"], one.extras["step_sizes"])
    np.testing.assert_array_equal(batch.at(batch.ts[[0, 5]]), batch.xs[:, [0, 5]])
    with pytest.raises(ValueError, match="own times"):
        batch.at(0.05)
    frame = batch.to_frame()
    assert list(frame.index) == [0, 1] and (frame["status"] == "reached_end").all()
    np.testing.assert_allclose(frame[["x_x", "x_y"]].to_numpy(), batch.x_final)
    np.testing.assert_allclose(frame[["x0_x", "x0_y"]].to_numpy(), starts)
    assert frame.attrs["variables"] == ["x", "y"] and frame.attrs["method"] == "gradient_descent"
    assert "2 reached_end" in batch.summary()


def test_a_batch_reports_how_each_start_ended():
    starts = np.array([[0.5], [3.0]])  # eta = 0.9 on 0.5 x^4: the second start diverges
    batch = fs.gradient_descent("x**4/2", starts, 0.9, 60, max_norm=1e3)
    assert batch.status == (Status.REACHED_END, Status.DIVERGED)
    assert "ran all" in batch.message[0] and "max_norm" in batch.message[1]
    assert "1 diverged" in batch.summary()


def test_every_report_has_a_summary_and_a_frame():
    for name, result in _results().items():
        if name == "facts":
            continue
        assert isinstance(result.summary(), str) and result.summary(), name
        frame = result.to_frame()
        assert isinstance(frame, pandas.DataFrame) and len(frame) >= 1, name
    order = fs.convergence_order("x**2/2 + y**4/4", [1.0, 1.0], "gd", levels=4)
    frame = order.to_frame()
    np.testing.assert_array_equal(frame["errors"], order.errors)
    assert frame.attrs["scheme"] == "gradient_descent" and frame.attrs["order"] == order.order
    cp = fs.classify("x**2 - y**2", [0.0, 0.0])
    row = cp.to_frame()
    assert row.loc[0, "kind"] == "saddle" and row.loc[0, "morse_index"] == 1
