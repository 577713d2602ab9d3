"""Plane-wave (HRTEM) tilt × defocus series with their ground truth (Ren et al. 2018 data).

A unit plane wave goes through the rotated specimen by multislice (the physics core's
transmission exp(iσV), Im V = absorption, and Fresnel propagator), then the objective lens
images it at each defocus: :func:`~napari_ptychotomo.physics.transfer.objective_transfer`
(aperture, aberrations, C10 = −defocus, partial-coherence envelopes), the same function the
plane-wave engine uses, with the defocus moved to the slab's exit surface by
:meth:`~napari_ptychotomo.data.DefocusSeries.exit_defocus`, as the engine moves it to its box's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..data import DefocusSeries, TiltSeries
from ..engine import resolve_device
from ..physics import exit_wave, fresnel_propagator, interaction_constant, transmission, wavelength
from ..physics.transfer import objective_transfer
from ..threads import cpu_threads
from .potentials import slices_tensor
from .series_geometry import rotated, slicing, tilt_geometry, truth_volume
from .specimens import Specimen, core_shell_particle

__all__ = ["simulate_hrtem_series", "default_hrtem_sample"]


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
    absorption: float = 0.0,
    num_threads: int | None = 1,
    aperture_mrad: float | None = None,
    aberrations: dict[str, float] | None = None,
    focal_spread: float = 0.0,
    illumination_semiangle_mrad: float = 0.0,
    defocus_reference: str = "centre",
    focal_spread_samples: int = 0,
) -> TiltSeries:
    """Plane-wave tilt × defocus series of ``specimen`` (a :class:`Specimen`).

    At each tilt the atoms are turned as in :func:`simulate_tilt_series`; a unit plane wave
    passes the slices (``slice_thickness`` Å, or ``num_slices``) over the specimen's (y, x)
    cell at ``pixel_size`` Å (periodic: leave vacuum); the exit wave is imaged through
    exp(−iχ) with C10 = −defocus for each of ``defocus_values`` (Å, positive underfocus),
    |ψ|², and Poisson noise at ``dose`` e/Å² (images stay normalised to a unit incident
    beam). ``absorption`` sets Im V = absorption · Re V. ``num_threads`` as in
    :func:`simulate_scan`.

    The microscope's optics are those of :class:`DefocusSeries` and are stored with each
    tilt: ``aperture_mrad`` (objective aperture semi-angle, mrad), ``aberrations`` (C12,
    phi12, C30, ... in Å and rad), ``focal_spread`` (standard deviation of the defocus, Å),
    ``illumination_semiangle_mrad`` (1/e half-width of the beam divergence, mrad) and
    ``defocus_reference`` (``"centre"``: defocus from the rotation centre's plane;
    ``"exit"``: from the slab's exit surface). ``focal_spread_samples`` > 0 replaces the
    temporal envelope by the exact incoherent sum of images over that many Gauss–Hermite
    defocus samples (a check of the envelope approximation; the divergence stays an
    envelope). The defocus phase varies fast at high k, so use tens of samples (61 converge
    to 1e-4 for 50 Å at 0.25 Å pixels, 300 keV).

    Returns a TiltSeries of :class:`DefocusSeries` (images (n_defocus, ny, nx) float32) with
    ``truth``: euler_deg (n, 3), shifts (n, 2) Å, volume (V), atoms, slice_thickness,
    num_slices, absorption.
    """
    dev = resolve_device(device)
    if not (np.isfinite(absorption) and absorption >= 0):
        raise ValueError(f"absorption = {absorption!r}; expected Im V / Re V ≥ 0 (e.g. 0.05)")
    rng = np.random.default_rng(seed)
    angles, euler, shifts, depth = tilt_geometry(specimen, angles_deg, euler_error_deg, 0.0, shift_std, rng)
    defoci = np.asarray(defocus_values, dtype=np.float64).ravel()
    if defoci.size == 0 or not np.all(np.isfinite(defoci)):
        raise ValueError(f"defocus_values = {defocus_values!r}; expected finite defoci in Å")
    optics = DefocusSeries(
        np.zeros((len(defoci), 1, 1), np.float32),
        defoci,
        pixel_size,
        energy_eV,
        aperture_mrad=aperture_mrad,
        aberrations=dict(aberrations or {}),
        focal_spread=focal_spread,
        illumination_semiangle_mrad=illumination_semiangle_mrad,
        defocus_reference=defocus_reference,
    ).validate()
    lam = float(wavelength(energy_eV))
    shape = tuple(int(math.ceil(c / pixel_size)) for c in specimen.cell[1:])
    n_slices, dz = slicing(depth, num_slices, slice_thickness)
    sigma = float(interaction_constant(energy_eV))
    series = []
    with cpu_threads(num_threads, dev), torch.no_grad():
        prop = fresnel_propagator(shape, pixel_size, lam, dz, device=dev)
        # the rotation centre sits at mid-depth of the slab, whose exit is n_slices·dz deep
        image = _imaging(optics, shape, pixel_size, n_slices * dz - depth / 2, focal_spread_samples, dev)
        for k in range(len(angles)):
            turned = rotated(specimen, euler[k], shifts[k], depth)
            atoms = turned.positions.copy()
            atoms[:, 0] = np.clip(atoms[:, 0], 0.0, n_slices * dz * (1 - 1e-9))
            pot = slices_tensor(atoms, turned.numbers, shape, pixel_size, dz, n_slices, parameterisation, dev)
            if absorption:
                pot = pot * (1.0 + 1j * float(absorption))
            wave = exit_wave(transmission(pot, sigma), torch.ones(shape, dtype=torch.complex64, device=dev), prop)
            images = image(wave).cpu().numpy()
            if dose is not None:
                electrons = float(dose) * pixel_size**2
                images = rng.poisson(np.clip(images, 0, None) * electrons) / electrons
            series.append(
                dataclasses.replace(
                    optics,
                    images=images.astype(np.float32),
                    aberrations=dict(optics.aberrations),
                    tilt_deg=float(angles[k]),
                )
            )
        volume = truth_volume(specimen, pixel_size, parameterisation, absorption)
    truth = {
        "euler_deg": euler,
        "shifts": shifts,
        "volume": volume,
        "atoms": {"positions": specimen.positions.copy(), "numbers": specimen.numbers.copy()},
        "slice_thickness": dz,
        "num_slices": n_slices,
        "absorption": float(absorption),
    }
    return TiltSeries(scans=series, angles_deg=angles, truth=truth)


def _imaging(
    optics: DefocusSeries, shape, pixel_size: float, centre_to_exit: float, focal_spread_samples: int, device
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``wave (ny, nx)`` at the slab's exit → images ``(D, ny, nx)`` through the objective.

    With ``focal_spread_samples`` the focal spread is an incoherent sum over defoci
    Δf + √2·Δ·x_j weighted by w_j/√π (Gauss–Hermite nodes x_j, weights w_j: the Gaussian
    average of standard deviation Δ), else the temporal envelope.
    """
    lam = float(wavelength(optics.energy_eV))
    defocus = optics.exit_defocus(centre_to_exit)
    keywords = optics.optics()
    if focal_spread_samples and optics.focal_spread:
        nodes, weights = np.polynomial.hermite.hermgauss(int(focal_spread_samples))
        spread = keywords.pop("focal_spread")
        offsets = np.sqrt(2.0) * spread * nodes
        sampled = (defocus[:, None] + offsets[None]).ravel()
        transfer = objective_transfer(shape, pixel_size, lam, sampled, device=device, **keywords)
        w = torch.as_tensor(weights / np.sqrt(np.pi), dtype=torch.float32, device=device)

        def image(wave):
            out = torch.abs(torch.fft.ifft2(torch.fft.fft2(wave) * transfer)) ** 2
            return (out.reshape(len(defocus), len(nodes), *shape) * w[:, None, None]).sum(1)

        return image
    transfer = objective_transfer(shape, pixel_size, lam, defocus, device=device, **keywords)
    return lambda wave: torch.abs(torch.fft.ifft2(torch.fft.fft2(wave) * transfer)) ** 2


def default_hrtem_sample(seed: int = 0) -> TiltSeries:
    """A small, quick plane-wave tilt × defocus series for the HRTEM demo.

    A Si/SiO₂-like particle (a diamond-Si core of radius 5 Å in a 3 Å amorphous SiO₂-like
    shell), 12 tilts over a 180° range (−90° to 75° in 15° steps), 3 defoci (−100, 0,
    +100 Å) per tilt, 300 keV, 0.25 Å pixels, 2 Å slices, absorption 0.05, dose 1e4 e/Å².
    """
    particle = core_shell_particle(
        "Si",
        core_radius=5.0,
        shell_thickness=3.0,
        shell_elements=("Si", "O", "O"),
        shell_density=0.066,
        min_distance=1.6,
        seed=seed,
        vacuum=4.0,
    )
    side = float(particle.cell.max())  # a cubic box: square images, room at every tilt
    particle = Specimen(
        particle.positions + (side - particle.cell) / 2,
        particle.numbers,
        np.full(3, side),
        dict(particle.info, name="Si@SiO2 core-shell"),
    )
    return simulate_hrtem_series(
        particle,
        np.linspace(-90.0, 90.0, 12, endpoint=False),
        [-100.0, 0.0, 100.0],
        pixel_size=0.25,
        slice_thickness=2.0,
        dose=1e4,
        absorption=0.05,
        shift_std=0.3,
        seed=seed,
    )
