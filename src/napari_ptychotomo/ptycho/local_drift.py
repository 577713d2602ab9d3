"""Local slice drift: the tilt map's gauge fixing (extended APP).

A per-position specimen tilt θ(r) in the propagator can be mimicked by a multislice
object whose slices drift laterally by Δz·tan θ(r) per slice, just as the global tilt can
(:mod:`.slice_alignment`). The extended adaptive propagator (Sha et al. 2022, section
"Extended APP", Figs. 6 and 7) learns a tilt per scan position; to make that tilt, and not
a drift of the slices, carry the local misorientation, this module measures the drift of
slice s+1 against slice s as a smooth field over the object and moves it into the tilt
map, warping the slices back into register.

The field is a windowed least-squares (Lucas–Kanade) estimate: for a small shift d,
V_{s+1}(r) ≈ V_s(r) − d·∇V_s(r), so within a Gaussian window w

    d(r) = −[Σ_s w * (∇V ∇Vᵀ) + εI]⁻¹ Σ_s w * (ΔV_s ∇V),   ΔV_s = V_{s+1} − V_s,

with ∇V taken on the mean of the two slices and ε a small fraction of the typical
structure tensor (no structure, no drift). The window width sets the lateral resolution
of the tilt map (it plays the role of the smoothness penalty).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["local_slice_drift", "warp_slices", "sample_field"]


def _gaussian_blur(images: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Gaussian blur of ``(..., H, W)`` real images (periodic, by FFT)."""
    H, W = images.shape[-2:]
    fy = torch.fft.fftfreq(H, device=images.device)[:, None]
    fx = torch.fft.fftfreq(W, device=images.device)[None, :]
    kernel = torch.exp(-2.0 * (math.pi * sigma_px) ** 2 * (fy**2 + fx**2))
    return torch.fft.ifft2(torch.fft.fft2(images) * kernel).real


def _gradient(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences (y, x) of ``(..., H, W)`` images, pixels⁻¹ (periodic)."""
    gy = 0.5 * (torch.roll(images, -1, -2) - torch.roll(images, 1, -2))
    gx = 0.5 * (torch.roll(images, -1, -1) - torch.roll(images, 1, -1))
    return gy, gx


def local_slice_drift(
    potential: torch.Tensor, window_px: float, mask: torch.Tensor | None = None, regularisation: float = 0.05
) -> torch.Tensor:
    """Drift field ``(2, H, W)`` (y, x) in pixels of slice s+1 against slice s.

    Parameters
    ----------
    potential : (S, H, W) real part of the object potential (V·Å), S ≥ 2.
    window_px : standard deviation of the Gaussian window, pixels.
    mask : optional (H, W) weights (1 inside the scanned area, 0 outside); pixels outside
        carry no information about the drift.
    regularisation : ε as a fraction of the median of the structure tensor's trace over
        the mask; where the object has little structure the drift tends to zero.
    """
    V = potential.detach().float()
    V = V - V.mean(dim=(-2, -1), keepdim=True)
    mean = 0.5 * (V[1:] + V[:-1])
    diff = V[1:] - V[:-1]
    gy, gx = _gradient(mean)
    weight = torch.ones_like(V[0]) if mask is None else mask.to(V)
    terms = torch.stack([gy * gy, gy * gx, gx * gx, diff * gy, diff * gx]).sum(1) * weight
    gyy, gyx, gxx, by, bx = _gaussian_blur(terms, window_px)
    trace = gyy + gxx
    inside = weight > 0.5
    eps = regularisation * float(torch.median(trace[inside] if inside.any() else trace))
    gyy, gxx = gyy + eps, gxx + eps
    det = gyy * gxx - gyx * gyx
    dy = -(gxx * by - gyx * bx) / det
    dx = -(gyy * bx - gyx * by) / det
    return torch.stack([dy, dx])


def sample_field(field: torch.Tensor, positions_px: torch.Tensor) -> torch.Tensor:
    """Values ``(n, C)`` of a field ``(C, H, W)`` at ``positions_px (n, 2)`` (y, x) object
    pixels, by bilinear interpolation."""
    H, W = field.shape[-2:]
    p = positions_px.to(field)
    grid = torch.stack([2 * p[:, 1] / (W - 1) - 1, 2 * p[:, 0] / (H - 1) - 1], dim=-1)
    values = F.grid_sample(field[None], grid[None, None], mode="bilinear", align_corners=True, padding_mode="border")
    return values[0, :, 0, :].T


def warp_slices(potential: torch.Tensor, drift_px: torch.Tensor) -> torch.Tensor:
    """Slices ``(S, H, W)`` (complex) with slice s moved by ``−s·drift_px(r)``.

    ``drift_px`` is a smooth ``(2, H, W)`` (y, x) field in pixels per slice; slice s is
    resampled (bicubic) at r + s·d(r), undoing a local drift of d(r) per slice.
    """
    S, H, W = potential.shape
    dev = potential.device
    yy, xx = torch.meshgrid(
        torch.arange(H, device=dev, dtype=torch.float32),
        torch.arange(W, device=dev, dtype=torch.float32),
        indexing="ij",
    )
    s = torch.arange(S, device=dev, dtype=torch.float32)[:, None, None]
    y = yy[None] + s * drift_px[0][None].float()
    x = xx[None] + s * drift_px[1][None].float()
    grid = torch.stack([2 * x / (W - 1) - 1, 2 * y / (H - 1) - 1], dim=-1)  # (S, H, W, 2)
    channels = torch.stack([potential.real, potential.imag], dim=1).float()  # (S, 2, H, W)
    out = F.grid_sample(channels, grid, mode="bicubic", align_corners=True, padding_mode="border")
    return torch.complex(out[:, 0], out[:, 1]).to(potential.dtype)
