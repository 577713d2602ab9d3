"""End-to-end and plane-wave engines on hostile input and faults: data without counts,
negative counts, blow-ups of the loss and of learned geometry, torch overflow.

A 20³-voxel volume, two tilts, a 3×3 scan on a 12-px detector, 2×2 defocus images;
each case runs in well under a second.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

from napari_ptychotomo.data import Calibration, ScanData, TiltSeries
from napari_ptychotomo.engine import EngineError
from napari_ptychotomo.engine_guards import LOSS_GROWTH_LIMIT, MAX_ANGLE_CHANGE_DEG, MIN_MEAN_COUNTS
from napari_ptychotomo.joint import JointParams, JointResult, reconstruct_joint, reconstruct_plane_wave
from napari_ptychotomo.joint.params import LearningRate

from .conftest import ENERGY, detector_sampling_mrad, gaussian_atoms, hrtem_series, particle_atoms, stem_series

VOXEL = 0.5
SHAPE = (20, 20, 20)


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(3)
    centre = (np.array(SHAPE) - 1) / 2 * VOXEL
    return gaussian_atoms(SHAPE, VOXEL, particle_atoms(rng, 3, 1.5, centre), 250.0)


@pytest.fixture(scope="module")
def stem(volume):
    return stem_series(volume, VOXEL, [-30.0, 30.0], window=12, scan=(3, 3), step=1.0)


@pytest.fixture(scope="module")
def hrtem(volume):
    return hrtem_series(volume, VOXEL, [-30.0, 30.0], [-50.0, 50.0])


def _params(iterations=3, batch_size=9, **kw):
    return JointParams(iterations=iterations, num_slices=4, batch_size=batch_size, volume_shape=SHAPE, **kw)


def test_a_scan_without_counts_is_refused_naming_the_scan(stem):
    series = copy.deepcopy(stem)
    series.scans[1].intensities = np.zeros_like(series.scans[1].intensities)
    with pytest.raises(ValueError, match=r"scan 1 \(tilt 30°\): intensities hold no counts") as info:
        reconstruct_joint(series, params=_params(), device="cpu")
    assert f"{MIN_MEAN_COUNTS:g}" in str(info.value)


def test_negative_counts_the_opening_check_does_not_sample_warn_once_for_the_whole_series(volume):
    series = stem_series(volume, VOXEL, [-30.0, 30.0], window=12, scan=(9, 9), step=0.25)
    sampled = set(np.unique(np.linspace(0, 80, 64).astype(int)).tolist())
    bad = next(k for k in range(81) if k not in sampled)
    for scan in series.scans:
        scan.intensities = np.array(scan.intensities)
        scan.intensities.reshape(81, 12, 12)[bad, :2, :3] = -1e-6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = reconstruct_joint(series, params=_params(iterations=1, batch_size=27), device="cpu")
    negative = [str(w.message) for w in caught if "negative" in str(w.message)]
    assert len(negative) == 1 and f"12 of {2 * 81 * 144}" in negative[0]
    assert np.all(np.isfinite(result.volume.data))


def test_a_loss_that_grows_past_the_limit_stops_with_a_joint_result(stem):
    params = _params()
    params.rates["volume"] = LearningRate(1e4, 0)
    with pytest.raises(EngineError, match=rf"end-to-end.*loss grew to .* more than {LOSS_GROWTH_LIMIT:g} ×") as info:
        reconstruct_joint(stem, params=params, device="cpu")
    partial = info.value.partial
    assert isinstance(partial, JointResult) and np.all(np.isfinite(partial.volume.data))


def test_euler_angles_that_run_away_stop_with_the_angles_of_the_last_good_state(stem):
    params = _params(learn_euler=True)
    params.rates["euler"] = LearningRate(100.0, 0)
    limit = rf"euler_deg\[\d\] moved .* more than {MAX_ANGLE_CHANGE_DEG:g}°"
    with pytest.raises(EngineError, match=limit) as info:
        reconstruct_joint(stem, params=params, device="cpu")
    partial = info.value.partial
    assert isinstance(partial, JointResult)
    change = np.abs(partial.alignment.euler_deg[:, 1] - np.array([-30.0, 30.0]))
    assert change.max() <= MAX_ANGLE_CHANGE_DEG


@pytest.mark.parametrize("name", ["volume", "probe"])
def test_an_overflowing_step_becomes_an_engine_error_with_a_joint_result(stem, name):
    params = _params(**({f"learn_{name}": True} if name != "volume" else {}))
    params.rates[name] = LearningRate(1e38, 0)
    with pytest.raises(EngineError, match="overflowed") as info:
        reconstruct_joint(stem, params=params, device="cpu")
    assert isinstance(info.value.partial, JointResult)


def test_a_detector_sampling_given_in_rad_is_refused_naming_the_scan(stem):
    series = copy.deepcopy(stem)
    cal = series.scans[1].calibration
    series.scans[1].calibration = Calibration(ENERGY, cal.semiangle_mrad, cal.detector_sampling_mrad * 1e-3, 1.0)
    with pytest.raises(ValueError, match=r"scan 1 \(tilt 30°\): the bright-field disc .*\(mrad per pixel, not rad\)"):
        reconstruct_joint(series, params=_params(), device="cpu")


def test_learning_positions_of_a_single_position_scan_is_refused():
    cal = Calibration(ENERGY, 12.0, detector_sampling_mrad(12, VOXEL), scan_step=1.0)
    scans = [
        ScanData(np.full((1, 1, 12, 12), 1 / 144, np.float32), cal, positions=np.zeros((1, 2)), tilt_deg=a)
        for a in (-30.0, 30.0)
    ]
    series = TiltSeries(scans, [-30.0, 30.0])
    with pytest.raises(ValueError, match=r"scan\(s\) \[0, 1\] have a single probe position.*learn_positions"):
        reconstruct_joint(series, params=_params(learn_positions=True), device="cpu")


def test_plane_wave_images_without_counts_are_refused_naming_the_tilt(hrtem):
    series = copy.deepcopy(hrtem)
    series.scans[0].images = np.zeros_like(series.scans[0].images)
    with pytest.raises(ValueError, match=r"tilt 0 \(-30°\): images hold no counts.*image pixel"):
        reconstruct_plane_wave(series, params=JointParams(iterations=2, num_slices=4), device="cpu")


def test_plane_wave_blow_up_stops_with_a_joint_result(hrtem):
    params = JointParams(iterations=4, num_slices=4, plane_wave_step=1e5)
    with pytest.raises(EngineError, match="plane-wave tomography diverged: the loss grew") as info:
        reconstruct_plane_wave(hrtem, params=params, device="cpu")
    partial = info.value.partial
    assert isinstance(partial, JointResult) and np.all(np.isfinite(partial.volume.data))


def test_plane_wave_shifts_beyond_the_field_of_view_stop_the_run(hrtem):
    params = JointParams(iterations=4, num_slices=4, learn_shifts=True)
    params.rates["shifts"] = LearningRate(1e3, 0)
    with pytest.raises(EngineError, match=r"shifts reached .* Å, beyond the field of view \(10 × 10 Å\)") as info:
        reconstruct_plane_wave(hrtem, params=params, device="cpu")
    partial = info.value.partial
    assert isinstance(partial, JointResult) and np.abs(partial.alignment.shifts).max() <= 10.0
