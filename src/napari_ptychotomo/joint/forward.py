"""Forward models of the end-to-end step: one tilt of a complex potential volume.

Both modes share the first half (You et al. 2025, eq. 14): rotate the volume by the tilt's
Euler angles (:func:`~napari_ptychotomo.tomo.rotate_volume`, docs/conventions.md), bin it
along the beam into slices (:func:`~napari_ptychotomo.tomo.bin_along_beam`) and turn the
projected slices into transmission functions exp(iσV) (:func:`~napari_ptychotomo.physics.transmission`).

* 4D-STEM (You et al. eq. 14-15): crop a patch per probe position, mixed-state multislice,
  far-field intensity summed over the probe modes
  (:func:`~napari_ptychotomo.physics.forward_intensities`).
* Plane wave (Ren et al. 2018): a unit plane wave through all slices
  (:func:`~napari_ptychotomo.physics.exit_wave`), shifted, then imaged through the
  objective lens at each defocus (:func:`~napari_ptychotomo.physics.transfer.objective_transfer`:
  aperture, aberrations, focal-spread and illumination-divergence envelopes). The exit
  wave sits at the exit surface of the volume's box; :func:`series_transfer` turns a
  series' defocus (measured from the rotation centre or the exit surface, as the series
  says) into defocus from that surface.

The alignment shift t (Å, content moves by +t after projection) enters the 4D-STEM model
as probe positions moved by −t, and the plane-wave model as a Fourier shift of the exit wave.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from ..data import DefocusSeries
from ..physics import exit_wave, forward_intensities, transmission
from ..physics import wavelength as electron_wavelength
from ..physics.transfer import objective_transfer
from ..tomo.rotation import bin_along_beam, rotate_volume

__all__ = [
    "tilt_slices",
    "stage_axis_slices",
    "stem_intensities",
    "defocus_transfer",
    "series_transfer",
    "focal_spread_weights",
    "plane_wave_images",
    "shift_ramp",
]


def tilt_slices(
    volume: torch.Tensor,
    euler_rad: torch.Tensor,
    num_slices: int,
    voxel_size: float,
    stage_axis_matrix: bool = False,
) -> torch.Tensor:
    """Projected potential slices ``(num_slices, ny, nx)`` in V·Å of the rotated volume
    (``(B, num_slices, ny, nx)`` for ``euler_rad`` of shape ``(B, 3)``).

    ``volume`` is ``(nz, ny, nx)`` complex potential in V with cubic voxels of
    ``voxel_size`` Å; ``euler_rad`` ``(3,)`` = (φ, θ, ψ) in rad. With
    ``stage_axis_matrix``, fixed angles about the stage axis alone (φ = ψ = 0, no gradient
    wanted) take :func:`stage_axis_slices` (equal to 1e-5, 1.8× faster).
    """
    fixed = stage_axis_matrix and not euler_rad.requires_grad and bool(torch.all(euler_rad[..., [0, 2]] == 0))
    if fixed:  # the voxel size is folded into the cached map: no pass over the slices for it
        slices = stage_axis_slices(volume, euler_rad[..., 1].reshape(-1).tolist(), num_slices, scale=voxel_size)
        return slices if euler_rad.dim() > 1 else slices[0]
    return bin_along_beam(rotate_volume(volume, euler_rad), num_slices) * voxel_size


def stage_axis_slices(volume: torch.Tensor, theta_rad: Any, num_slices: int, scale: float = 1.0) -> torch.Tensor:
    """``bin_along_beam(rotate_volume(volume, (0, θ, 0)), num_slices)`` (V·voxel) as one
    sparse matrix product: about the tilt axis the trilinear resampling has y weights 0 or
    1, so rotation and binning are one fixed linear map of each (z, x) plane, the same for
    every y (4 bilinear taps per voxel, summed into its slab). Built once per angle.

    ``theta_rad`` one angle, or a sequence of B angles for ``(B, num_slices, ny, nx)``:
    their maps are stacked into one matrix, so the volume is rearranged once and the
    backward pass writes its gradient once, not once per angle. ``scale`` multiplies the
    map (the voxel size in Å gives V·Å).
    """
    nz, ny, nx = volume.shape
    thetas = [float(t) for t in np.atleast_1d(theta_rad)]
    matrix = _stage_axis_stack(nz, nx, tuple(thetas), int(num_slices), str(volume.device), float(scale))
    planes = torch.view_as_real(volume.to(torch.complex64)).permute(0, 2, 1, 3).reshape(nz * nx, ny * 2)
    out = torch.sparse.mm(matrix, planes).reshape(len(thetas), num_slices, nx, ny, 2).permute(0, 1, 3, 2, 4)
    out = torch.view_as_complex(out.contiguous())
    return out if np.ndim(theta_rad) else out[0]


@functools.lru_cache(maxsize=16)
def _stage_axis_stack(
    nz: int, nx: int, thetas: tuple[float, ...], num_slices: int, device: str, scale: float = 1.0
) -> torch.Tensor:
    """The maps of :func:`_stage_axis_matrix` for several angles, one above the other,
    times ``scale``."""
    stack = torch.cat([_stage_axis_matrix(nz, nx, t, num_slices, device) for t in thetas]).coalesce()
    return stack if scale == 1.0 else (stack * scale).coalesce()


@functools.lru_cache(maxsize=64)
def _stage_axis_matrix(nz: int, nx: int, theta: float, num_slices: int, device: str) -> torch.Tensor:
    """Sparse ``(num_slices·nx, nz·nx)`` map of a (z, x) plane to its rotated, binned slabs:
    output(r') = input(R_yᵀ r') about the centre ((n − 1)/2, as rotate_volume), bilinear
    with zeros outside; R_yᵀ (x, z) = (x cos θ − z sin θ, x sin θ + z cos θ)."""
    if nz % num_slices:
        bin_along_beam(torch.zeros(nz, 1, 1), num_slices)  # raises the explanatory error
    z = torch.arange(nz, dtype=torch.float64)[:, None].expand(nz, nx).reshape(-1)
    x = torch.arange(nx, dtype=torch.float64)[None, :].expand(nz, nx).reshape(-1)
    hz, hx = (nz - 1) / 2, (nx - 1) / 2
    cos, sin = math.cos(theta), math.sin(theta)
    xs = cos * (x - hx) - sin * (z - hz) + hx
    zs = sin * (x - hx) + cos * (z - hz) + hz
    row = (z.long() // (nz // num_slices)) * nx + x.long()
    x0, z0 = torch.floor(xs), torch.floor(zs)
    rows, cols, weights = [], [], []
    for dz, wz in ((0, 1 - (zs - z0)), (1, zs - z0)):
        for dx, wx in ((0, 1 - (xs - x0)), (1, xs - x0)):
            zi, xi = z0.long() + dz, x0.long() + dx
            inside = (zi >= 0) & (zi < nz) & (xi >= 0) & (xi < nx)
            rows.append(row[inside])
            cols.append((zi * nx + xi)[inside])
            weights.append((wz * wx)[inside])
    index = torch.stack([torch.cat(rows), torch.cat(cols)])
    matrix = torch.sparse_coo_tensor(
        index, torch.cat(weights).to(torch.float32), (num_slices * nx, nz * nx), check_invariants=False
    )
    return matrix.coalesce().to(device)


def stem_intensities(
    volume: torch.Tensor,
    euler_rad: torch.Tensor,
    shift: torch.Tensor,
    probes: torch.Tensor,
    positions_px: torch.Tensor,
    propagator: torch.Tensor,
    num_slices: int,
    voxel_size: float,
    sigma: float,
    band_limit: bool = True,
) -> torch.Tensor:
    """Model diffraction intensities ``(B, n, n)``, centred, of one tilt (You et al. eq. 15).

    Parameters
    ----------
    volume : (nz, ny, nx) complex potential in V.
    euler_rad : (3,) Euler angles (φ, θ, ψ) in rad.
    shift : (2,) alignment shift (y, x) in voxels (content moves by +shift).
    probes : (M, n, n) probe modes in real space, centred at pixel n//2.
    positions_px : (B, 2) probe centres (y, x) in voxels of the rotated volume's lateral grid.
    propagator : (n, n) Fresnel propagator over one slice (fftfreq order), band-limited
        as ``band_limit`` says.
    num_slices, voxel_size, sigma : binning, voxel size in Å, interaction constant
        in rad/(V·Å).
    band_limit : cut the transmission at 2/3 of Nyquist (see ``JointParams.band_limit``).
    """
    slices = tilt_slices(volume, euler_rad, num_slices, voxel_size)
    trans = transmission(slices, sigma, band_limit=band_limit)
    return forward_intensities(trans, probes, positions_px - shift, propagator)


def defocus_transfer(
    shape: tuple[int, int],
    voxel_size: float,
    wavelength: float,
    defocus,
    aperture_mrad: float | None = None,
    device=None,
    *,
    aberrations: dict[str, float] | None = None,
    focal_spread: float = 0.0,
    illumination_semiangle_mrad: float = 0.0,
) -> torch.Tensor:
    """Objective-lens transfer functions ``(D, ny, nx)`` (fftfreq order) for each defocus in
    Å (positive = underfocus) of the wave's plane: aperture (mrad), aberrations (Å, rad),
    focal spread (Å, standard deviation) and illumination semi-angle (mrad, 1/e half-width)
    as :func:`~napari_ptychotomo.physics.transfer.objective_transfer`."""
    return objective_transfer(
        shape,
        voxel_size,
        wavelength,
        defocus,
        aperture_mrad=aperture_mrad,
        aberrations=aberrations,
        focal_spread=focal_spread,
        illumination_semiangle_mrad=illumination_semiangle_mrad,
        device=device,
    )


def series_transfer(
    series: DefocusSeries,
    shape: tuple[int, int],
    voxel_size: float,
    box_depth: float,
    images=slice(None),
    device=None,
    focal_spread_samples: int = 0,
) -> torch.Tensor:
    """Transfer functions ``(D, ny, nx)`` of a series' images (``images`` indexes them) for
    a wave at the exit surface of a box ``box_depth`` Å deep whose centre is the rotation
    centre: the series' defocus is moved to that surface, its optics applied.

    With ``focal_spread_samples`` = M > 0 the focal spread is not an envelope but M defoci
    per image, Δf + √2·Δ·x_j at the Gauss–Hermite nodes x_j: ``(D·M, ny, nx)``, to be summed
    as intensities with :func:`focal_spread_weights` (exact for any object)."""
    defocus = np.asarray(series.exit_defocus(box_depth / 2.0))[images]
    optics = series.optics()
    if focal_spread_samples:
        nodes, _ = np.polynomial.hermite.hermgauss(int(focal_spread_samples))
        spread = optics.pop("focal_spread")
        defocus = (defocus[:, None] + np.sqrt(2.0) * spread * nodes[None]).ravel()
    return defocus_transfer(
        shape, voxel_size, float(electron_wavelength(series.energy_eV)), defocus, device=device, **optics
    )


def focal_spread_weights(samples: int, device=None) -> torch.Tensor:
    """Weights ``(M,)`` (sum 1) of the M defoci of :func:`series_transfer`: w_j/√π of the
    Gauss–Hermite rule, the average over a Gaussian defocus spread."""
    _, weights = np.polynomial.hermite.hermgauss(int(samples))
    return torch.as_tensor(weights / np.sqrt(np.pi), dtype=torch.float32, device=device)


def plane_wave_images(
    volume: torch.Tensor,
    euler_rad: torch.Tensor,
    shift: torch.Tensor,
    transfer: torch.Tensor,
    propagator: torch.Tensor,
    num_slices: int,
    voxel_size: float,
    sigma: float,
    sample_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Model HRTEM images ``(D, ny, nx)`` of one tilt for a unit plane wave (Ren et al. 2018),
    or ``(B, D, ny, nx)`` of B tilts at once.

    Parameters
    ----------
    volume : (nz, ny, nx) complex potential in V.
    euler_rad : (3,) or (B, 3) Euler angles in rad; shift : (2,) or (B, 2) (y, x) in voxels.
    transfer : (D, ny, nx) or (B, D, ny, nx) transfer function per defocus from
        :func:`series_transfer` (defocus measured from the exit surface of the volume's box).
    propagator : (ny, nx) Fresnel propagator over one slice.
    sample_weights : (M,) when ``transfer`` holds M focal-spread defoci per image
        (:func:`series_transfer` with ``focal_spread_samples``): their images are summed.

    The last slice's propagation, the alignment shift (a Fourier phase ramp) and the
    objective's transfer are one product in Fourier space: ψ_exit's spectrum is never taken
    back to real space.
    """
    single = euler_rad.dim() == 1
    euler_rad, shift = euler_rad.reshape(-1, 3), shift.reshape(-1, 2)
    transfer = transfer.reshape(-1, *transfer.shape[-3:])
    slices = tilt_slices(volume, euler_rad, num_slices, voxel_size, stage_axis_matrix=True)  # (B, S, ny, nx)
    # (S, B, ny, nx): one slice for all tilts, unbound once (indexing the first S - 1 and
    # the last apart would make the backward pass fill and copy two full-size gradients)
    *body, last = transmission(slices, sigma).transpose(0, 1).unbind(0)
    wave = exit_wave(body, torch.ones_like(last), propagator) * last
    spectrum = torch.fft.fft2(wave) * propagator * shift_ramp(shift, wave.shape[-2:])
    images = torch.fft.ifft2(spectrum[:, None] * transfer)
    images = images.real**2 + images.imag**2
    if sample_weights is not None:
        images = (images.unflatten(1, (-1, len(sample_weights))) * sample_weights[:, None, None]).sum(2)
    return images[0] if single else images


def shift_ramp(shift: torch.Tensor, shape) -> torch.Tensor:
    """Fourier phase ramps ``(B, ny, nx)`` that move content by ``shift`` ``(B, 2)`` pixels
    (y, x): exp[−2πi(f_y s_y + f_x s_x)], f in cycles per pixel (as
    :func:`~napari_ptychotomo.physics.shift_waves`)."""
    fy = torch.fft.fftfreq(int(shape[0]), device=shift.device)[:, None]
    fx = torch.fft.fftfreq(int(shape[1]), device=shift.device)[None, :]
    phase = -2.0 * math.pi * (fy * shift[:, 0, None, None] + fx * shift[:, 1, None, None])
    return torch.polar(torch.ones_like(phase), phase)
