"""Linear tomography, support masks and the MSP bridge."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ptychotomo import Alignment, MSPResult
from napari_ptychotomo.optics import interaction_constant
from napari_ptychotomo.tomo import (
    make_support_mask,
    project_mask,
    projections_from_msp,
    reconstruct_linear,
)
from napari_ptychotomo.tomo.reconstruct import fit_volume_cgls, gaussian_blur3d

ANGLES = np.linspace(-60, 60, 25)


@pytest.fixture(scope="module")
def clean_series(make_tilt_series):
    return make_tilt_series(40, ANGLES)


def test_reconstruction_with_true_alignment_matches_band_limited_truth(clean_series, particle, pearson):
    volume = reconstruct_linear(clean_series, Alignment.from_angles(ANGLES), pixel_size=0.5, device="cpu")
    truth = gaussian_blur3d(torch.as_tensor(particle), 0.5).numpy()
    assert pearson(volume.data, truth) > 0.93
    assert volume.voxel_size == 0.5 and volume.data.min() >= 0
    # projections are line integrals over pixels and the volume is per Å, so the voxel
    # sum times the voxel size is the integral of one projection
    assert volume.data.sum() * 0.5 == pytest.approx(clean_series[12].sum(), rel=0.05)


def test_cgls_fit_reproduces_its_projections(clean_series):
    euler = torch.zeros(25, 3)
    euler[:, 1] = torch.deg2rad(torch.as_tensor(ANGLES, dtype=torch.float32))
    proj = torch.as_tensor(clean_series, dtype=torch.float32)
    _volume, residual = fit_volume_cgls(proj, euler, torch.zeros(25, 2), (40, 40, 40), n_iter=15)
    assert residual < 0.01 * float(proj.pow(2).mean())


def test_support_mask_covers_particle_and_its_projections_cover_the_shadow(particle, clean_series):
    mask = make_support_mask(particle, threshold=0.2, blur_sigma_px=1.5)
    assert mask.dtype == bool
    assert mask[particle > 0.5 * particle.max()].all()  # every atom centre inside
    assert mask.mean() < 0.2  # and most of the box outside
    shadows = project_mask(mask, Alignment.from_angles(ANGLES), pixel_size=1.0)
    assert shadows.shape == (25, 40, 40) and 0 <= shadows.min() and shadows.max() <= 1
    inside = clean_series > 0.05 * clean_series.max()
    assert (shadows[inside] > 0.99).all()
    assert (shadows < 0.01).mean() > 0.3
    small = make_support_mask(particle, shape=(80, 80, 80))
    assert small.shape == (80, 80, 80)


def _msp(phase_value, tilt, shape=(20, 24), pixel_size=0.4):
    sigma = float(interaction_constant(200e3))
    obj = np.full((2, *shape), phase_value / sigma / 2, dtype=np.complex64)
    return MSPResult(
        object=obj,
        probe=np.ones((1, 8, 8), np.complex64),
        positions=np.zeros((4, 2)),
        tilt_mrad=np.zeros(2),
        slice_thickness=10.0,
        pixel_size=pixel_size,
        energy_eV=200e3,
        tilt_deg=tilt,
    )


def test_projections_from_msp_sums_phase_and_crops_to_common_field():
    results = {1: _msp(0.5, 10.0, (22, 24)), 0: _msp(0.3, -10.0)}
    stack, angles, pixel_size = projections_from_msp(results, centre="array", background=None)
    assert stack.shape == (2, 20, 24) and stack.dtype == np.float32
    np.testing.assert_allclose(stack[:, 0, 0], [0.3, 0.5], rtol=1e-5)
    np.testing.assert_allclose(angles, [-10.0, 10.0])
    assert pixel_size == pytest.approx(0.4)
    with pytest.raises(ValueError, match="pixel_size"):
        projections_from_msp([_msp(0.3, 0.0), _msp(0.3, 5.0, pixel_size=0.5)])


def test_projections_from_msp_put_each_scan_centre_on_the_middle_pixel():
    """Objects of different sizes and scans at different places: a point feature at each
    scan centre lands on pixel (n - 1)/2 of every projection, and the vacuum level of
    each tilt (the constant MSP leaves free) is removed."""
    sigma = float(interaction_constant(200e3))
    results = []
    for k, (shape, scan_centre) in enumerate((((30, 34), (12.3, 15.6)), ((28, 40), (14.8, 20.1)))):
        yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        blob = np.exp(-((yy - scan_centre[0]) ** 2 + (xx - scan_centre[1]) ** 2) / (2 * 1.5**2))
        phase = blob + 0.2 * (k + 1)  # a different constant per tilt
        result = _msp(0.0, 10.0 * k, shape)
        result.object = (phase / sigma)[None].astype(np.complex64)
        offsets = np.array([[-3.0, -2.0], [3.0, 2.0], [-3.0, 2.0], [3.0, -2.0]])
        result.positions = (np.asarray(scan_centre) + offsets) * result.pixel_size
        results.append(result)
    stack, _angles, _pixel = projections_from_msp(results, crop=(15, 17))
    assert stack.shape == (2, 15, 17)
    for image in stack:
        peak = np.unravel_index(np.argmax(image), image.shape)
        assert peak == (7, 8)
        # symmetric about the middle pixel to sub-pixel accuracy
        np.testing.assert_allclose(image[6, 8], image[8, 8], atol=2e-3)
        np.testing.assert_allclose(image[7, 7], image[7, 9], atol=2e-3)
        assert abs(np.median(np.r_[image[0], image[-1]])) < 0.02


def test_reconstruct_rejects_mismatched_alignment(clean_series):
    with pytest.raises(ValueError, match="alignment has 3 tilts"):
        reconstruct_linear(clean_series, Alignment.from_angles([0, 1, 2]), 1.0)


@pytest.mark.parametrize("field, value", [("n_iter", 0), ("n_iter", 2.5), ("preview_every", 0)])
def test_reconstruct_rejects_an_iteration_count_that_is_not_a_positive_integer(clean_series, field, value):
    with pytest.raises(ValueError, match=rf"{field} = {value!r}; expected a positive integer"):
        reconstruct_linear(clean_series, Alignment.from_angles(ANGLES), 0.5, device="cpu", **{field: value})


def test_a_volume_too_big_for_memory_is_refused_before_allocating_naming_its_shape():
    # 4096³ float32 is 256 GiB a copy; torch's allocator said only "can't allocate memory"
    projections = np.ones((3, 16, 16), np.float32)
    alignment = Alignment.from_angles([0.0, 10.0, 20.0])
    with pytest.raises(MemoryError, match=r"linear tomography of a 4096×4096×4096-voxel volume .*smaller shape"):
        reconstruct_linear(projections, alignment, 0.5, shape=(4096,) * 3, device="cpu")
