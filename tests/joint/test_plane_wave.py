"""Plane-wave (HRTEM) mode and MSP initialisation: inputs, half data, recovery."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ptychotomo.data import Calibration, DefocusSeries, MSPResult, ScanData, TiltSeries
from napari_ptychotomo.joint import JointParams, reconstruct_joint, reconstruct_plane_wave
from napari_ptychotomo.joint.params import LearningRate

from .conftest import ENERGY, gaussian_atoms, hrtem_series, nrmse, particle_atoms, stem_series

VOXEL = 0.5
SHAPE = (16, 16, 16)


@pytest.fixture(scope="module")
def hrtem_case():
    rng = np.random.default_rng(2)
    centre = (np.array(SHAPE) - 1) / 2 * VOXEL
    volume = gaussian_atoms(SHAPE, VOXEL, particle_atoms(rng, 4, 2.0, centre), 200.0)
    return volume, hrtem_series(volume, VOXEL, [-60.0, -20.0, 20.0, 60.0], [-50.0, 0.0, 50.0])


def test_plane_wave_fista_lowers_the_loss_and_recovers_the_volume(hrtem_case):
    volume, series = hrtem_case
    result = reconstruct_plane_wave(
        series, params=JointParams(iterations=12, num_slices=4, plane_wave_step=4.0), device="cpu"
    )
    assert result.volume.shape == SHAPE and result.probes is None
    assert result.loss_history[-1] < 0.2 * result.loss_history[0]
    assert nrmse(result.volume.data, volume) < 0.8


def test_plane_wave_progress_carries_the_current_volume_as_a_partial_volume(hrtem_case):
    from napari_ptychotomo.data import Volume
    from napari_ptychotomo.joint import plane_wave_steps

    _, series = hrtem_case
    steps = plane_wave_steps(series, params=JointParams(iterations=3, num_slices=4), device="cpu")
    progress = []
    while True:
        try:
            progress.append(next(steps))
        except StopIteration as stop:
            result = stop.value
            break
    volumes = [p.preview["volume"] for p in progress]
    assert all(isinstance(v, Volume) and v.provenance["partial"] for v in volumes)
    assert [v.provenance["iteration"] for v in volumes] == [1, 2, 3]
    assert not np.array_equal(volumes[0].data, volumes[1].data)
    assert np.array_equal(volumes[-1].data, result.volume.data)
    assert all(p.result is None for p in progress)


def test_plane_wave_half_data_splits_the_defocus_images(hrtem_case):
    _, series = hrtem_case
    result = reconstruct_plane_wave(
        series, params=JointParams(iterations=3, num_slices=4, half_data=True), device="cpu"
    )
    a, b = result.volume.halves
    assert not np.allclose(a, b) and np.allclose(result.volume.data, (a + b) / 2)
    assert result.volume.provenance["halves_share"] == ["one start volume (zero)"]


def test_plane_wave_rejects_4d_stem_data_and_mixed_images(hrtem_case):
    volume, series = hrtem_case
    scan = ScanData(np.ones((4, 16, 16), np.float32), Calibration(ENERGY, 20.0, 1.0), positions=np.zeros((4, 2)))
    stem = TiltSeries([scan], [0.0])
    with pytest.raises(ValueError, match="DefocusSeries"):
        reconstruct_plane_wave(stem, device="cpu")
    odd = DefocusSeries(np.ones((3, 12, 12), np.float32), np.zeros(3), VOXEL, ENERGY)
    mixed = TiltSeries([series.scans[0], odd], [0.0, 10.0])
    with pytest.raises(ValueError, match="tilt 1 has images"):
        reconstruct_plane_wave(mixed, device="cpu")
    with pytest.raises(ValueError, match="volume_shape"):
        reconstruct_plane_wave(series, params=JointParams(volume_shape=(16, 8, 8)), device="cpu")


def test_msp_results_give_the_starting_probe_and_positions():
    rng = np.random.default_rng(4)
    shape = (24, 24, 24)
    centre = (np.array(shape) - 1) / 2 * VOXEL
    volume = gaussian_atoms(shape, VOXEL, particle_atoms(rng, 3, 1.5, centre), 200.0)
    series = stem_series(volume, VOXEL, [-10.0, 10.0], window=16, scan=(3, 3), step=1.0)
    probe = np.zeros((1, 16, 16), np.complex64)
    probe[0, 6:10, 6:10] = 1.0
    msp = {
        k: MSPResult(
            np.zeros((2, 20, 20), np.complex64),
            probe,
            series.scans[k].positions + 100.0,
            np.zeros(2),
            4.0,
            VOXEL,
            ENERGY,
        )
        for k in range(2)
    }
    params = JointParams(
        iterations=1,
        num_slices=4,
        batch_size=9,
        volume_shape=shape,
        rates={**JointParams().rates, "volume": LearningRate(1.0)},
    )
    result = reconstruct_joint(series, init=msp, params=params, device="cpu")
    # the MSP probe (normalised to unit power) and its positions (same frame) are kept
    assert np.allclose(np.abs(result.probes[0, 0, 6:10, 6:10]), 0.25, atol=1e-6)
    assert np.allclose(result.positions[1], series.scans[1].positions + 100.0, atol=1e-4)
