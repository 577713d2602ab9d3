"""Tilt from the drift of the object slices (gauge fixing of the adaptive propagator).

The tilted Fresnel propagator is the untilted one times a lateral shift of Δz·tanθ
(Sha et al. 2022, eq. 3), so a multislice object whose slice s is shifted by s·Δz·tanΔθ
through a propagator of tilt θ gives exactly the same diffraction as the unshifted slices
through a propagator of tilt θ + Δθ. A reconstruction can therefore carry part of the
specimen tilt as a drift of its slices. This module measures that drift (sub-pixel cross
correlation of adjacent slices over the scanned area) and moves it into the tilt, leaving
the slices aligned along the beam; the diffraction model is unchanged by the move.
"""

from __future__ import annotations

import math

import torch

__all__ = ["slice_drift", "shift_slices"]


def _peak_offset(corr: torch.Tensor, radius: int) -> torch.Tensor:
    """Sub-pixel (y, x) position of the maximum of a cross-correlation (fftfreq order)
    within ``radius`` pixels of zero, by a parabola through the peak and its neighbours."""
    local = torch.fft.fftshift(corr)
    cy, cx = local.shape[0] // 2, local.shape[1] // 2
    window = local[cy - radius - 1 : cy + radius + 2, cx - radius - 1 : cx + radius + 2]
    inner = window[1:-1, 1:-1]
    iy, ix = divmod(int(torch.argmax(inner)), inner.shape[1])
    iy, ix = iy + 1, ix + 1

    def vertex(m, c, p):
        denominator = m - 2 * c + p
        return 0.0 if abs(float(denominator)) < 1e-12 else float(0.5 * (m - p) / denominator)

    dy = vertex(window[iy - 1, ix], window[iy, ix], window[iy + 1, ix])
    dx = vertex(window[iy, ix - 1], window[iy, ix], window[iy, ix + 1])
    return torch.tensor([iy - radius - 1 + dy, ix - radius - 1 + dx])


def slice_drift(potential: torch.Tensor, lo, hi, radius: int = 3) -> torch.Tensor:
    """Mean lateral shift (y, x) in pixels of slice s+1 against slice s.

    Parameters
    ----------
    potential : (S, H, W) real part of the object potential (V·Å).
    lo, hi : (y, x) pixel bounds of the region to compare (the scanned area).
    radius : largest shift searched, pixels (the drift per slice is small; a crystal's
        correlation repeats at lattice vectors, which this excludes).
    """
    region = potential[:, lo[0] : hi[0], lo[1] : hi[1]].detach().float()
    region = region - region.mean(dim=(-2, -1), keepdim=True)
    ny, nx = region.shape[-2:]
    taper = (
        torch.hann_window(ny, periodic=False, device=region.device)[:, None]
        * torch.hann_window(nx, periodic=False, device=region.device)[None, :]
    )
    spectra = torch.fft.fft2(region * taper)
    cross = spectra[1:] * spectra[:-1].conj()  # peak at the shift of s+1 against s
    corr = torch.fft.ifft2(cross.sum(0)).real
    radius = max(1, min(radius, ny // 2 - 2, nx // 2 - 2))
    return _peak_offset(corr, radius)


def shift_slices(potential: torch.Tensor, drift_px: torch.Tensor) -> torch.Tensor:
    """Slices ``(S, H, W)`` (complex) with slice s shifted by ``−s·drift_px`` (y, x)
    pixels (Fourier shift), undoing a drift of ``drift_px`` per slice."""
    S, H, W = potential.shape
    fy = torch.fft.fftfreq(H, device=potential.device)[:, None]
    fx = torch.fft.fftfreq(W, device=potential.device)[None, :]
    s = torch.arange(S, device=potential.device, dtype=torch.float32)[:, None, None]
    dy, dx = float(drift_px[0]), float(drift_px[1])
    ramp = torch.polar(torch.ones_like(fy * fx), 2.0 * math.pi * s * (fy * dy + fx * dx))
    return torch.fft.ifft2(torch.fft.fft2(potential) * ramp).to(potential.dtype)


def move_drift_into_tilt(
    obj: torch.Tensor, tilt: torch.Tensor, thickness: torch.Tensor, pixel_size: float, lo, hi
) -> None:
    """In place: measure the mean slice drift of ``obj (S, H, W)`` over the pixel box
    [lo, hi), shift the slices back and add the drift to ``tilt (2,)`` (θx, θy) mrad as
    θ = atan(drift·pixel_size / Δz)."""
    drift = slice_drift(obj.real, lo, hi)
    obj.copy_(shift_slices(obj, drift))
    tan = drift.flip(0).to(tilt) * pixel_size / thickness
    tilt.add_(torch.atan(tan) * 1e3)


def move_local_drift_into_tilt_map(
    obj: torch.Tensor,
    tilt: torch.Tensor,
    tilt_map: torch.Tensor,
    positions_px: torch.Tensor,
    thickness: torch.Tensor,
    pixel_size: float,
    window_px: float,
    lo,
    hi,
) -> None:
    """In place: measure the local slice drift field of ``obj (S, H, W)`` (Gaussian window
    of ``window_px`` pixels, scanned box [lo, hi)), warp the slices back, add the drift at
    each of ``positions_px (n, 2)`` to ``tilt_map (n, 2)`` (θx, θy) mrad, then move the
    map's mean into the global ``tilt (2,)``."""
    from .local_drift import local_slice_drift, sample_field, warp_slices

    mask = torch.zeros(obj.shape[-2:], device=obj.device)
    mask[lo[0] : hi[0], lo[1] : hi[1]] = 1.0
    field = local_slice_drift(obj.real, window_px, mask)
    obj.copy_(warp_slices(obj, field))
    drift = sample_field(field, positions_px.detach())  # (n, 2) (y, x) px per slice
    tan = drift.flip(1).to(tilt_map) * pixel_size / thickness
    tilt_map.add_(torch.atan(tan) * 1e3)
    mean = tilt_map.mean(0)
    tilt_map.sub_(mean)
    tilt.add_(mean)
