"""Fresnel propagation between slices, with specimen tilt (adaptive propagator).

P(k) = exp[−iπΔz(λk² − 2k_x tanθ_x − 2k_y tanθ_y)] (Sha et al. 2022, eq. 3), where
(θ_x, θ_y) is the tilt of the atomic columns: an atom at depth z sits at
(x, y) + z·(tanθ_x, tanθ_y). Band-limited to 2/3 of Nyquist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .grids import band_limit_mask, spatial_frequencies

__all__ = ["fresnel_propagator"]


def fresnel_propagator(
    shape: Sequence[int],
    sampling: float | Sequence[float],
    wavelength: float,
    thickness: float | torch.Tensor,
    tilt_mrad: Sequence[float] | torch.Tensor = (0.0, 0.0),
    device: torch.device | str | None = None,
    band_limit: bool = True,
) -> torch.Tensor:
    """Propagator over ``thickness`` Å, complex64 in fftfreq order.

    ``thickness`` is a scalar or a tensor of shape ``(B,)``; ``tilt_mrad`` is (θ_x, θ_y)
    in mrad, shape ``(2,)`` or ``(B, 2)`` (one tilt per position, the tilt map). Both may
    require grad. The result is ``(ny, nx)`` or ``(B, ny, nx)``.
    """
    if device is None:
        for value in (thickness, tilt_mrad):
            if torch.is_tensor(value):
                device = value.device
                break
    # float64 only when a caller (a gradient test) passes float64 tensors
    real = torch.float32
    for value in (thickness, tilt_mrad):
        if torch.is_tensor(value) and value.dtype == torch.float64:
            real = torch.float64
    ky, kx = spatial_frequencies(shape, sampling, device=device, dtype=real)
    dz = torch.as_tensor(thickness, dtype=real, device=device)
    tilt = torch.as_tensor(tilt_mrad, dtype=real, device=device) * 1e-3
    if tilt.shape[-1] != 2:
        raise ValueError(f"tilt_mrad has shape {tuple(tilt.shape)}; expected (2,) or (B, 2) as (θx, θy)")
    tan_x = torch.tan(tilt[..., 0])[..., None, None]
    tan_y = torch.tan(tilt[..., 1])[..., None, None]
    if dz.ndim:
        dz = dz[..., None, None]
    phase = -math.pi * dz * (wavelength * (kx**2 + ky**2) - 2.0 * kx * tan_x - 2.0 * ky * tan_y)
    propagator = torch.polar(torch.ones_like(phase), phase)
    if band_limit:
        propagator = propagator * band_limit_mask(shape, sampling, device=device)
    return propagator if real == torch.float64 else propagator.to(torch.complex64)
