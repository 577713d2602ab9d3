"""Synthetic data for the joint tests, made with the physics core and tomo's rotation.

Specimens are sums of 3D Gaussian "atoms" of known integrated potential (V·Å³), so the
ground-truth complex potential is exact on the voxel grid. 4D-STEM patterns and HRTEM
images come from the package's forward models, which are verified independently (the
physics core against abTEM, the rotation against analytic rotations).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ptychotomo.data import Calibration, DefocusSeries, ScanData, TiltSeries
from napari_ptychotomo.physics import fresnel_propagator, interaction_constant, make_probe, wavelength

ENERGY = 300e3


def gaussian_atoms(shape, voxel, atoms_zyx, weights, width=0.4, absorption=0.05):
    """Complex volume (V) of Gaussian atoms at ``atoms_zyx`` Å (from voxel (0,0,0)), each
    integrating to ``weights`` V·Å³ with σ = ``width`` Å; Im V = ``absorption`` · Re V."""
    grids = np.meshgrid(*(np.arange(n) * voxel for n in shape), indexing="ij")
    vol = np.zeros(shape)
    norm = (2 * np.pi) ** 1.5 * width**3
    for (z, y, x), w in zip(np.asarray(atoms_zyx), np.broadcast_to(weights, len(atoms_zyx))):
        r2 = (grids[0] - z) ** 2 + (grids[1] - y) ** 2 + (grids[2] - x) ** 2
        vol += w / norm * np.exp(-r2 / (2 * width**2))
    return (vol + 1j * absorption * vol).astype(np.complex64)


def particle_atoms(rng, n_atoms, radius, centre, min_distance=2.0):
    """Random atom sites inside a sphere, at least ``min_distance`` Å apart."""
    sites = []
    while len(sites) < n_atoms:
        p = rng.uniform(-radius, radius, 3)
        if np.linalg.norm(p) <= radius and all(np.linalg.norm(p - q) >= min_distance for q in sites):
            sites.append(p)
    return np.asarray(sites) + np.asarray(centre)


def detector_sampling_mrad(window, voxel):
    return 1.0 / (window * voxel) * float(wavelength(ENERGY)) * 1e3


def stem_series(
    volume,
    voxel,
    angles_deg,
    window=24,
    scan=(6, 6),
    step=1.5,
    semiangle=12.0,
    num_slices=4,
    shifts_A=None,
    defocus=0.0,
    dose=None,
    seed=0,
    band_limit=False,
):
    """4D-STEM tilt series of ``volume`` from the package's forward model (truth included),
    the engine's: ``band_limit`` as ``JointParams.band_limit`` (default off)."""
    from napari_ptychotomo.joint.forward import stem_intensities

    nz, ny, nx = volume.shape
    cal = Calibration(ENERGY, semiangle, detector_sampling_mrad(window, voxel), defocus=defocus, scan_step=step)
    probe = make_probe((window, window), voxel, ENERGY, semiangle, cal.aberration_dict())[None]
    prop = fresnel_propagator(
        (window, window), voxel, float(wavelength(ENERGY)), nz / num_slices * voxel, band_limit=band_limit
    )
    sigma = float(interaction_constant(ENERGY))
    yy, xx = np.meshgrid(np.arange(scan[0]) * step, np.arange(scan[1]) * step, indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], 1)
    centred = (pos - pos.mean(0)) / voxel + np.array([(ny - 1) / 2, (nx - 1) / 2])
    shifts_A = np.zeros((len(angles_deg), 2)) if shifts_A is None else np.asarray(shifts_A)
    rng = np.random.default_rng(seed)
    scans = []
    vol = torch.as_tensor(volume)
    for k, angle in enumerate(angles_deg):
        euler = torch.tensor(np.deg2rad([0.0, angle, 0.0]), dtype=torch.float32)
        with torch.no_grad():
            intensities = stem_intensities(
                vol,
                euler,
                torch.tensor(shifts_A[k] / voxel, dtype=torch.float32),
                probe,
                torch.tensor(centred, dtype=torch.float32),
                prop,
                num_slices,
                voxel,
                sigma,
                band_limit,
            ).numpy()
        if dose is not None:
            counts = dose * step * step
            intensities = rng.poisson(intensities * counts) / counts
        scans.append(
            ScanData(
                intensities.reshape(*scan, window, window).astype(np.float32),
                cal,
                positions=pos.copy(),
                tilt_deg=float(angle),
            )
        )
    return TiltSeries(scans, np.asarray(angles_deg, float), truth={"volume": volume, "voxel_size": voxel})


def hrtem_series(volume, voxel, angles_deg, defoci, num_slices=4, **optics):
    """Plane-wave tilt × defocus series of ``volume`` from the package's forward model;
    ``optics`` are :class:`DefocusSeries` fields (aperture_mrad, aberrations, ...)."""
    from napari_ptychotomo.joint.forward import plane_wave_images, series_transfer

    nz, ny, nx = volume.shape
    lam = float(wavelength(ENERGY))
    prop = fresnel_propagator((ny, nx), voxel, lam, nz / num_slices * voxel)
    sigma = float(interaction_constant(ENERGY))
    out = []
    vol = torch.as_tensor(volume)
    for angle in angles_deg:
        stack = DefocusSeries(
            np.zeros((len(defoci), ny, nx), np.float32),
            np.asarray(defoci, float),
            voxel,
            ENERGY,
            float(angle),
            **optics,
        )
        transfer = series_transfer(stack, (ny, nx), voxel, nz * voxel)
        euler = torch.tensor(np.deg2rad([0.0, angle, 0.0]), dtype=torch.float32)
        with torch.no_grad():
            stack.images = plane_wave_images(
                vol, euler, torch.zeros(2), transfer, prop, num_slices, voxel, sigma
            ).numpy()
        out.append(stack)
    return TiltSeries(out, np.asarray(angles_deg, float), truth={"volume": volume, "voxel_size": voxel})


def nrmse(estimate, truth):
    """‖Re(estimate) − Re(truth)‖ / ‖Re(truth)‖."""
    e, t = np.real(estimate), np.real(truth)
    return float(np.linalg.norm(e - t) / np.linalg.norm(t))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run each joint test on one torch thread: the cases are small, and on a shared machine
    two threads that wait for each other cost far more wall time than they save."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
