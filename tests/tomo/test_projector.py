"""Rotation and projection: conventions, agreement with an independent resampling, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ptychotomo.tomo import bin_along_beam, project, rotate_volume, rotation_matrix


def blob_volume(shape, centres_xyz, sigma=1.5, dtype=torch.float64):
    """Gaussian blobs at (x, y, z) voxel offsets from the volume centre."""
    nz, ny, nx = shape
    zz, yy, xx = torch.meshgrid(*(torch.arange(n, dtype=dtype) - (n - 1) / 2 for n in shape), indexing="ij")
    vol = torch.zeros(shape, dtype=dtype)
    for cx, cy, cz in centres_xyz:
        vol += torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2 + (zz - cz) ** 2) / (2 * sigma**2))
    return vol


def centroid_xyz(vol):
    """Centre of mass (x, y, z) in voxels from the centre."""
    grids = torch.meshgrid(*(torch.arange(n, dtype=vol.dtype) - (n - 1) / 2 for n in vol.shape), indexing="ij")
    z, y, x = (float((g * vol).sum() / vol.sum()) for g in grids)
    return np.array([x, y, z])


def centroid_yx(img):
    grids = torch.meshgrid(*(torch.arange(n, dtype=img.dtype) - (n - 1) / 2 for n in img.shape), indexing="ij")
    return np.array([float((g * img).sum() / img.sum()) for g in grids])


def test_rotation_matrix_is_rz_ry_rx_with_right_handed_factors():
    phi, theta, psi = 0.1, 0.7, -0.3
    c, s = np.cos, np.sin
    rx = np.array([[1, 0, 0], [0, c(phi), -s(phi)], [0, s(phi), c(phi)]])
    ry = np.array([[c(theta), 0, s(theta)], [0, 1, 0], [-s(theta), 0, c(theta)]])
    rz = np.array([[c(psi), -s(psi), 0], [s(psi), c(psi), 0], [0, 0, 1]])
    got = rotation_matrix(torch.tensor([phi, theta, psi], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, rz @ ry @ rx, atol=1e-12)


@pytest.mark.parametrize("euler_deg", [(0, 30, 0), (10, -25, 0), (5, 40, 20)])
def test_rotate_volume_moves_off_centre_blob_to_R_r(euler_deg):
    start = np.array([6.0, -2.0, 3.0])  # (x, y, z) voxels from the centre
    vol = blob_volume((24, 24, 24), [start])
    euler = torch.tensor(np.deg2rad(euler_deg), dtype=torch.float64)
    moved = rotate_volume(vol, euler, shifts=torch.tensor([1.0, -2.0], dtype=torch.float64))
    expected = rotation_matrix(euler).numpy() @ start + np.array([-2.0, 1.0, 0.0])
    np.testing.assert_allclose(centroid_xyz(moved), expected, atol=0.1)


def test_positive_tilt_about_y_moves_blob_at_plus_z_to_plus_x_in_projection():
    # R_y(θ) (0, 0, z) = (z sinθ, 0, z cosθ): a blob above the centre lands at +x.
    vol = blob_volume((32, 24, 32), [(0.0, 0.0, 8.0)])
    euler = torch.tensor([[0.0, np.deg2rad(30), 0.0], [0.0, np.deg2rad(60), 0.0]], dtype=torch.float64)
    proj = project(vol, euler)
    for k, theta in enumerate((30, 60)):
        y, x = centroid_yx(proj[k])
        assert x == pytest.approx(8 * np.sin(np.deg2rad(theta)), abs=0.1)
        assert y == pytest.approx(0.0, abs=0.05)


def test_projection_conserves_mass_and_applies_shifts_in_pixels():
    vol = blob_volume((24, 32, 32), [(2.0, 3.0, -1.0)])
    euler = torch.tensor(np.deg2rad([[0, 0, 0], [0, 50, 0], [3, -20, 10]]), dtype=torch.float64)
    shifts = torch.tensor([[0.0, 0.0], [1.5, -2.0], [-0.5, 0.7]], dtype=torch.float64)
    proj = project(vol, euler, shifts, voxel_size=2.0)
    np.testing.assert_allclose(proj.sum((1, 2)).numpy(), 2.0 * float(vol.sum()), rtol=2e-3)
    rot = rotation_matrix(euler).numpy()
    for k in range(3):
        expected_xy = (rot[k] @ np.array([2.0, 3.0, -1.0]))[:2] + shifts[k].numpy()[::-1]
        np.testing.assert_allclose(centroid_yx(proj[k])[::-1], expected_xy, atol=0.05)


@pytest.mark.parametrize("theta_deg", [0, 35, 55, -70])
def test_projector_matches_rotate_then_sum(theta_deg):
    vol = blob_volume((28, 20, 28), [(3.0, 1.0, -4.0), (-5.0, -2.0, 2.0)], sigma=2.0)
    euler = torch.tensor(np.deg2rad([[4, theta_deg, -8]]), dtype=torch.float64)
    fast = project(vol, euler)[0]
    reference = rotate_volume(vol, euler[0]).sum(0)
    err = float((fast - reference).abs().max() / reference.abs().max())
    assert err < 0.02


def test_projector_handles_complex_volumes_channelwise():
    vol = blob_volume((16, 16, 16), [(2.0, 0.0, 1.0)])
    euler = torch.tensor(np.deg2rad([[0, 20, 5]]), dtype=torch.float64)
    both = project(torch.complex(vol, 0.5 * vol), euler)
    np.testing.assert_allclose(both.imag.numpy(), 0.5 * project(vol, euler).numpy(), atol=1e-12)


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    vol = blob_volume((12, 12, 12), [(1.3, 0.4, -0.7), (-2.1, 1.2, 1.9)], sigma=1.8)
    vol = vol + 0.05 * torch.rand_like(vol)
    euler = torch.tensor(np.deg2rad([[3, 20, -7], [-2, 50, 4]]), dtype=torch.float64)
    shifts = torch.tensor([[0.3, -0.4], [0.2, 0.6]], dtype=torch.float64)
    weights = torch.rand(2, 12, 12, dtype=torch.float64)

    def loss(v, e, s):
        return (project(v, e, s) * weights).sum()

    v, e, s = (x.clone().requires_grad_(True) for x in (vol, euler, shifts))
    loss(v, e, s).backward()
    h = 1e-6
    for name, tensor, grad, index in [
        ("phi", euler, e.grad, (1, 0)),
        ("theta", euler, e.grad, (0, 1)),
        ("psi", euler, e.grad, (1, 2)),
        ("shift y", shifts, s.grad, (0, 0)),
        ("shift x", shifts, s.grad, (1, 1)),
        ("voxel", vol, v.grad, (6, 5, 7)),
    ]:
        plus, minus = tensor.clone(), tensor.clone()
        plus[index] += h
        minus[index] -= h
        args_p = [plus if tensor is x else x for x in (vol, euler, shifts)]
        args_m = [minus if tensor is x else x for x in (vol, euler, shifts)]
        numeric = (loss(*args_p) - loss(*args_m)) / (2 * h)
        assert float(grad[index]) == pytest.approx(float(numeric), rel=1e-4, abs=1e-7), name


def test_bin_along_beam_sums_groups_of_planes():
    vol = torch.arange(8 * 2 * 3, dtype=torch.float32).reshape(8, 2, 3)
    slabs = bin_along_beam(vol, 4)
    assert slabs.shape == (4, 2, 3)
    np.testing.assert_allclose(slabs[1].numpy(), (vol[2] + vol[3]).numpy())
    with pytest.raises(ValueError, match="n_slices"):
        bin_along_beam(vol, 3)


def test_bad_shapes_raise_readable_errors():
    vol = torch.zeros(8, 8, 8)
    with pytest.raises(ValueError, match="euler_rad"):
        project(vol, torch.zeros(3))
    with pytest.raises(ValueError, match="shifts"):
        project(vol, torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="volume"):
        project(torch.zeros(8, 8), torch.zeros(1, 3))
