"""Regularisers of the joint reconstruction, as proximal / filtering steps on the volume.

All act in place-free style on a complex potential volume ``(nz, ny, nx)`` in V with cubic
voxels and return a new tensor:

* :func:`shrink_imag` — L1 shrinkage of Im V (You et al. 2025, eq. 16-17).
* :func:`clip_negative` — non-negativity of Re V and Im V.
* :func:`butterworth_lowpass` — 3D Butterworth low-pass of Re V, Im V kept (You et al.).
* :func:`kz_filter` — the k_z regularisation kernel along one tilt's beam direction
  (Tsai et al. 2016, Opt. Express 24:29089, used by You et al.).
* :func:`tv_prox` — proximal operator of isotropic total variation (Chambolle 2004, used
  as the proximal TV step of Ren et al. 2018).
"""

from __future__ import annotations

import math

import torch

__all__ = ["shrink_imag", "clip_negative", "butterworth_lowpass", "kz_filter", "tv_prox"]


def _frequencies_3d(shape, voxel_size: float, device):
    kz, ky, kx = (torch.fft.fftfreq(n, d=voxel_size, device=device, dtype=torch.float32) for n in shape)
    return kz[:, None, None], ky[None, :, None], kx[None, None, :]


def shrink_imag(volume: torch.Tensor, threshold: float) -> torch.Tensor:
    """sign(Im V)·max(|Im V| − threshold, 0) for the imaginary part; Re V unchanged."""
    imag = volume.imag
    shrunk = torch.sign(imag) * torch.clamp(imag.abs() - threshold, min=0.0)
    return torch.complex(volume.real, shrunk)


def clip_negative(volume: torch.Tensor) -> torch.Tensor:
    """Clip Re V and Im V (potential and absorption) at zero."""
    if volume.is_complex():
        return torch.complex(volume.real.clamp(min=0), volume.imag.clamp(min=0))
    return volume.clamp(min=0)


def butterworth_lowpass(volume: torch.Tensor, cutoff: float, order: int, voxel_size: float) -> torch.Tensor:
    """Filter Re V with 1 / (1 + (|k| / cutoff)^(2·order)), |k| in Å⁻¹; Im V is kept."""
    kz, ky, kx = _frequencies_3d(volume.shape, voxel_size, volume.device)
    k = torch.sqrt(kz**2 + ky**2 + kx**2)
    weight = 1.0 / (1.0 + (k / cutoff) ** (2 * order))
    real = torch.fft.ifftn(torch.fft.fftn(volume.real) * weight).real
    return torch.complex(real, volume.imag) if volume.is_complex() else real


def kz_filter(update: torch.Tensor, beam: torch.Tensor, beta: float) -> torch.Tensor:
    """Suppress frequencies along the beam in a volume update (real or complex).

    w(k) = 1 − (2/π) arctan(β² k_∥² / k_⊥²), with k_∥ = k·d the frequency along the unit
    beam direction ``beam`` (3,) given as (x, y, z) in the volume frame and k_⊥ the rest
    (frequencies in cycles per voxel). β = 0 leaves the update unchanged.
    """
    if beta == 0:
        return update
    kz, ky, kx = _frequencies_3d(update.shape, 1.0, update.device)
    d = beam.to(torch.float32)
    k_par = kx * d[0] + ky * d[1] + kz * d[2]
    k_perp2 = (kz**2 + ky**2 + kx**2 - k_par**2).clamp(min=0)
    weight = 1.0 - (2.0 / math.pi) * torch.atan(beta**2 * k_par**2 / (k_perp2 + 1e-6))
    weight[0, 0, 0] = 1.0
    filtered = torch.fft.ifftn(torch.fft.fftn(update) * weight)
    return filtered if update.is_complex() else filtered.real


def _gradient(u: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Forward differences of ``u`` along each axis into ``out`` ``(ndim, *u.shape)``, 0 at
    the last index (Neumann boundary)."""
    for dim in range(u.ndim):
        n = u.shape[dim]
        g = out[dim]
        torch.sub(u.narrow(dim, 1, n - 1), u.narrow(dim, 0, n - 1), out=g.narrow(dim, 0, n - 1))
        g.narrow(dim, n - 1, 1).zero_()
    return out


def _divergence(p: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Minus the adjoint of :func:`_gradient`, into ``out``: p[i] − p[i−1] with p[−1] = 0 and
    the last p of each axis (always 0 for a gradient field) left out."""
    out.zero_()
    for dim in range(p.shape[0]):
        n = out.shape[dim]
        q = p[dim].narrow(dim, 0, n - 1)
        out.narrow(dim, 0, n - 1).add_(q)
        out.narrow(dim, 1, n - 1).sub_(q)
    return out


def tv_prox(volume: torch.Tensor, weight: float, n_iter: int = 10) -> torch.Tensor:
    """argmin_u ½‖u − Re V‖² + weight·TV(u) for Re V (isotropic TV, Chambolle 2004); Im V kept.

    ``weight`` is in the volume's unit (V). Dual projection iterations with step 1/8 (3D),
    in preallocated buffers: the volume is large and the loop short, so allocation and
    copies, not arithmetic, set its time.
    """
    real = volume.real if volume.is_complex() else volume
    if weight <= 0:
        return volume
    p = torch.zeros((real.ndim, *real.shape), dtype=real.dtype, device=real.device)
    g = torch.empty_like(p)
    div = torch.empty_like(real)
    norm = torch.empty((1, *real.shape), dtype=real.dtype, device=real.device)
    scaled = real / weight
    tau = 1.0 / (4.0 * real.ndim)
    for _ in range(n_iter):
        _gradient(_divergence(p, div).sub_(scaled), g)
        torch.sum(g * g, dim=0, keepdim=True, out=norm)
        norm.sqrt_().mul_(tau).add_(1.0)
        p.add_(g, alpha=tau).div_(norm)
    out = real - weight * _divergence(p, div)
    return torch.complex(out, volume.imag) if volume.is_complex() else out
