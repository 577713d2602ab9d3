"""Multislice ptychography on hostile input and faults: data without counts, non-finite and
negative counts the opening check does not sample, blow-ups and overflow, a single pattern.

Tiny scans (6×6 or 9×9 positions, 4 planes, no noise) and 1–8 iterations, seconds each.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from msp_data import make_scan

from napari_ptychotomo.data import Calibration, MSPResult, ScanData
from napari_ptychotomo.engine import EngineError
from napari_ptychotomo.engine_guards import MAX_TILT_CHANGE_MRAD, MIN_MEAN_COUNTS
from napari_ptychotomo.ptycho import LearningRate, MSPParams, estimate_defocus, reconstruct_msp


@pytest.fixture(scope="module")
def small_scan():
    return make_scan(scan_shape=(6, 6), planes=4, dose=None)


def _params(scan, **overrides):
    return MSPParams.from_calibration(
        scan.calibration, thickness=8.0, num_slices=2, iterations=overrides.pop("iterations", 3), **overrides
    )


def _with_intensities(scan, intensities):
    changed = copy.copy(scan)
    changed.intensities = intensities
    return changed


def _unsampled_pattern(n: int) -> int:
    """A pattern that ScanData.validate's sample of 64 does not read."""
    sample = set(np.unique(np.linspace(0, n - 1, min(n, 64)).astype(int)).tolist())
    return next(k for k in range(n) if k not in sample)


@pytest.mark.parametrize("defocus", [None, 50.0])
def test_all_zero_intensities_are_refused_as_having_no_counts_before_any_work(small_scan, defocus):
    zero = _with_intensities(small_scan, np.zeros_like(small_scan.intensities))
    params = _params(small_scan, defocus=defocus)
    with pytest.raises(ValueError, match="intensities hold no counts") as info:
        reconstruct_msp(zero, params, device="cpu")
    message = str(info.value)
    assert f"{MIN_MEAN_COUNTS:g}" in message and "36 of 36" in message
    assert "bright-field" not in message and "diverged" not in message


def test_nan_in_a_pattern_the_opening_check_does_not_sample_is_refused_naming_it():
    scan = make_scan(scan_shape=(9, 9), planes=4, dose=None)
    bad = _unsampled_pattern(scan.num_positions)
    values = np.array(scan.intensities)
    values.reshape(-1, *scan.detector_shape)[bad, 4, 4] = np.nan
    with pytest.raises(ValueError, match=rf"intensities.*\[{bad}\].*NaN"):
        reconstruct_msp(_with_intensities(scan, values), _params(scan, iterations=1), device="cpu")


def test_negative_counts_warn_once_with_their_number_and_are_clamped():
    scan = make_scan(scan_shape=(9, 9), planes=4, dose=None)
    bad = _unsampled_pattern(scan.num_positions)
    values = np.array(scan.intensities)
    values.reshape(-1, *scan.detector_shape)[bad, :3, :5] = -1e-4  # 15 pixels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = reconstruct_msp(_with_intensities(scan, values), _params(scan, iterations=1), device="cpu")
    negative = [str(w.message) for w in caught if "negative" in str(w.message)]
    assert len(negative) == 1 and "intensities: 15 of" in negative[0]
    assert np.all(np.isfinite(result.object))


def test_a_tilt_that_runs_away_stops_with_the_last_good_msp_result(small_scan):
    params = _params(small_scan, iterations=8, rates={"tilt": LearningRate(100.0, 0)})
    with pytest.raises(EngineError, match=rf"tilt_mrad moved .* more than the {MAX_TILT_CHANGE_MRAD:g} mrad") as info:
        reconstruct_msp(small_scan, params, device="cpu")
    partial = info.value.partial
    assert isinstance(partial, MSPResult)
    assert np.max(np.abs(partial.tilt_mrad)) <= MAX_TILT_CHANGE_MRAD
    assert np.all(np.isfinite(partial.object))


def test_an_overflowing_step_becomes_an_engine_error_with_the_msp_result(small_scan):
    params = _params(small_scan, rates={"tilt": LearningRate(1e38, 0)})
    with pytest.raises(EngineError, match="overflowed") as info:
        reconstruct_msp(small_scan, params, device="cpu")
    assert isinstance(info.value.partial, MSPResult)


def test_a_single_pattern_is_not_asked_to_learn_tilt_thickness_or_positions():
    one = make_scan(scan_shape=(1, 1), planes=4, dose=None)
    params = _params(one, learn_positions=True)
    with pytest.raises(ValueError, match="single pattern.*learn_tilt, learn_thickness, learn_positions"):
        reconstruct_msp(one, params, device="cpu")
    fixed = _params(one, iterations=1, learn_tilt=False, learn_thickness=False)
    assert isinstance(reconstruct_msp(one, fixed, device="cpu"), MSPResult)


def test_a_bright_field_disc_far_beyond_the_detector_is_refused_naming_the_calibration():
    # detector_sampling_mrad given in rad: the 25 mrad disc would be 25 000 px in radius on
    # a 16-px detector (MSP ran and returned a pixel size of 1230 Å)
    intensities = np.random.default_rng(0).random((6, 6, 16, 16)).astype(np.float32) + 1
    scan = ScanData(intensities, Calibration(300e3, 25.0, 0.001, scan_step=0.4))
    message = (
        r"semiangle_mrad = 25\.0 mrad at detector_sampling_mrad = 0\.001 mrad per pixel is 2\.5e\+04 px "
        r"in radius, more than 4 × the 8-px half-width of the 16×16 detector"
    )
    for defocus in (None, "auto"):
        params = MSPParams.from_calibration(scan.calibration, iterations=1, defocus=defocus)
        with pytest.raises(ValueError, match=message):
            reconstruct_msp(scan, params, device="cpu")
    with pytest.raises(ValueError, match=message):
        estimate_defocus(scan, device="cpu")


def test_a_negative_thickness_is_named_as_given_not_as_the_slice_thickness(small_scan):
    with pytest.raises(ValueError, match=r"^thickness = -100; expected a positive number in Å$"):
        MSPParams.from_calibration(small_scan.calibration, thickness=-100)
