"""The one stopping rule of every engine and the one check of measured data
(napari_ptychotomo.engine_guards), on their own."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_ptychotomo.engine import EngineError
from napari_ptychotomo.engine_guards import (
    LOSS_GROWTH_LIMIT,
    MAX_ANGLE_CHANGE_DEG,
    MAX_THICKNESS_FACTOR,
    MAX_TILT_CHANGE_MRAD,
    MIN_MEAN_COUNTS,
    Divergence,
    angle_problem,
    checked_counts,
    shift_problem,
    thickness_problem,
    tilt_problem,
    warn_negative,
)


def _guard(partial="last good"):
    guard = Divergence("test engine", "Lower the steps.")
    guard.last_good = lambda: partial
    return guard


def test_loss_that_grows_past_the_limit_over_its_best_stops_with_the_partial():
    guard = _guard()
    guard.check("step 1", 0.5)
    guard.check("step 2", 0.01)
    guard.check("step 3", 0.9 * LOSS_GROWTH_LIMIT * 0.01)  # large, but within the limit
    with pytest.raises(EngineError, match=r"grew to 1\.1, more than 100 × its best 0\.01 at step 4") as info:
        guard.check("step 4", 1.1)
    assert info.value.partial == "last good" and "Lower the steps" in str(info.value)


def test_a_key_without_a_best_compares_with_the_best_of_all_keys():
    guard = _guard()
    guard.check("tilt 0", 1e-3, key=0)
    guard.check("tilt 1", 5e-2, key=1)  # 50 × tilt 0's best: different tilts differ
    with pytest.raises(EngineError, match="tilt 2"):
        guard.check("tilt 2", 1.0, key=2)


def test_non_finite_loss_and_tiny_losses():
    guard = _guard()
    guard.check("start", 0.0)  # a perfect start: the floor keeps rounding from tripping
    guard.check("next", 1e-6)
    with pytest.raises(EngineError, match="the loss is nan"):
        guard.check("then", float("nan"))


def test_geometric_ranges_name_the_quantity_and_its_limit():
    assert tilt_problem([3.0, -2.0], [0.0, 0.0]) is None
    assert f"more than the {MAX_TILT_CHANGE_MRAD:g} mrad" in tilt_problem([60.0, 0.0], [0.0, 0.0])
    assert "tilt_mrad" in tilt_problem([[0.0, np.inf]], [0.0, 0.0])
    assert thickness_problem(2.0, 4.0) is None
    assert "slice_thickness reached 0 Å" in thickness_problem(0.0, 4.0)
    assert thickness_problem(MAX_THICKNESS_FACTOR * 4.0 * 1.01, 4.0) is not None
    assert angle_problem([[0, 31, 0]], [[0, 30, 0]]) is None
    assert f"more than {MAX_ANGLE_CHANGE_DEG:g}°" in angle_problem([[0, 60, 0]], [[0, 30, 0]])
    assert shift_problem([[1.0, -9.0]], (10.0, 10.0), "Å") is None
    assert "beyond the field of view (10 × 12 Å)" in shift_problem([[1.0, -13.0]], (10.0, 12.0), "Å")


def test_range_problems_stop_the_run_without_recording_the_loss():
    guard = _guard()
    with pytest.raises(EngineError, match="tilt_mrad moved 99 mrad.*at iteration 3"):
        guard.check("iteration 3", 0.1, problems=(None, tilt_problem([99.0, 0.0], [0.0, 0.0])))
    assert guard.best == {}


def test_torch_overflow_becomes_an_engine_error_with_the_partial_and_other_errors_pass():
    guard = _guard(partial=("alignment", "volume"))

    def overflowing():
        yield 1
        torch.zeros(1).add_(torch.ones(1), alpha=1e300)

    steps = guard.run(overflowing())
    assert next(steps) == 1
    with pytest.raises(EngineError, match="overflowed") as info:
        next(steps)
    assert info.value.partial == ("alignment", "volume")

    def failing():
        raise RuntimeError("something else")
        yield

    with pytest.raises(RuntimeError, match="something else"):
        next(_guard().run(failing()))


def test_optimizer_step_overflow_becomes_an_engine_error():
    value = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.Adam([value], lr=1e38)
    value.sum().backward()
    with pytest.raises(EngineError, match="overflowed"):
        _guard().step(optimizer)


def test_measured_data_without_counts_are_refused_with_the_minimum():
    with pytest.raises(ValueError, match=rf"intensities hold no counts.*36 of 36.*{MIN_MEAN_COUNTS:g}"):
        checked_counts(torch.zeros(36, 8, 8), "intensities")
    with pytest.raises(ValueError, match="no counts"):
        checked_counts(torch.full((4, 8, 8), 1e-9), "intensities")
    with pytest.raises(ValueError, match="mean value of an image pixel"):
        checked_counts(torch.zeros(2, 8, 8), "images", per="image pixel")


def test_non_finite_values_are_refused_naming_the_pattern():
    values = torch.ones(10, 8, 8)
    values[7, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"intensities: pattern\(s\) \[7\] hold NaN"):
        checked_counts(values, "intensities")


def test_negative_values_are_clamped_and_counted_once():
    values = torch.ones(10, 8, 8)
    values[2, :2, :2] = -0.5
    clamped, negative = checked_counts(values, "intensities")
    assert negative == 4 and float(clamped.min()) == 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_negative(negative, values.numel(), "intensities")
        warn_negative(0, values.numel(), "intensities")
    assert len(caught) == 1 and "intensities: 4 of 640 values are negative" in str(caught[0].message)
