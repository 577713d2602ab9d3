"""Synthetic specimens for the tomography tests: small particles of Gaussian 'atoms'."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ptychotomo.tomo import project


def particle_volume(n=40, spacing=2.6, sigma=0.9, semi_axes=(10.0, 7.0, 8.0), seed=0):
    """A faceted ~2 nm particle: Gaussian atoms (σ in voxels) on a slightly jittered
    cubic lattice inside an ellipsoid with ``semi_axes`` (x, y, z) in voxels, in an
    (n, n, n) float64 volume (z, y, x) centred at (n - 1) / 2."""
    rng = np.random.default_rng(seed)
    r = np.arange(-12, 13) * spacing
    x, y, z = np.meshgrid(r, r, r, indexing="ij")
    xyz = np.stack([x.ravel(), y.ravel(), z.ravel()], 1) + 0.5
    ax = np.asarray(semi_axes)
    xyz = xyz[((xyz / ax) ** 2).sum(1) <= 1]
    xyz += rng.normal(scale=0.1, size=xyz.shape)
    c = (n - 1) / 2
    axis = np.arange(n) - c
    # separable Gaussians, summed over atoms without a Python loop per voxel
    gx = np.exp(-((axis[None] - xyz[:, :1]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((axis[None] - xyz[:, 1:2]) ** 2) / (2 * sigma**2))
    gz = np.exp(-((axis[None] - xyz[:, 2:3]) ** 2) / (2 * sigma**2))
    return np.einsum("az,ay,ax->zyx", gz, gy, gx)


def tilt_series(volume, angles_deg, psi_deg=0.0, shifts_px=None, noise=0.0, seed=0):
    """Projections (T, n, n) float64 of ``volume`` at stage tilts with an in-plane axis
    error ψ, shifts (T, 2) in px and Gaussian noise of ``noise`` × the projections' std."""
    rng = np.random.default_rng(seed)
    euler = np.zeros((len(angles_deg), 3))
    euler[:, 1] = angles_deg
    euler[:, 2] = psi_deg
    shifts = np.zeros((len(angles_deg), 2)) if shifts_px is None else shifts_px
    proj = project(
        torch.as_tensor(volume, dtype=torch.float64),
        torch.as_tensor(np.deg2rad(euler)),
        torch.as_tensor(shifts, dtype=torch.float64),
    ).numpy()
    if noise:
        proj = proj + noise * proj.std() * rng.normal(size=proj.shape)
    return proj


@pytest.fixture(scope="session")
def particle():
    return particle_volume()


@pytest.fixture(scope="session")
def make_tilt_series():
    return tilt_series
