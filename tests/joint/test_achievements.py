"""What issue 6 asks the joint step to achieve, on scaled-down synthetic cases (fixed seeds).

Scaling against the issue: Gaussian-atom particles of 5-16 atoms in 24³-32³ volumes of
0.5 Å voxels (instead of a ~2 nm core-shell particle), 4D-STEM scans of 5×5-6×6 positions
on a 16×16 detector, 6-8 tilts, 10-60 passes. The full-size cases belong in
benchmarks/joint.py. Data come from the package's forward model (physics core verified
against abTEM, rotation against analytic rotations).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_ptychotomo.data import Alignment, TiltSeries
from napari_ptychotomo.joint import JointParams, reconstruct_joint, reconstruct_plane_wave
from napari_ptychotomo.joint.params import Rate

from .conftest import gaussian_atoms, hrtem_series, nrmse, particle_atoms, stem_series

VOXEL = 0.5


def _local_maxima(volume, fraction=0.2):
    real = np.real(volume)
    peaks = (ndimage.maximum_filter(real, size=3) == real) & (real > fraction * real.max())
    return np.argwhere(peaks) * VOXEL


def test_refining_shifts_reduces_1px_alignment_errors():
    """Issue 6, achievement 2: start with ±1 px (0.5 Å) shift errors, 6 tilts over ±45°.

    A common translation of all shifts is a free translation of the volume, so errors are
    compared after removing the mean. Measured: rms 0.50 Å → 0.35 Å overall; along the tilt
    axis (y) the error drops below half, across it (x, coupled to depth) less.
    """
    shape = (32, 32, 32)
    rng = np.random.default_rng(3)
    centre = (np.array(shape) - 1) / 2 * VOXEL
    volume = gaussian_atoms(shape, VOXEL, particle_atoms(rng, 5, 2.0, centre), 250.0)
    angles = np.linspace(-45, 45, 6)
    series = stem_series(volume, VOXEL, angles, window=16, scan=(6, 6), step=1.0)
    errors = np.random.default_rng(1).choice([-1.0, 1.0], size=(6, 2)) * VOXEL
    start = Alignment.from_angles(angles)
    start.shifts = errors.copy()
    params = JointParams(iterations=30, num_slices=4, batch_size=12, volume_shape=shape,
                         learn=("volume", "shifts"))
    params.rates["shifts"] = Rate(0.05, 5)
    result = reconstruct_joint(series, init=start, params=params, device="cpu")
    before = errors - errors.mean(0)
    after = result.alignment.shifts - result.alignment.shifts.mean(0)
    rms = lambda e: float(np.sqrt(np.mean(e**2)))  # noqa: E731
    assert rms(after) < 0.8 * rms(before)
    assert rms(after[:, 0]) < 0.5 * rms(before[:, 0])


def test_plane_wave_tv_finds_95_percent_of_atoms_within_half_an_angstrom():
    """Issue 6, achievement 3: plane-wave mode, small Si/SiO2-like particle (16 atoms, one
    third Si-like 280 V·Å³, the rest O-like 120 V·Å³, ≥ 2.2 Å apart), 3 defoci per tilt,
    8 tilts over 180°, TV. Local maxima above 20 % of the maximum stand in for atom tracing.
    """
    shape = (24, 24, 24)
    rng = np.random.default_rng(0)
    centre = (np.array(shape) - 1) / 2 * VOXEL
    atoms = particle_atoms(rng, 16, 4.0, centre, min_distance=2.2)
    weights = np.where(np.arange(16) % 3 == 0, 280.0, 120.0)
    volume = gaussian_atoms(shape, VOXEL, atoms, weights)
    series = hrtem_series(volume, VOXEL, np.linspace(-90, 90, 8, endpoint=False), [-60.0, 0.0, 60.0])
    params = JointParams(iterations=20, num_slices=4, plane_wave_step=4.0, tv_weight=0.1)
    result = reconstruct_plane_wave(series, params=params, device="cpu")
    peaks = _local_maxima(result.volume.data)
    distance = np.linalg.norm(atoms[:, None] - peaks[None], axis=-1)
    found = np.mean(distance.min(1) < 0.5)
    false_peaks = np.sum(distance.min(0) >= 0.5)
    assert found >= 0.95
    assert false_peaks <= 2
    assert result.loss_history[-1] < 0.3 * result.loss_history[0]


def _sequential(series, shape, iterations):
    """Sequential baseline on the same data: single-slice ptychography per tilt (this engine
    with one tilt, one slice), projected potentials, then linear tomography (tomo)."""
    from napari_ptychotomo.tomo.reconstruct import reconstruct_linear

    projections = []
    for scan in series.scans:
        params = JointParams(iterations=iterations, num_slices=1, batch_size=25,
                             volume_shape=(1, *shape[1:]))
        one = reconstruct_joint(TiltSeries([scan], [0.0]), params=params, device="cpu")
        projections.append(one.volume.data[0].real * VOXEL)  # V·Å
    linear = reconstruct_linear(np.asarray(projections), Alignment.from_angles(series.angles_deg),
                                VOXEL, shape=shape, n_iter=100, device="cpu", blur_sigma_px=0.0)
    return linear.data


def _fwhm_along_z(volume, site):
    z, y, x = np.round(site / VOXEL).astype(int)
    profile = np.real(volume)[:, y, x]
    peak = profile[z - 1 : z + 2].max()
    return float(np.sum(profile >= peak / 2) * VOXEL)


@pytest.mark.slow
@pytest.mark.xfail(reason="measured: NRMSE 0.651 vs 0.823 (21 % lower, met) but the heavy atom's "
                   "half-maximum width along z is 2.0 Å end-to-end vs 1.0 Å sequential (the "
                   "sequential peak is 5x too weak); not yet achieved", strict=False)
def test_end_to_end_beats_sequential_in_a_45_degree_missing_wedge():
    """Issue 6, achievement 1: ±45° tilts (7), a particle of 8 atoms with one heavy atom
    (600 V·Å³ against 150), 5×5 scans, 60 passes for both pipelines. The end-to-end volume
    should have ≥ 20 % lower NRMSE than the sequential one and a narrower heavy-atom peak
    along z (the missing-wedge direction)."""
    shape = (32, 32, 32)
    rng = np.random.default_rng(0)
    centre = (np.array(shape) - 1) / 2 * VOXEL
    atoms = particle_atoms(rng, 8, 3.0, centre)
    weights = np.full(8, 150.0)
    weights[0] = 600.0
    volume = gaussian_atoms(shape, VOXEL, atoms, weights)
    series = stem_series(volume, VOXEL, np.linspace(-45, 45, 7), window=16, scan=(5, 5), step=1.5)
    sequential = _sequential(series, shape, 60)
    params = JointParams(iterations=60, num_slices=4, batch_size=25, volume_shape=shape)
    joint = reconstruct_joint(series, params=params, device="cpu").volume.data
    e2e, seq = nrmse(joint, volume), nrmse(sequential, volume)
    assert e2e < 0.8 * seq
    assert _fwhm_along_z(joint, atoms[0]) < _fwhm_along_z(sequential, atoms[0])
    assert torch.get_default_dtype() == torch.float32
