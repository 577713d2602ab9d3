"""GUI test set-up: napari's ``make_napari_viewer`` under pytest-xvfb's virtual X server.

torch is imported by ``tests/conftest.py`` before any QApplication exists. Screenshots are
taken with ``canvas_only=True`` and checked to be not blank, so a test fails when a layer
silently draws nothing (which is what ``QT_QPA_PLATFORM=offscreen`` would do).
"""

from __future__ import annotations

import numpy as np
import pytest


def assert_not_blank(viewer, min_levels: int = 2, min_fraction: float = 0.01) -> np.ndarray:
    """Take a canvas screenshot with every slider at the middle of its range and assert
    it shows something (the first slice of a volume is often empty vacuum).

    The screenshot must contain at least ``min_levels`` distinct grey levels and at least
    ``min_fraction`` of its pixels must differ from the most common (background) colour.
    Returns the RGBA screenshot ``(h, w, 4)`` uint8.
    """
    for axis in viewer.dims.not_displayed:
        start, stop, step = viewer.dims.range[axis]
        viewer.dims.set_point(axis, start + step * round((stop - start) / step / 2))
    _fit_visible(viewer)
    shot = np.asarray(viewer.screenshot(canvas_only=True, flash=False))
    assert shot.ndim == 3 and shot.shape[-1] in (3, 4), f"screenshot shape {shot.shape}"
    grey = shot[..., :3].astype(np.int32) @ np.array([1, 256, 65536])
    values, counts = np.unique(grey, return_counts=True)
    assert len(values) >= min_levels, "screenshot is blank: a single colour"
    foreground = 1.0 - counts.max() / grey.size
    assert foreground >= min_fraction, (
        f"screenshot is nearly blank: only {foreground:.2%} of pixels differ from the background"
    )
    return shot


def _fit_visible(viewer) -> None:
    """Centre and zoom the 2D camera on the visible layers only (napari's reset_view fits
    hidden layers too, e.g. a mean diffraction pattern in mrad beside an image in Å)."""
    viewer.reset_view()
    boxes = [layer.extent.world[:, -2:] for layer in viewer.layers if layer.visible]
    if not boxes or viewer.dims.ndisplay != 2:
        return
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    viewer.camera.center = tuple((lo + hi) / 2)
    size = np.asarray(viewer.canvas.size, dtype=float)
    viewer.camera.zoom = 0.9 * float(np.min(size / np.maximum(hi - lo, 1e-9)))


@pytest.fixture
def not_blank():
    """The :func:`assert_not_blank` check, for tests (conftest modules are not importable)."""
    return assert_not_blank


@pytest.fixture
def viewer(make_napari_viewer):
    """A real napari viewer, shown on the virtual display (a hidden viewer screenshots blank)."""
    return make_napari_viewer(show=True)


def _calibration(**overrides):
    from napari_ptychotomo.data import Calibration

    values = dict(energy_eV=300e3, semiangle_mrad=20.0, detector_sampling_mrad=2.5, defocus=100.0, scan_step=0.5)
    values.update(overrides)
    return Calibration(**values)


@pytest.fixture
def tiny_scan():
    """A 6×5 raster of 16×16 random patterns with a brighter central disk (seed 0)."""
    from napari_ptychotomo.data import ScanData

    rng = np.random.default_rng(0)
    patterns = rng.poisson(5.0, size=(6, 5, 16, 16)).astype(np.float32)
    patterns[..., 6:10, 6:10] += 50.0
    return ScanData(intensities=patterns, calibration=_calibration(), tilt_deg=10.0)


@pytest.fixture
def tiny_msp():
    """An MSPResult of 3 slices 32×32, 2 probe modes, a 4×4 raster and a tilt map."""
    from napari_ptychotomo.data import MSPResult

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:4, :4]
    positions = 8.0 + 0.6 * np.stack([yy.ravel(), xx.ravel()], axis=1)
    tilt_map = np.stack([np.where(xx.ravel() < 2, 3.0, -3.0), 0.5 * np.ones(16)], axis=1)
    obj = rng.normal(size=(3, 32, 32)) + 1j * np.abs(rng.normal(size=(3, 32, 32))) * 0.1
    return MSPResult(
        object=obj.astype(np.complex64),
        probe=(rng.normal(size=(2, 16, 16)) + 1j * rng.normal(size=(2, 16, 16))).astype(np.complex64),
        positions=positions,
        tilt_mrad=np.array([0.0, 0.5]),
        slice_thickness=20.0,
        pixel_size=0.3,
        energy_eV=300e3,
        tilt_map=tilt_map,
        loss_history=[1.0, 0.5],
        tilt_deg=-20.0,
        scan_shape=(4, 4),
    )


@pytest.fixture(scope="session")
def small_simulated_scan():
    """SrTiO3 2×2×2 cells, 6×6 scan at 0.5 Å, 24×24 detector, 4 mrad mistilt (seed 0)."""
    from napari_ptychotomo.simulate import simulate_scan, srtio3_slab

    return simulate_scan(
        srtio3_slab((2, 2, 2)),
        scan_shape=(6, 6),
        scan_step=0.5,
        detector_shape=(24, 24),
        num_slices=2,
        mistilt_mrad=(4.0, 0.0),
        dose=1e5,
        seed=0,
    )


@pytest.fixture(scope="session")
def blob_projections():
    """Analytic projections (7, 24, 24) of three Gaussian blobs (σ = 1.5 px) at tilts
    −60…60° about y (R_y acting on (x, y, z): x' = x cos θ + z sin θ), pixel 0.5 Å."""
    angles = np.linspace(-60.0, 60.0, 7)
    blobs = np.array([[0.0, 3.0, -4.0], [5.0, -4.0, 2.0], [-4.0, 0.0, 4.0]])  # (x, y, z) px
    axis = np.arange(24) - 11.5
    stack = []
    for theta in np.deg2rad(angles):
        x = blobs[:, 0] * np.cos(theta) + blobs[:, 2] * np.sin(theta)
        gy = np.exp(-((axis[None] - blobs[:, 1, None]) ** 2) / (2 * 1.5**2))
        gx = np.exp(-((axis[None] - x[:, None]) ** 2) / (2 * 1.5**2))
        stack.append(np.einsum("ay,ax->yx", gy, gx))
    return np.asarray(stack, np.float32), angles


def _gaussian_volume(shape, voxel, atoms_zyx, width=0.5):
    """Complex potential (V) of unit-height Gaussian atoms at ``atoms_zyx`` Å, Im = 0.05 Re."""
    grids = np.meshgrid(*(np.arange(n) * voxel for n in shape), indexing="ij")
    vol = np.zeros(shape)
    for z, y, x in atoms_zyx:
        vol += 20.0 * np.exp(-((grids[0] - z) ** 2 + (grids[1] - y) ** 2 + (grids[2] - x) ** 2) / (2 * width**2))
    return (vol * (1 + 0.05j)).astype(np.complex64)


@pytest.fixture(scope="session")
def tiny_stem_series():
    """3 tilts (−30, 0, 30°) of two Gaussian atoms ~1 Å from the centre of a 24³ volume
    of 0.5 Å voxels, 3×3 scan at 1 Å, 16×16 detector, noise-free, from the package's own
    forward model (its default: no band limit on the detector grid)."""
    import torch

    from napari_ptychotomo.data import Calibration, ScanData, TiltSeries
    from napari_ptychotomo.joint.forward import stem_intensities
    from napari_ptychotomo.physics import fresnel_propagator, interaction_constant, make_probe, wavelength

    energy, voxel, window, nz, slices = 300e3, 0.5, 16, 24, 4
    volume = _gaussian_volume((nz, nz, nz), voxel, [(5.5, 5.0, 6.5), (6.0, 6.5, 5.0)])
    lam = float(wavelength(energy))
    cal = Calibration(energy, 12.0, 1e3 * lam / (window * voxel), scan_step=1.0)
    probe = make_probe((window, window), voxel, energy, 12.0, cal.aberration_dict())[None]
    prop = fresnel_propagator((window, window), voxel, lam, nz / slices * voxel, band_limit=False)
    yy, xx = np.meshgrid(np.arange(3.0), np.arange(3.0), indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], 1)
    centred = torch.tensor((pos - pos.mean(0)) / voxel + (nz - 1) / 2, dtype=torch.float32)
    scans = []
    for angle in (-30.0, 0.0, 30.0):
        euler = torch.tensor(np.deg2rad([0.0, angle, 0.0]), dtype=torch.float32)
        with torch.no_grad():
            patterns = stem_intensities(
                torch.as_tensor(volume),
                euler,
                torch.zeros(2),
                probe,
                centred,
                prop,
                slices,
                voxel,
                float(interaction_constant(energy)),
                band_limit=False,
            )
        scans.append(
            ScanData(patterns.numpy().reshape(3, 3, window, window), cal, positions=pos.copy(), tilt_deg=angle)
        )
    return TiltSeries(scans, np.array([-30.0, 0.0, 30.0]), truth={"volume": volume})


@pytest.fixture(scope="session")
def tiny_hrtem_series():
    """4 tilts over 180°, 2 defoci (0, 50 Å) of the same two atoms in a 16³ volume, 0.5 Å."""
    import torch

    from napari_ptychotomo.data import DefocusSeries, TiltSeries
    from napari_ptychotomo.joint.forward import defocus_transfer, plane_wave_images
    from napari_ptychotomo.physics import fresnel_propagator, interaction_constant, wavelength

    energy, voxel, n, slices = 300e3, 0.5, 16, 4
    volume = _gaussian_volume((n, n, n), voxel, [(3.5, 3.0, 4.5), (4.0, 4.5, 3.0)])
    lam = float(wavelength(energy))
    prop = fresnel_propagator((n, n), voxel, lam, n / slices * voxel)
    defoci = np.array([0.0, 50.0])
    transfer = defocus_transfer((n, n), voxel, lam, defoci)
    angles = np.array([-90.0, -45.0, 0.0, 45.0])
    stacks = []
    for angle in angles:
        euler = torch.tensor(np.deg2rad([0.0, angle, 0.0]), dtype=torch.float32)
        with torch.no_grad():
            images = plane_wave_images(
                torch.as_tensor(volume),
                euler,
                torch.zeros(2),
                transfer,
                prop,
                slices,
                voxel,
                float(interaction_constant(energy)),
            )
        stacks.append(DefocusSeries(images.numpy(), defoci, voxel, energy, float(angle), defocus_reference="exit"))
    return TiltSeries(stacks, angles, truth={"volume": volume})
