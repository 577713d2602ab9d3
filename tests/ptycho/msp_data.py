"""Synthetic 4D-STEM scans for the ptychography tests, made with the physics core.

The specimen is SrTiO3-like [001]: atomic planes every c/2 = 1.9525 Å along the beam,
SrO (Sr at (0, 0), O at (½, ½)) and TiO2 (Ti at (½, ½), O at (½, 0), (0, ½)) alternating.
Each atom is a Gaussian projected potential (σ = 0.35 Å; peaks Sr 250, Ti 180, O 70 V·Å),
not a tabulated one: what the tests need is a known potential. Mistilt is made the way it
exists in a crystal, by moving the atoms of the plane at depth z to (x, y) + z·tan θ, and
the data are propagated plane by plane with an *untilted* propagator, so the reconstruction
(a few thick slices with the tilted propagator) is not the model that made the data. The
physics core used here is verified independently against abTEM (tests/physics).
"""

from __future__ import annotations

import numpy as np
import torch

from napari_ptychotomo.data import Calibration, ScanData
from napari_ptychotomo.physics import (
    forward_intensities,
    fresnel_propagator,
    interaction_constant,
    make_probe,
    transmission,
    wavelength,
)

LATTICE = 3.905  # Å
PLANE = LATTICE / 2
PEAKS = {"Sr": 250.0, "Ti": 180.0, "O": 70.0}  # V·Å
WIDTH = 0.35  # Å
LAYERS = (
    (("Sr", 0.0, 0.0), ("O", 0.5, 0.5)),
    (("Ti", 0.5, 0.5), ("O", 0.5, 0.0), ("O", 0.0, 0.5)),
)


def _plane_potential(shape, pixel_size, origin, layer, shift_x, shift_y):
    """Projected potential (V·Å) of one atomic plane; shifts (Å) may be arrays over x."""
    ny, nx = shape
    y = origin[0] + np.arange(ny) * pixel_size
    x = origin[1] + np.arange(nx) * pixel_size
    out = np.zeros(shape)
    cells_y = np.arange(np.floor(y[0] / LATTICE) - 1, np.ceil(y[-1] / LATTICE) + 2)
    cells_x = np.arange(np.floor(x[0] / LATTICE) - 1, np.ceil(x[-1] / LATTICE) + 2)
    for name, fy, fx in layer:
        ay = ((cells_y + fy) * LATTICE)[:, None] + 0 * cells_x[None, :]
        ax = 0 * cells_y[:, None] + ((cells_x + fx) * LATTICE)[None, :]
        ax, ay = ax.ravel(), ay.ravel()
        ax = ax + shift_x(ax)
        ay = ay + shift_y(ay)
        gy = np.exp(-((y[:, None] - ay[None, :]) ** 2) / (2 * WIDTH**2))  # (ny, atoms)
        gx = np.exp(-((x[:, None] - ax[None, :]) ** 2) / (2 * WIDTH**2))  # (nx, atoms)
        out += PEAKS[name] * gy @ gx.T
    return out


def make_scan(
    scan_shape=(16, 16),
    step=0.4,
    detector=32,
    mrad_per_px=3.2,
    energy=300e3,
    semiangle=25.0,
    defocus=40.0,
    planes=40,
    mistilt=(4.0, 0.0),
    grain_tilts=None,
    dose=1e5,
    source_fwhm=0.0,
    position_error=0.0,
    aberrations=None,
    seed=0,
):
    """A noisy 4D-STEM scan of the SrTiO3-like slab with its ground truth.

    ``mistilt`` (θx, θy) mrad; ``grain_tilts`` (left, right) θx mrad of a two-grain
    specimen split at the middle of the scan (overrides ``mistilt``); ``dose`` e/Å²
    (Poisson noise; ``None`` for none); ``source_fwhm`` Å, a Gaussian source size making
    the data partially coherent; ``position_error`` Å RMS error of the positions given
    with the scan (the data are taken at the raster); ``aberrations`` further C_nm / phi_nm
    of the probe (e.g. ``{"C12": 50, "phi12": 0.3}``).
    """
    rng = np.random.default_rng(seed)
    cal = Calibration(
        energy_eV=energy, semiangle_mrad=semiangle, detector_sampling_mrad=mrad_per_px, defocus=defocus, scan_step=step
    )
    dx = cal.pixel_size((detector, detector))[0]
    ny, nx = scan_shape
    yy, xx = np.meshgrid(np.arange(ny) * step, np.arange(nx) * step, indexing="ij")
    raster = np.stack([yy.ravel(), xx.ravel()], axis=1) + 0.3 * LATTICE  # start off a column
    margin = detector // 2 + 6
    shape = (
        int(np.ceil((raster[:, 0].max() - raster[:, 0].min()) / dx)) + 2 * margin,
        int(np.ceil((raster[:, 1].max() - raster[:, 1].min()) / dx)) + 2 * margin,
    )
    origin = raster.min(axis=0) - margin * dx
    split = float(np.mean(raster[:, 1]))

    slices = []
    for j in range(planes):
        z = (j + 0.5) * PLANE
        if grain_tilts is not None:
            left, right = grain_tilts

            def sx(ax, z=z, left=left, right=right):
                return z * np.tan(np.where(ax < split, left, right) * 1e-3)

            def sy(ay):
                return 0.0 * ay
        else:

            def sx(ax, z=z):
                return z * np.tan(mistilt[0] * 1e-3) + 0 * ax

            def sy(ay, z=z):
                return z * np.tan(mistilt[1] * 1e-3) + 0 * ay

        slices.append(_plane_potential(shape, dx, origin, LAYERS[j % 2], sx, sy))
    potential = np.stack(slices)
    # the projection along the atomic columns: every plane's atoms at their entrance-surface
    # (x, y); this is what a tilt-corrected reconstruction's summed slices should show
    column_projection = sum(
        _plane_potential(shape, dx, origin, LAYERS[j % 2], lambda a: 0 * a, lambda a: 0 * a) for j in range(2)
    ) * (planes / 2)

    sigma = interaction_constant(energy)
    t = transmission(torch.tensor(potential, dtype=torch.float32), sigma)
    probe = make_probe((detector, detector), dx, energy, semiangle, {**(aberrations or {}), "C10": -defocus})
    prop = fresnel_propagator((detector, detector), dx, wavelength(energy), PLANE)
    centres = torch.tensor((raster - origin) / dx, dtype=torch.float32)
    with torch.no_grad():
        if source_fwhm > 0:
            s = source_fwhm / 2.355 / dx
            offsets = [(a, b) for a in (-1.5, -0.5, 0.5, 1.5) for b in (-1.5, -0.5, 0.5, 1.5)]
            weights = np.array([np.exp(-(a * a + b * b) * 0.5) for a, b in offsets])
            weights /= weights.sum()
            intensities = sum(
                w * forward_intensities(t, probe[None], centres + torch.tensor([a * s * 0.8, b * s * 0.8]), prop)
                for w, (a, b) in zip(weights, offsets)
            )
        else:
            intensities = forward_intensities(t, probe[None], centres, prop)
    intensities = intensities.numpy().astype(np.float64)
    if dose is not None:
        counts = dose * step * step
        intensities = rng.poisson(intensities * counts).astype(np.float32)
    given = raster + rng.normal(scale=position_error / np.sqrt(2), size=raster.shape) if position_error else raster
    truth = {
        "mistilt_mrad": np.asarray(mistilt, dtype=float) if grain_tilts is None else None,
        "grain_tilts_mrad": grain_tilts,
        "grain_split_x": split,
        "thickness": planes * PLANE,
        "positions": raster,
        "projected_potential": potential.sum(0),
        "column_projection": column_projection,
        "potential_origin": origin,
        "pixel_size": dx,
        "defocus": defocus,
    }
    return ScanData(
        intensities=intensities.reshape(ny, nx, detector, detector).astype(np.float32),
        calibration=cal,
        positions=given,
        truth=truth,
    )


def pearson_over_scan(result, scan, border=0.0, key="column_projection"):
    """Pearson r between the reconstructed summed phase and the true projected potential
    along the atomic columns (``key``) over the scanned area (shrunk by ``border`` Å), on
    the reconstruction's pixels."""
    truth = scan.truth
    dx = result.pixel_size
    origin_rec = np.asarray(result.provenance["object_origin"])
    offset = np.round((origin_rec - truth["potential_origin"]) / dx).astype(int)
    raster = truth["positions"]
    lo = np.ceil((raster.min(0) + border - origin_rec) / dx).astype(int)
    hi = np.floor((raster.max(0) - border - origin_rec) / dx).astype(int)
    phase = result.phase()[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1]
    true = truth[key][lo[0] + offset[0] : hi[0] + 1 + offset[0], lo[1] + offset[1] : hi[1] + 1 + offset[1]]
    return float(np.corrcoef(phase.ravel(), true.ravel())[0, 1])
