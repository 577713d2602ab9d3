"""Synthetic specimens for the tomography tests: small particles of Gaussian 'atoms'.

Projections are computed analytically (a Gaussian atom projects to a 2D Gaussian at its
rotated position), independently of the projector under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ptychotomo.tomo import rotation_matrix


def particle_atoms(spacing=3.6, semi_axes=(9.0, 7.0, 8.0), seed=0):
    """(n, 3) atom positions (x, y, z) in voxels from the volume centre: a slightly
    jittered cubic lattice inside an ellipsoid with ``semi_axes`` (x, y, z)."""
    rng = np.random.default_rng(seed)
    r = np.arange(-12, 13) * spacing
    x, y, z = np.meshgrid(r, r, r, indexing="ij")
    xyz = np.stack([x.ravel(), y.ravel(), z.ravel()], 1) + 0.5
    xyz = xyz[((xyz / np.asarray(semi_axes)) ** 2).sum(1) <= 1]
    return xyz + rng.normal(scale=0.1, size=xyz.shape)


def _gauss(axis, centres, sigma):
    return np.exp(-((axis[None] - centres[:, None]) ** 2) / (2 * sigma**2))


def particle_volume(n=40, sigma=0.9, atoms=None):
    """(n, n, n) float64 volume (z, y, x) of unit-height Gaussian atoms (σ in voxels)."""
    xyz = particle_atoms() if atoms is None else atoms
    axis = np.arange(n) - (n - 1) / 2
    gx, gy, gz = (_gauss(axis, xyz[:, k], sigma) for k in range(3))
    return np.einsum("az,ay,ax->zyx", gz, gy, gx)


def tilt_series(n, angles_deg, psi_deg=0.0, shifts_px=None, noise=0.0, sigma=0.9, atoms=None, seed=0):
    """Analytic projections (T, n, n) of :func:`particle_volume` at stage tilts θ with an
    in-plane axis error ψ (R = R_z(ψ) R_y(θ)), shifts (T, 2) (y, x) in px, and Gaussian
    noise of ``noise`` × the projections' standard deviation."""
    rng = np.random.default_rng(seed)
    xyz = particle_atoms() if atoms is None else atoms
    euler = np.zeros((len(angles_deg), 3))
    euler[:, 1] = angles_deg
    euler[:, 2] = psi_deg
    rot = rotation_matrix(torch.as_tensor(np.deg2rad(euler))).numpy()  # (T, 3, 3)
    shifts = np.zeros((len(angles_deg), 2)) if shifts_px is None else np.asarray(shifts_px)
    axis = np.arange(n) - (n - 1) / 2
    proj = np.empty((len(angles_deg), n, n))
    for k in range(len(angles_deg)):
        moved = xyz @ rot[k].T
        gx = _gauss(axis, moved[:, 0] + shifts[k, 1], sigma)
        gy = _gauss(axis, moved[:, 1] + shifts[k, 0], sigma)
        proj[k] = np.sqrt(2 * np.pi) * sigma * np.einsum("ay,ax->yx", gy, gx)
    if noise:
        proj = proj + noise * proj.std() * rng.normal(size=proj.shape)
    return proj


@pytest.fixture(scope="session")
def particle():
    return particle_volume()


@pytest.fixture(scope="session")
def make_tilt_series():
    return tilt_series


@pytest.fixture(autouse=True)
def single_torch_thread():
    """The shared 2-core test machine is oversubscribed; torch's thread pool then spins
    and runs these small problems ~10× slower than on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def correlation(a, b):
    """Pearson correlation of two arrays."""
    a = np.asarray(a, float) - np.mean(a)
    b = np.asarray(b, float) - np.mean(b)
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.fixture(scope="session")
def pearson():
    return correlation
