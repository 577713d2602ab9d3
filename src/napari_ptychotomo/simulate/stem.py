"""4D-STEM scans with their ground truth.

Everything runs through the physics core shared with the reconstructions: the probe
(:func:`physics.make_probe`), the tilted Fresnel propagator (Sha et al. 2022, eq. 3), the
transmission exp(iσV) with complex V (Im V = absorption) and the batched multislice forward
model. Potentials come from :mod:`.potentials` (the field's slices from
:mod:`.field_potential`); the tilt geometry from :mod:`.series_geometry`. Tilt series of
these scans are :mod:`.stem_series`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from ..data import Calibration, ScanData
from ..engine import resolve_device
from ..physics import (
    forward_intensities,
    fresnel_propagator,
    interaction_constant,
    make_probe,
    transmission,
    wavelength,
)
from ..threads import cpu_threads
from .detector_sampling import average_to_coarse_pixels, check_sampling_factors, converged_oversampling, crop_and_bin
from .field_potential import _TAIL, _field_potential  # noqa: F401  (_TAIL re-exported)
from .scan_raster import pilot_raster, source_offsets, tilt_map
from .series_geometry import slicing
from .specimens import Specimen

__all__ = ["simulate_scan"]

# warn when more of the beam than this leaves the antialias (without absorption): at the
# detector's least oversampling (3) 117 Å of SrTiO3 at 300 keV loses 10 %, 82 Å of Au at
# 200 keV 17 %; at the converged oversampling both keep more than 99 %
_LOSS_WARNING = 0.05


def _batch(batch_size: int | None, window: tuple[int, int]) -> int:
    """Positions per batch: ``batch_size``, or by default as many as 576 patterns of 64×64
    pixels (the memory of the detector-grid simulator's old default)."""
    if batch_size is None:
        return max(1, (576 * 64 * 64) // (window[0] * window[1]))
    if int(batch_size) < 1:
        raise ValueError(f"batch_size = {batch_size!r}; expected a positive number of positions")
    return int(batch_size)


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
    batch_size: int | None = None,
    device: Any = "cpu",
    absorption: float = 0.0,
    num_threads: int | None = 1,
    oversampling: int | str = "auto",
    detector_binning: int = 1,
) -> ScanData:
    """One 4D-STEM scan of ``specimen`` by multislice.

    The scan raster (``scan_shape`` × ``scan_step`` Å) is centred on the specimen centre (y, x).
    Detector: ``detector_shape`` pixels of ``detector_sampling_mrad`` (default: the detector
    spans ±2 semi-angles); its real-space pixel is 1/(N Δk). The multislice runs on a finer
    grid (:mod:`.detector_sampling`): pixels ``oversampling`` times smaller and a window
    ``detector_binning`` (odd) times wider than the detector's 1/Δk when the probe needs
    more room; the far field is cropped to the detector and summed in binning × binning
    blocks. ``oversampling``: "auto" converges in the sampling: from the least f the
    detector needs (the smallest integer that puts the 2/3 antialias 1.25× beyond the
    detector's corner, 3 for a square detector) it refines f (3, 5, 8, 12, …) until no
    pattern at up to 3×3 positions spanning the scan changes by more than
    :data:`.detector_sampling.CONVERGED_DISTANCE` (Σ|ΔI/ΣI|) at the next f; thin or light
    specimens stop at 3-5, 117 Å of SrTiO3 at 300 keV at 12, 82 Å of Au at 200 keV at 18
    (the search costs one run of those few positions per f it tries, and up to (5/3)² ≈ 2.8
    times the memory of the run at the f it chooses, for the field at the next f). "detector" takes the detector's least f
    without the search (quicker, not converged for thick crystals of heavy atoms); an
    integer sets f (1 simulates on the detector's own grid, whose band limit cuts inside
    the detector). Slices: the cell's z extent in ``num_slices`` slices (or slices of
    ``slice_thickness`` Å).

    ``mistilt_mrad`` is the specimen tilt (θ_x, θ_y) in mrad in the propagator: one (2,)
    tilt, a tilt map ``(n_positions, 2)`` or ``(Ny, Nx, 2)`` in raster order, or a function
    of the true probe positions ``(n, 2)`` Å (y, x) in the specimen's frame returning
    ``(n, 2)`` mrad. Each pattern is computed with the tilt at its position. (Tilted atoms,
    as in :func:`two_grain_specimen`, need no map: the atom positions carry the tilt.)
    ``absorption`` sets Im V = absorption · Re V (a fraction; 0.05-0.1 mimics the loss to
    thermal diffuse scattering). ``dose`` e/Å² gives Poisson counts (dose × scan_step²
    electrons per position); ``source_size`` Å is the std of a Gaussian source (partial
    spatial coherence, incoherent sum over 9 probe shifts); ``position_jitter`` Å the std
    of random errors of the true probe positions. ``num_threads``: torch CPU threads while
    simulating (see :mod:`napari_ptychotomo.threads`; ``None`` keeps torch's setting). ``batch_size``:
    positions per batch (default: as many as fill about 2.4 M simulated pixels).

    Returns
    -------
    ScanData with intensities (Ny, Nx, Ky, Kx) float32 (unit incident intensity per pattern
    without ``dose``), nominal ``positions`` (n, 2) Å in the object frame, and ``truth``:
    positions (true, Å), mistilt_mrad (2,) (the mean of the map), tilt_map_mrad (n, 2),
    thickness, slice_thickness, num_slices, absorption, defocus, atoms (positions in the
    object frame, numbers), specimen_offset (z, y, x) Å (object frame − specimen frame);
    on the detector's real-space grid, as a reconstruction at the detector's sampling
    sees it: pixel_size (dy, dx) Å, potential (S, H, W) V·Å (real part; the simulated
    potential averaged over each detector pixel, see
    :func:`.detector_sampling.average_to_coarse_pixels`), probe (Ky, Kx); on the simulation
    grid: simulation_pixel_size, simulation_potential (S, f·H, f·W) V·Å (what the patterns
    were computed from), oversampling f (with "auto" also oversampling_search, the
    [(f, distance to the next f), …] it tried) and detector_binning b, intensity_kept (n,) the
    fraction of the incident beam left in the simulated wave (the rest scattered beyond the
    antialias, or was absorbed). Without absorption a warning says when more than 5 % was
    lost: the grid is then too coarse for the specimen (thick crystals of heavy atoms need
    a larger ``oversampling`` than the detector alone asks for).
    """
    dev = resolve_device(device)
    with cpu_threads(num_threads, dev):
        return _simulate_scan(
            specimen,
            dev,
            energy_eV,
            semiangle_mrad,
            defocus,
            aberrations,
            scan_shape,
            scan_step,
            detector_shape,
            detector_sampling_mrad,
            num_slices,
            slice_thickness,
            mistilt_mrad,
            dose,
            source_size,
            position_jitter,
            tilt_deg,
            parameterisation,
            seed,
            batch_size,
            float(absorption),
            oversampling,
            detector_binning,
        )


def _simulate_scan(
    specimen,
    dev,
    energy_eV,
    semiangle_mrad,
    defocus,
    aberrations,
    scan_shape,
    scan_step,
    detector_shape,
    detector_sampling_mrad,
    num_slices,
    slice_thickness,
    mistilt_mrad,
    dose,
    source_size,
    position_jitter,
    tilt_deg,
    parameterisation,
    seed,
    batch_size,
    absorption,
    oversampling,
    detector_binning,
) -> ScanData:
    rng = np.random.default_rng(seed)
    ky_n, kx_n = (int(v) for v in detector_shape)
    lam = float(wavelength(energy_eV))
    if detector_sampling_mrad is None:
        detector_sampling_mrad = 4.0 * semiangle_mrad / min(ky_n, kx_n)
    if not (np.isfinite(absorption) and absorption >= 0):
        raise ValueError(f"absorption = {absorption!r}; expected Im V / Re V ≥ 0 (e.g. 0.05)")
    calibration = Calibration(
        energy_eV=energy_eV,
        semiangle_mrad=semiangle_mrad,
        detector_sampling_mrad=float(detector_sampling_mrad),
        defocus=float(defocus),
        scan_step=float(scan_step),
        aberrations=dict(aberrations or {}),
    ).validate()
    factor, binning = check_sampling_factors(oversampling, detector_binning, (ky_n, kx_n))
    search: list = []
    if oversampling == "auto":
        pilot_shape, pilot_step, pilot_tilts = pilot_raster(mistilt_mrad, specimen, scan_shape, scan_step)

        def patterns_at(f: int) -> np.ndarray:
            # noise-free patterns at up to 3×3 positions spanning the scan, with their tilts
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return _simulate_scan(
                    specimen, dev, energy_eV, semiangle_mrad, defocus, aberrations, pilot_shape, pilot_step,
                    detector_shape, detector_sampling_mrad, num_slices, slice_thickness, pilot_tilts, None,
                    0.0, 0.0, tilt_deg, parameterisation, seed, batch_size, absorption, f, binning,
                ).intensities.reshape(-1, ky_n, kx_n)  # fmt: skip

        factor, search = converged_oversampling(patterns_at, factor, binning * max(ky_n, kx_n))
    dy, dx = calibration.pixel_size((ky_n, kx_n))  # the detector's real-space pixel
    fy, fx = dy / factor, dx / factor  # the simulation's pixel
    window = (factor * binning * ky_n, factor * binning * kx_n)
    ny_s, nx_s = (int(v) for v in scan_shape)
    # object field: the scan plus one probe window and a margin for jitter / source shifts,
    # a whole number of detector pixels so that the truth can be given on that grid too
    margin = 4.0 * (position_jitter + source_size) + 2.0
    height = int(math.ceil(((ny_s - 1) * scan_step + 2 * margin) / dy)) + binning * ky_n + 2
    width = int(math.ceil(((nx_s - 1) * scan_step + 2 * margin) / dx)) + binning * kx_n + 2
    field_centre = np.array([(height // 2) * dy, (width // 2) * dx])
    offset = np.array([0.0, *(field_centre - specimen.centre[1:])])
    atoms = specimen.positions + offset
    thickness = float(specimen.cell[0])
    n_slices, dz = slicing(thickness, num_slices, slice_thickness)
    atoms[:, 0] = np.clip(atoms[:, 0], 0.0, n_slices * dz * (1 - 1e-9))

    iy, ix = np.meshgrid(np.arange(ny_s) - (ny_s - 1) / 2, np.arange(nx_s) - (nx_s - 1) / 2, indexing="ij")
    nominal = np.stack([iy.ravel(), ix.ravel()], 1) * scan_step + field_centre
    true_positions = nominal.copy()
    if position_jitter > 0:
        true_positions += rng.normal(scale=position_jitter, size=nominal.shape)
    tilts = tilt_map(mistilt_mrad, true_positions - offset[1:], (ny_s, nx_s))
    uniform = bool(np.all(tilts == tilts[0]))

    potential = _field_potential(
        atoms, specimen.numbers, (factor * height, factor * width), (fy, fx), dz, n_slices, parameterisation, dev
    )
    complex_potential = potential * (1.0 + 1j * absorption) if absorption else potential
    trans = transmission(complex_potential, float(interaction_constant(energy_eV)), sampling=(fy, fx))
    probe = make_probe(window, (fy, fx), energy_eV, semiangle_mrad, calibration.aberration_dict(), device=dev)
    tilt_t = torch.as_tensor(tilts, dtype=torch.float32, device=dev)
    prop = fresnel_propagator(window, (fy, fx), lam, dz, tilt_t[0], device=dev) if uniform else None
    shifts, weights = source_offsets(source_size)
    out = torch.zeros((len(nominal), ky_n, kx_n), dtype=torch.float32, device=dev)
    kept = torch.zeros(len(nominal), dtype=torch.float32, device=dev)
    scale = torch.tensor([fy, fx], dtype=torch.float32, device=dev)
    batch = _batch(batch_size, window)
    with torch.no_grad():
        for start in range(0, len(nominal), batch):
            sl = slice(start, start + batch)
            p = prop if uniform else fresnel_propagator(window, (fy, fx), lam, dz, tilt_t[sl], device=dev)
            for shift, weight in zip(shifts, weights):
                pos_px = torch.as_tensor(true_positions[sl] + shift, dtype=torch.float32, device=dev) / scale
                full = forward_intensities(trans, probe[None], pos_px, p)
                kept[sl] += weight * full.sum(dim=(-2, -1))
                patterns = crop_and_bin(full, (ky_n, kx_n), binning)
                out[sl] += patterns if weight == 1 else weight * patterns
    intensities = out.cpu().numpy()
    lost = 1.0 - float(kept.mean())
    if not absorption and lost > _LOSS_WARNING:
        aa_mrad = 1e3 * lam * (2.0 / 3.0) / (2.0 * max(fy, fx))
        warnings.warn(
            f"{100 * lost:.1f} % of the beam scattered beyond the simulation's antialias "
            f"({aa_mrad:.0f} mrad, oversampling {factor}); the patterns are not converged for "
            "this specimen: raise oversampling until truth['intensity_kept'] stops changing",
            stacklevel=3,
        )
    if dose is not None:
        electrons = float(dose) * scan_step**2
        intensities = rng.poisson(np.clip(intensities, 0, None) * electrons).astype(np.float32)
    truth = {
        "positions": true_positions,
        "mistilt_mrad": tilts.mean(0),
        "tilt_map_mrad": tilts,
        "thickness": n_slices * dz,
        "slice_thickness": dz,
        "num_slices": n_slices,
        "potential": average_to_coarse_pixels(potential, factor).cpu().numpy(),
        "absorption": absorption,
        "pixel_size": (dy, dx),
        "defocus": float(defocus),
        "atoms": {"positions": atoms, "numbers": specimen.numbers.copy()},
        "probe": make_probe(
            (ky_n, kx_n), (dy, dx), energy_eV, semiangle_mrad, calibration.aberration_dict(), device=dev
        )
        .cpu()
        .numpy(),
        "dose": dose,
        "source_size": source_size,
        "position_jitter": position_jitter,
        "specimen_offset": offset,
        "simulation_pixel_size": (fy, fx),
        "simulation_potential": potential.cpu().numpy(),
        "oversampling": factor,
        "oversampling_search": search,
        "detector_binning": binning,
        "intensity_kept": kept.cpu().numpy(),
    }
    return ScanData(
        intensities=intensities.reshape(ny_s, nx_s, ky_n, kx_n),
        calibration=calibration,
        positions=nominal,
        tilt_deg=float(tilt_deg),
        scan_shape=(ny_s, nx_s),
        truth=truth,
    )
