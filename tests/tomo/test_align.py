"""Joint alignment + linear tomography recovers a mis-aligned tilt series.

A ~2 nm particle (40³ voxels of 1 Å), 25 tilts over ±60°, random shifts up to ±3 px,
a 2° in-plane error of the tilt axis and 10 % noise; denoised (NLM) as the pipeline does,
then aligned with the default stages.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ptychotomo import Alignment, Progress
from napari_ptychotomo.tomo import (
    align_tilt_series,
    align_tilt_series_steps,
    denoise_projections,
    estimate_tilt_axis,
    reconstruct_linear,
)
from napari_ptychotomo.tomo.align import remove_gauge
from napari_ptychotomo.tomo.reconstruct import gaussian_blur3d

ANGLES = np.linspace(-60, 60, 25)
PSI_DEG = 2.0


@pytest.fixture(scope="module")
def misaligned(make_tilt_series):
    shifts = np.random.default_rng(3).uniform(-3, 3, size=(25, 2))
    torch.set_num_threads(1)
    noisy = make_tilt_series(40, ANGLES, psi_deg=PSI_DEG, shifts_px=shifts, noise=0.1, seed=4)
    return denoise_projections(noisy, method="nlm"), shifts


@pytest.fixture(scope="module")
def aligned(misaligned):
    torch.set_num_threads(1)
    projections, _shifts = misaligned
    return align_tilt_series(projections, ANGLES, pixel_size=1.0, device="cpu")


@pytest.fixture(scope="module")
def band_limited_truth(particle):
    # the reconstruction's own σ = 0.5 px blur is the band limit it is compared at
    return gaussian_blur3d(torch.as_tensor(particle), 0.5).numpy()


def test_shifts_recovered_within_0p3_px_rms(aligned, misaligned):
    alignment, _volume = aligned
    _proj, shifts = misaligned
    assert alignment.shifts.shape == (25, 2) and alignment.euler_deg.shape == (25, 3)
    error = torch.as_tensor(alignment.shifts / 1.0 - shifts)
    # a rigid translation of the volume is undetermined: remove it before comparing
    error = remove_gauge(error, torch.deg2rad(torch.as_tensor(ANGLES)))
    assert float(error.pow(2).mean().sqrt()) < 0.3


def test_in_plane_axis_angle_within_0p3_deg(aligned):
    alignment, _volume = aligned
    np.testing.assert_allclose(alignment.euler_deg[:, 2], PSI_DEG, atol=0.3)
    np.testing.assert_allclose(alignment.euler_deg[:, 1], ANGLES, atol=1e-6)


def registered(volume, truth):
    """``volume`` moved by the rigid translation that best matches ``truth`` (the gauge
    freedom of the alignment: shifts are found up to a translation of the volume)."""
    from scipy.ndimage import shift
    from skimage.registration import phase_cross_correlation

    offset, _, _ = phase_cross_correlation(truth, volume.astype(float), upsample_factor=20)
    return shift(volume, offset, order=3)


def test_aligned_volume_correlates_with_truth_and_unaligned_does_not(aligned, misaligned, band_limited_truth, pearson):
    _alignment, volume = aligned
    assert volume.shape == (40, 40, 40) and volume.voxel_size == 1.0
    r_aligned = pearson(registered(volume.data, band_limited_truth), band_limited_truth)
    unaligned = reconstruct_linear(misaligned[0], Alignment.from_angles(ANGLES), 1.0, device="cpu")
    r_unaligned = pearson(registered(unaligned.data, band_limited_truth), band_limited_truth)
    assert r_aligned >= 0.9  # measured 0.943 (0.944 with the data perturbed by 1e-5; 0.900 at 50 final iterations)
    assert r_unaligned < r_aligned - 0.15  # measured 0.683


def test_common_line_finds_axis_angle_and_shifts_along_it_without_noise(make_tilt_series):
    shifts = np.random.default_rng(3).uniform(-3, 3, size=(25, 2))
    projections = make_tilt_series(40, ANGLES, psi_deg=-3.3, shifts_px=shifts)
    psi, along = estimate_tilt_axis(projections)
    assert psi == pytest.approx(-3.3, abs=0.02)
    axis = np.array([np.cos(np.deg2rad(psi)), -np.sin(np.deg2rad(psi))])  # (y, x) of R_z(ψ) e_y
    expected = shifts @ axis
    np.testing.assert_allclose(along, expected - expected.mean(), atol=0.02)


def test_generator_yields_progress_with_previews(misaligned):
    from napari_ptychotomo.tomo import AlignStage

    stages = [AlignStage(scale=0.1, learn_shifts=True, n_outer=2, n_inner=3, n_align=2)]
    steps = list(align_tilt_series_steps(misaligned[0], ANGLES, 1.0, stages=stages, final_n_iter=2, device="cpu"))
    assert all(isinstance(p, Progress) for p in steps) and len(steps) == 3
    first = steps[0].preview
    assert first["volume_slice"].ndim == 2 and first["shifts"].shape == (25, 2)
    assert first["euler_deg"].shape == (25, 3)
    alignment, volume = steps[-1].result
    assert isinstance(alignment, Alignment) and volume.data.shape == (40, 40, 40)


def test_bad_inputs_name_the_field():
    with pytest.raises(ValueError, match="angles_deg"):
        align_tilt_series(np.zeros((3, 16, 16)), [0.0, 10.0], 1.0)
    with pytest.raises(ValueError, match="projections"):
        align_tilt_series(np.zeros((16, 16)), [0.0], 1.0)
    with pytest.raises(ValueError, match="pixel_size"):
        align_tilt_series(np.zeros((2, 16, 16)), [0.0, 10.0], -1.0)


@pytest.mark.parametrize("psi_deg", [2.0, -2.0])
def test_common_line_on_raw_noisy_data_finds_axis_within_0p3_deg_with_its_own_denoising(make_tilt_series, psi_deg):
    """Alignment from raw (not denoised) projections: the ψ estimate denoises a copy of the
    stack (NLM) for itself. Without it the spread is 0.87° RMS over 9 cases (see
    estimate_tilt_axis); measured here with it: 0.12 and -0.20 (seed 3/4 at ±2°)."""
    rng = np.random.default_rng(3)
    errors = []
    for seed in range(2):
        shifts = rng.uniform(-3, 3, size=(25, 2))
        noisy = make_tilt_series(40, ANGLES, psi_deg=psi_deg, shifts_px=shifts, noise=0.1, seed=4 + seed)
        psi, _along = estimate_tilt_axis(noisy, denoise="nlm")
        errors.append(psi - psi_deg)
    assert np.abs(errors).max() < 0.3


@pytest.mark.slow
def test_goal_1_on_raw_noisy_projections(misaligned, make_tilt_series, band_limited_truth, pearson):
    """The whole alignment without denoising the projections (only the ψ estimate
    denoises a copy). Measured: ψ 2.115°, shifts 0.094 px RMS, r 0.923 (14 s on 2
    idle cores; slow on the shared ones)."""
    torch.set_num_threads(1)
    shifts = misaligned[1]
    raw = make_tilt_series(40, ANGLES, psi_deg=PSI_DEG, shifts_px=shifts, noise=0.1, seed=4)
    alignment, volume = align_tilt_series(raw, ANGLES, pixel_size=1.0, device="cpu")
    error = remove_gauge(torch.as_tensor(alignment.shifts - shifts), torch.deg2rad(torch.as_tensor(ANGLES)))
    rms = float(error.pow(2).mean().sqrt())
    r = pearson(registered(volume.data, band_limited_truth), band_limited_truth)
    print(f"raw: psi {alignment.euler_deg[0, 2]:.3f}, shifts {rms:.3f} px RMS, r {r:.3f}")
    np.testing.assert_allclose(alignment.euler_deg[:, 2], PSI_DEG, atol=0.3)
    assert rms < 0.3
    assert r >= 0.9
