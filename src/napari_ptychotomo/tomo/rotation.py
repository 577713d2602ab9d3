"""Rigid rotation of volumes by Euler angles (docs/conventions.md), differentiable.

Convention: ``euler = (φ, θ, ψ)`` and R = R_z(ψ) · R_y(θ) · R_x(φ) acting on column vectors
``(x, y, z)``; each factor is right-handed. Volumes are stored ``(z, y, x)``. Rotating a
volume moves the specimen's atoms from r to R·r about the volume centre, which is the
point ``(n - 1) / 2`` in voxel indices along every axis.

The matrix is :func:`~napari_ptychotomo.physics.rotation.rotation_matrix`; this module
holds the resampling of a whole volume (needed by the
end-to-end step, which bins the rotated volume into slices along the beam). The projection
used by alignment and linear tomography lives in :mod:`.projector` and shares
:func:`rotation_matrix`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..physics.rotation import rotation_matrix

__all__ = ["rotation_matrix", "rotate_volume", "bin_along_beam"]


def _as_real_channels(volume: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(..., nz, ny, nx) real or complex -> (B, C, nz, ny, nx) real, and whether complex."""
    if volume.is_complex():
        real = torch.view_as_real(volume)  # (..., nz, ny, nx, 2)
        real = real.movedim(-1, -4)  # (..., 2, nz, ny, nx)
        return real.reshape(-1, 2, *volume.shape[-3:]), True
    return volume.reshape(-1, 1, *volume.shape[-3:]), False


def rotate_volume(
    volume: torch.Tensor,
    euler_rad: torch.Tensor,
    shifts: torch.Tensor | None = None,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Rotate a volume so that its content moves from r to R·r (+ shift) about its centre.

    Parameters
    ----------
    volume : (nz, ny, nx) tensor, real or complex.
    euler_rad : (3,) or (B, 3) Euler angles (φ, θ, ψ) in radians.
    shifts : optional (2,) or (B, 2) translation (y, x) in voxels applied after the
        rotation (content moves by +shift).
    mode : ``"bilinear"`` (trilinear in 3D) or ``"nearest"``.

    Returns
    -------
    (nz, ny, nx) for a single rotation, (B, nz, ny, nx) for a batch; same dtype as the
    volume, zero outside. Differentiable with respect to the volume, angles and shifts.
    """
    if volume.ndim != 3:
        raise ValueError(f"volume has shape {tuple(volume.shape)}; expected (nz, ny, nx)")
    euler_rad = torch.as_tensor(euler_rad, device=volume.device)
    single = euler_rad.ndim == 1
    euler = euler_rad.reshape(-1, 3).to(volume.real.dtype)
    b = euler.shape[0]
    if shifts is None:
        shift = torch.zeros(b, 2, dtype=euler.dtype, device=volume.device)
    else:
        shift = torch.as_tensor(shifts, device=volume.device).to(euler.dtype).reshape(-1, 2)
        shift = shift.expand(b, 2)
    nz, ny, nx = volume.shape
    dev, dt = volume.device, euler.dtype
    half = torch.tensor([(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2], dtype=dt, device=dev)
    # output voxel displacement from the centre, (x, y, z) in voxels
    zz, yy, xx = torch.meshgrid(*(torch.arange(n, dtype=dt, device=dev) for n in (nz, ny, nx)), indexing="ij")
    out = torch.stack([xx, yy, zz], -1) - half  # (nz, ny, nx, 3)
    shift_xyz = torch.stack([shift[:, 1], shift[:, 0], torch.zeros_like(shift[:, 0])], -1)
    rot = rotation_matrix(euler)  # (B, 3, 3)
    # content at r moves to R r + t, so output(r') = input(R^T (r' - t))
    src = torch.einsum("bji,zyxj->bzyxi", rot, out) - torch.einsum("bji,bj->bi", rot, shift_xyz)[:, None, None, None]
    grid = src / half.clamp(min=0.5)  # align_corners=True normalisation
    real, is_complex = _as_real_channels(volume)
    sampled = F.grid_sample(
        real.expand(b, -1, -1, -1, -1), grid, mode=mode, padding_mode="zeros", align_corners=True
    )  # (B, C, nz, ny, nx)
    if is_complex:
        sampled = torch.view_as_complex(sampled.movedim(1, -1).contiguous())
    else:
        sampled = sampled[:, 0]
    return sampled[0] if single else sampled


def bin_along_beam(volume: torch.Tensor, n_slices: int) -> torch.Tensor:
    """Sum a (rotated) volume ``(..., nz, ny, nx)`` into ``n_slices`` slabs along z.

    Each slab holds ``nz // n_slices`` consecutive planes (You et al. 2025, operator B_b of
    eq. 14), so a potential in V becomes a projected potential in V·voxel per slab;
    multiply by the voxel size in Å for V·Å. ``nz`` must be divisible by ``n_slices``.
    """
    nz = volume.shape[-3]
    if not isinstance(n_slices, int) or n_slices < 1 or nz % n_slices:
        raise ValueError(
            f"n_slices = {n_slices!r}; expected a positive integer dividing the volume "
            f"depth nz = {nz} (e.g. {[d for d in range(1, nz + 1) if nz % d == 0][:8]})"
        )
    return volume.reshape(*volume.shape[:-3], n_slices, nz // n_slices, *volume.shape[-2:]).sum(-3)
