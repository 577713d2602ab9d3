"""4D-STEM scans and tilt series, and plane-wave (HRTEM) tilt × defocus series, with truth.

Everything runs through the physics core shared with the reconstructions: the probe
(:func:`physics.make_probe`), the tilted Fresnel propagator (Sha et al. 2022, eq. 3), the
transmission exp(iσV) and the batched multislice forward model. Potentials come from
:mod:`.potentials`; tilt-series rotations follow DESIGN.md (R = R_z(ψ) R_y(θ) R_x(φ) about
the specimen centre, then projection along z, then in-plane shifts in Å).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..data import Calibration, DefocusSeries, ScanData, TiltSeries, Volume
from ..engine import resolve_device
from ..physics import (
    ctf, exit_wave, forward_intensities, fresnel_propagator, interaction_constant, make_probe,
    spatial_frequencies, transmission, wavelength,
)
from .potentials import slices_tensor
from .specimens import Specimen, fcc_nanoparticle
from .volume import potential_volume

__all__ = ["simulate_scan", "simulate_tilt_series", "simulate_hrtem_series", "default_sample"]


def _slicing(thickness: float, num_slices: int | None, slice_thickness: float | None):
    if slice_thickness is not None:
        num = max(1, int(math.ceil(thickness / slice_thickness - 1e-9)))
        return num, float(slice_thickness)
    num = 6 if num_slices is None else int(num_slices)
    if num < 1:
        raise ValueError(f"num_slices = {num_slices!r}; expected at least 1")
    return num, thickness / num


def _source_offsets(source_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Probe shifts (k, 2) Å and weights for a Gaussian source of std ``source_size`` Å
    (3×3 Gauss-Hermite quadrature of the incoherent average over source points)."""
    if source_size <= 0:
        return np.zeros((1, 2)), np.ones(1)
    nodes, weights = np.polynomial.hermite_e.hermegauss(3)
    yy, xx = np.meshgrid(nodes, nodes, indexing="ij")
    w = np.outer(weights, weights).ravel()
    return np.stack([yy.ravel(), xx.ravel()], 1) * source_size, w / w.sum()


def simulate_scan(
    specimen: Specimen,
    *,
    energy_eV: float = 300e3,
    semiangle_mrad: float = 25.0,
    defocus: float = 0.0,
    aberrations: dict[str, float] | None = None,
    scan_shape: tuple[int, int] = (24, 24),
    scan_step: float = 0.4,
    detector_shape: tuple[int, int] = (64, 64),
    detector_sampling_mrad: float | None = None,
    num_slices: int | None = 6,
    slice_thickness: float | None = None,
    mistilt_mrad: Any = (0.0, 0.0),
    dose: float | None = None,
    source_size: float = 0.0,
    position_jitter: float = 0.0,
    tilt_deg: float = 0.0,
    parameterisation: str = "lobato",
    seed: int = 0,
    batch_size: int = 128,
    device: Any = "cpu",
) -> ScanData:
    """One 4D-STEM scan of ``specimen`` by multislice.

    The scan raster (``scan_shape`` × ``scan_step`` Å) is centred on the specimen centre (y, x).
    Detector: ``detector_shape`` pixels of ``detector_sampling_mrad`` (default: the detector
    spans ±2 semi-angles); the object pixel size follows as 1/(N Δk). Slices: the cell's z
    extent in ``num_slices`` slices (or slices of ``slice_thickness`` Å). The specimen
    mistilt (θ_x, θ_y) mrad enters the propagator. ``dose`` e/Å² gives Poisson counts
    (dose × scan_step² electrons per position); ``source_size`` Å is the std of a Gaussian
    source (partial spatial coherence, incoherent sum over 9 probe shifts);
    ``position_jitter`` Å the std of random errors of the true probe positions.

    Returns
    -------
    ScanData with intensities (Ny, Nx, Ky, Kx) float32 (unit incident intensity per pattern
    without ``dose``), nominal ``positions`` (n, 2) Å in the object frame, and ``truth``:
    positions (true, Å), mistilt_mrad, thickness, slice_thickness, potential (S, H, W) V·Å,
    pixel_size (dy, dx) Å, defocus, atoms (positions in the object frame, numbers), probe.
    """
    dev = resolve_device(device)
    rng = np.random.default_rng(seed)
    ky_n, kx_n = (int(v) for v in detector_shape)
    lam = float(wavelength(energy_eV))
    if detector_sampling_mrad is None:
        detector_sampling_mrad = 4.0 * semiangle_mrad / min(ky_n, kx_n)
    calibration = Calibration(
        energy_eV=energy_eV, semiangle_mrad=semiangle_mrad,
        detector_sampling_mrad=float(detector_sampling_mrad), defocus=float(defocus),
        scan_step=float(scan_step), aberrations=dict(aberrations or {}),
    ).validate()
    dy, dx = calibration.pixel_size((ky_n, kx_n))
    ny_s, nx_s = (int(v) for v in scan_shape)
    # object field: the scan plus one probe window and a margin for jitter / source shifts
    margin = 4.0 * (position_jitter + source_size) + 2.0
    height = int(math.ceil(((ny_s - 1) * scan_step + 2 * margin) / dy)) + ky_n + 2
    width = int(math.ceil(((nx_s - 1) * scan_step + 2 * margin) / dx)) + kx_n + 2
    field_centre = np.array([(height // 2) * dy, (width // 2) * dx])
    offset = field_centre - specimen.centre[1:]
    atoms = specimen.positions + np.array([0.0, *offset])
    thickness = float(specimen.cell[0])
    n_slices, dz = _slicing(thickness, num_slices, slice_thickness)
    atoms[:, 0] = np.clip(atoms[:, 0], 0.0, n_slices * dz * (1 - 1e-9))
    potential = slices_tensor(
        atoms, specimen.numbers, (height, width), (dy, dx), dz, n_slices, parameterisation, dev
    )
    trans = transmission(potential, float(interaction_constant(energy_eV)), sampling=(dy, dx))
    prop = fresnel_propagator((ky_n, kx_n), (dy, dx), lam, dz, tuple(mistilt_mrad), device=dev)
    probe = make_probe((ky_n, kx_n), (dy, dx), energy_eV, semiangle_mrad,
                       calibration.aberration_dict(), device=dev)

    iy, ix = np.meshgrid(np.arange(ny_s) - (ny_s - 1) / 2, np.arange(nx_s) - (nx_s - 1) / 2, indexing="ij")
    nominal = np.stack([iy.ravel(), ix.ravel()], 1) * scan_step + field_centre
    true_positions = nominal + rng.normal(scale=position_jitter, size=nominal.shape) if position_jitter > 0 else nominal.copy()
    shifts, weights = _source_offsets(source_size)
    out = torch.zeros((len(nominal), ky_n, kx_n), dtype=torch.float32, device=dev)
    scale = torch.tensor([dy, dx], dtype=torch.float32, device=dev)
    with torch.no_grad():
        for shift, weight in zip(shifts, weights):
            pos_px = torch.as_tensor(true_positions + shift, dtype=torch.float32, device=dev) / scale
            for start in range(0, len(nominal), batch_size):
                sl = slice(start, start + batch_size)
                out[sl] += weight * forward_intensities(trans, probe[None], pos_px[sl], prop)
    intensities = out.cpu().numpy()
    if dose is not None:
        electrons = float(dose) * scan_step**2
        intensities = rng.poisson(np.clip(intensities, 0, None) * electrons).astype(np.float32)
    truth = {
        "positions": true_positions, "mistilt_mrad": np.asarray(mistilt_mrad, dtype=np.float64),
        "thickness": n_slices * dz, "slice_thickness": dz, "num_slices": n_slices,
        "potential": potential.cpu().numpy(), "pixel_size": (dy, dx), "defocus": float(defocus),
        "atoms": {"positions": atoms, "numbers": specimen.numbers.copy()},
        "probe": probe.cpu().numpy(), "dose": dose, "source_size": source_size,
        "position_jitter": position_jitter, "specimen_offset": np.array([0.0, *offset]),
    }
    return ScanData(
        intensities=intensities.reshape(ny_s, nx_s, ky_n, kx_n), calibration=calibration,
        positions=nominal, tilt_deg=float(tilt_deg), scan_shape=(ny_s, nx_s), truth=truth,
    )


def _tilt_geometry(specimen, angles_deg, euler_error_deg, tilt_axis_error_deg, shift_std, rng):
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    euler = np.zeros((len(angles), 3))
    euler[:, 1] = angles
    euler[:, 2] = tilt_axis_error_deg
    if euler_error_deg:
        euler += rng.normal(scale=euler_error_deg, size=euler.shape)
    shifts = rng.normal(scale=shift_std, size=(len(angles), 2)) if shift_std else np.zeros((len(angles), 2))
    # one slab thickness for all tilts, the specimen centre at its mid-depth
    radius = np.linalg.norm(specimen.positions - specimen.centre, axis=1).max() + 1.0
    return angles, euler, shifts, 2.0 * radius


def _rotated(specimen: Specimen, euler, shift, depth) -> Specimen:
    turned = specimen.rotate(euler)
    pos = turned.positions - turned.centre + np.array([depth / 2, 0.0, 0.0]) + np.array([0.0, *specimen.centre[1:]])
    pos[:, 1:] += shift
    return Specimen(pos, specimen.numbers, np.array([depth, *specimen.cell[1:]]), dict(specimen.info))


def _truth_volume(specimen: Specimen, voxel_size: float, parameterisation: str) -> Volume:
    shape = tuple(int(math.ceil(c / voxel_size)) + 1 for c in specimen.cell)
    data = potential_volume(
        specimen.positions, specimen.numbers, shape, voxel_size, parameterisation, cutoff=3.0
    )
    return Volume(data=data, voxel_size=voxel_size, units="V",
                  provenance={"source": "simulate", "parameterisation": parameterisation})


def simulate_tilt_series(
    specimen: Specimen,
    angles_deg: Any,
    *,
    euler_error_deg: float = 0.0,
    tilt_axis_error_deg: float = 0.0,
    shift_std: float = 0.0,
    voxel_size: float | None = None,
    seed: int = 0,
    **scan_options: Any,
) -> TiltSeries:
    """A 4D-STEM tilt series: at tilt k the atoms move to R_k·r about the specimen centre
    (R = R_z(ψ) R_y(θ) R_x(φ), θ = the nominal tilt plus errors), then shift by a random
    (y, x) of std ``shift_std`` Å, and are scanned by :func:`simulate_scan` (same options).

    ``truth``: euler_deg (n, 3) as (φ, θ, ψ), shifts (n, 2) Å, volume (the unrotated
    potential, :class:`Volume` in V with voxel ``voxel_size``, default the object pixel),
    atoms (positions (z, y, x) in the volume frame, numbers).
    """
    rng = np.random.default_rng(seed)
    angles, euler, shifts, depth = _tilt_geometry(
        specimen, angles_deg, euler_error_deg, tilt_axis_error_deg, shift_std, rng
    )
    scans = []
    for k in range(len(angles)):
        options = dict(scan_options, seed=seed + 1000 * (k + 1), tilt_deg=float(angles[k]))
        scans.append(simulate_scan(_rotated(specimen, euler[k], shifts[k], depth), **options))
    pixel = scans[0].truth["pixel_size"][0]
    volume = _truth_volume(specimen, voxel_size or pixel, scan_options.get("parameterisation", "lobato"))
    truth = {"euler_deg": euler, "shifts": shifts, "volume": volume,
             "atoms": {"positions": specimen.positions.copy(), "numbers": specimen.numbers.copy()}}
    return TiltSeries(scans=scans, angles_deg=angles, truth=truth)


def simulate_hrtem_series(
    specimen: Specimen,
    angles_deg: Any,
    defocus_values: Any,
    *,
    energy_eV: float = 300e3,
    pixel_size: float = 0.2,
    num_slices: int | None = None,
    slice_thickness: float | None = 2.0,
    dose: float | None = None,
    euler_error_deg: float = 0.0,
    shift_std: float = 0.0,
    parameterisation: str = "lobato",
    seed: int = 0,
    device: Any = "cpu",
) -> TiltSeries:
    """Plane-wave tilt × defocus series: a unit plane wave through the rotated specimen
    (multislice), then the CTF exp(−iχ) with C10 = −defocus for each defocus (Å, positive
    underfocus), |ψ|², and Poisson noise at ``dose`` e/Å² (images stay normalised to a unit
    incident beam). Returns a TiltSeries of :class:`DefocusSeries` with the truth of
    :func:`simulate_tilt_series`."""
    dev = resolve_device(device)
    rng = np.random.default_rng(seed)
    angles, euler, shifts, depth = _tilt_geometry(specimen, angles_deg, euler_error_deg, 0.0, shift_std, rng)
    defoci = np.asarray(defocus_values, dtype=np.float64).ravel()
    lam = float(wavelength(energy_eV))
    shape = tuple(int(math.ceil(c / pixel_size)) for c in specimen.cell[1:])
    ky, kx = spatial_frequencies(shape, pixel_size, device=dev)
    n_slices, dz = _slicing(depth, num_slices, slice_thickness)
    prop = fresnel_propagator(shape, pixel_size, lam, dz, device=dev)
    sigma = float(interaction_constant(energy_eV))
    series = []
    for k in range(len(angles)):
        turned = _rotated(specimen, euler[k], shifts[k], depth)
        atoms = turned.positions.copy()
        atoms[:, 0] = np.clip(atoms[:, 0], 0.0, n_slices * dz * (1 - 1e-9))
        pot = slices_tensor(atoms, turned.numbers, shape, pixel_size, dz, n_slices, parameterisation, dev)
        with torch.no_grad():
            wave = exit_wave(transmission(pot, sigma), torch.ones(shape, dtype=torch.complex64, device=dev), prop)
            spectrum = torch.fft.fft2(wave)
            images = torch.stack([
                torch.abs(torch.fft.ifft2(spectrum * ctf(ky, kx, lam, {"C10": -df}))) ** 2 for df in defoci
            ]).cpu().numpy()
        if dose is not None:
            electrons = float(dose) * pixel_size**2
            images = (rng.poisson(images * electrons) / electrons).astype(np.float32)
        series.append(DefocusSeries(images=images.astype(np.float32), defocus=defoci, pixel_size=pixel_size,
                                    energy_eV=energy_eV, tilt_deg=float(angles[k])))
    truth = {"euler_deg": euler, "shifts": shifts,
             "volume": _truth_volume(specimen, pixel_size, parameterisation),
             "atoms": {"positions": specimen.positions.copy(), "numbers": specimen.numbers.copy()},
             "slice_thickness": dz, "num_slices": n_slices}
    return TiltSeries(scans=series, angles_deg=angles, truth=truth)


def default_sample(seed: int = 0) -> TiltSeries:
    """A small, quick 4D-STEM tilt series: a ~1.6 nm Pt cuboctahedron, 5 tilts over ±60°,
    16×16 scan at 0.5 Å, 64×64 detector at 300 keV, 4 slices, dose 1e5 e/Å²."""
    particle = fcc_nanoparticle("Pt", size=16.0, shape="cuboctahedron", vacuum=2.0)
    return simulate_tilt_series(
        particle, np.linspace(-60, 60, 5), shift_std=0.5, seed=seed,
        scan_shape=(16, 16), scan_step=0.5, detector_shape=(64, 64), num_slices=4, dose=1e5,
    )
