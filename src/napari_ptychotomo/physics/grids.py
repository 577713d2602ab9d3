"""Sampling grids in real and reciprocal space.

Spatial frequencies follow ``torch.fft.fftfreq`` order (zero frequency at index 0) and are
in Å⁻¹; the forward transform is ``torch.fft.fft2`` with kernel exp(−2πi k·r).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["as_pair", "spatial_frequencies", "band_limit_mask"]


def as_pair(value: float | Sequence[float]) -> tuple[float, float]:
    """A scalar or ``(y, x)`` pair as a ``(y, x)`` tuple of floats."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    y, x = value
    return float(y), float(x)


def spatial_frequencies(
    shape: Sequence[int],
    sampling: float | Sequence[float],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial frequencies ``(ky (ny, 1), kx (1, nx))`` in Å⁻¹ of a grid of pixel size
    ``sampling`` Å, in fftfreq order (broadcast them to get a 2D grid)."""
    ny, nx = int(shape[0]), int(shape[1])
    dy, dx = as_pair(sampling)
    ky = torch.fft.fftfreq(ny, d=dy, device=device, dtype=dtype)[:, None]
    kx = torch.fft.fftfreq(nx, d=dx, device=device, dtype=dtype)[None, :]
    return ky, kx


def band_limit_mask(
    shape: Sequence[int],
    sampling: float | Sequence[float],
    fraction: float = 2.0 / 3.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Boolean mask ``(ny, nx)`` (fftfreq order) of frequencies below ``fraction`` of the
    Nyquist frequency of the coarser axis: the anti-aliasing aperture of multislice."""
    ky, kx = spatial_frequencies(shape, sampling, device=device)
    dy, dx = as_pair(sampling)
    cutoff = fraction / (2.0 * max(dy, dx))
    return (ky**2 + kx**2) <= cutoff**2
