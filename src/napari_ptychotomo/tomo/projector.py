"""The tomographic forward model: rotate a volume, project it along the beam, shift.

One operator for alignment, linear tomography and the end-to-end step. At tilt k the
specimen moves from r to R_k·r about the volume centre (R = R_z(ψ) R_y(θ) R_x(φ), see
:mod:`.rotation`), is integrated along z, and the projection is shifted by ``t_k`` (y, x).

Instead of resampling the whole rotated volume (``affine_grid`` + trilinear ``grid_sample``
+ sum, 8 taps per voxel and a 3-vector grid per voxel and tilt), each ray is followed
through the volume plane by plane (Joseph's method, Joseph 1982, IEEE TMI 1:192): for rays
closer to z than to x the volume is cut into z-planes, otherwise into x-planes, and the
ray's crossing of each plane is interpolated bilinearly in that plane (4 taps), weighted by
the path length per plane 1/|d_step|. In-plane rotation ψ and the shifts enter the ray
geometry, so the whole operator is a single interpolation, differentiable with respect to
the volume, the Euler angles and the shifts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..engine import check_memory
from .rotation import _as_real_channels, rotation_matrix

__all__ = ["project", "projector_bytes_per_tilt"]


def projector_bytes_per_tilt(volume_shape, out_shape=None, complex_volume: bool = False) -> int:
    """Rough bytes one tilt needs in :func:`project` with autograd (float32)."""
    nz, ny, nx = volume_shape
    oy, ox = out_shape or (ny, nx)
    channels = 2 if complex_volume else 1
    steps = max(nz, nx)
    # grid (2) + sampled values (C), kept for the backward pass, plus temporaries
    return int(steps * oy * ox * (2 + channels) * 4 * 3)


def _project_group(real, euler, shift, out_shape, step_axis):
    """Project along rays, stepping through planes normal to ``step_axis`` ('z' or 'x')."""
    c, nz, ny, nx = real.shape
    oy, ox = out_shape
    dev, dt = real.device, euler.dtype
    rot = rotation_matrix(euler)  # (T, 3, 3)
    a, b, d = rot[:, 0], rot[:, 1], rot[:, 2]  # (T, 3) each, components (x, y, z)
    ys = torch.arange(oy, dtype=dt, device=dev) - (oy - 1) / 2
    xs = torch.arange(ox, dtype=dt, device=dev) - (ox - 1) / 2
    # detector coordinates before the shift: p = u - t, shape (T, oy, ox)
    px = xs[None, None, :] - shift[:, 1, None, None]
    py = ys[None, :, None] - shift[:, 0, None, None]
    # ray points r = px*a + py*b + s*d (volume frame, voxels from the centre)
    base = px[..., None] * a[:, None, None, :] + py[..., None] * b[:, None, None, :]
    if step_axis == "z":
        n_steps, k = nz, 2
        planes = real.permute(1, 0, 2, 3)  # (nz, C, ny, nx): image H=y, W=x
        in_plane, half = (0, 1), ((nx - 1) / 2, (ny - 1) / 2)
    else:
        n_steps, k = nx, 0
        planes = real.permute(3, 0, 2, 1)  # (nx, C, ny, nz): image H=y, W=z
        in_plane, half = (2, 1), ((nz - 1) / 2, (ny - 1) / 2)
    level = torch.arange(n_steps, dtype=dt, device=dev) - (n_steps - 1) / 2  # (S,)
    dk = d[:, k]  # (T,)
    # s at which each ray crosses plane `level`: base_k + s d_k = level
    s = (level[:, None, None, None] - base[None, ..., k]) / dk[None, :, None, None]  # (S,T,oy,ox)
    coords = []
    for axis, h in zip(in_plane, half):
        value = base[None, ..., axis] + s * d[None, :, None, None, axis]
        coords.append(value / max(h, 0.5))
    grid = torch.stack(coords, -1).reshape(n_steps, -1, ox, 2)  # (S, T*oy, ox, 2)
    sampled = F.grid_sample(planes, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    out = sampled.sum(0).reshape(c, -1, oy, ox)  # (C, T, oy, ox)
    return out / dk.abs()[None, :, None, None]


def project(
    volume: torch.Tensor,
    euler_rad: torch.Tensor,
    shifts: torch.Tensor | None = None,
    out_shape: tuple[int, int] | None = None,
    voxel_size: float = 1.0,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Projections of a rotated, shifted volume along the beam, one per tilt.

    Parameters
    ----------
    volume : (nz, ny, nx) tensor, real or complex, in any unit per voxel.
    euler_rad : (T, 3) Euler angles (φ, θ, ψ) in radians (docs/conventions.md).
    shifts : (T, 2) shifts (y, x) of each projection in pixels (= voxels); content moves
        by +shift. Divide shifts in Å by the voxel size.
    out_shape : detector shape (oy, ox) in pixels; default (ny, nx). Its centre pixel
        ``(n - 1) / 2`` sees the volume centre.
    voxel_size : Å per voxel; the line integral is multiplied by it (V -> V·Å).
    batch_size : tilts per chunk; default all that fit in memory.

    Returns
    -------
    (T, oy, ox) tensor (complex for a complex volume), differentiable with respect to the
    volume, ``euler_rad`` and ``shifts``.
    """
    if volume.ndim != 3:
        raise ValueError(f"volume has shape {tuple(volume.shape)}; expected (nz, ny, nx)")
    euler = torch.as_tensor(euler_rad, device=volume.device)
    if euler.ndim != 2 or euler.shape[1] != 3:
        raise ValueError(f"euler_rad has shape {tuple(euler.shape)}; expected (n_tilts, 3) as (φ, θ, ψ) in rad")
    euler = euler.to(volume.real.dtype)
    t = euler.shape[0]
    if shifts is None:
        shifts = torch.zeros(t, 2, dtype=euler.dtype, device=volume.device)
    shifts = torch.as_tensor(shifts, device=volume.device).to(euler.dtype)
    if tuple(shifts.shape) != (t, 2):
        raise ValueError(f"shifts has shape {tuple(shifts.shape)}; expected ({t}, 2) as (y, x) in pixels")
    out_shape = tuple(out_shape or volume.shape[1:])
    per_tilt = projector_bytes_per_tilt(volume.shape, out_shape, volume.is_complex())
    if batch_size is None:
        batch_size = t
        try:
            check_memory("projection", 0, per_tilt, t, volume.device)
        except MemoryError:
            batch_size = max(1, t // 8)
    check_memory("projection", 0, per_tilt, min(batch_size, t), volume.device)
    real, is_complex = _as_real_channels(volume)
    real = real[0]  # (C, nz, ny, nx)
    with torch.no_grad():
        rays = rotation_matrix(euler)[:, 2]  # (T, 3) ray direction in the volume frame
        step_z = rays[:, 2].abs() >= rays[:, 0].abs()
    chunks = []
    for start in range(0, t, batch_size):
        sl = slice(start, start + batch_size)
        e, sh, use_z = euler[sl], shifts[sl], step_z[sl]
        out = real.new_zeros(real.shape[0], e.shape[0], *out_shape)
        for axis, select in (("z", use_z), ("x", ~use_z)):
            if bool(select.any()):
                idx = torch.nonzero(select).squeeze(1)
                part = _project_group(real, e[idx], sh[idx], out_shape, axis)
                out = out.index_copy(1, idx, part)
        chunks.append(out)
    out = torch.cat(chunks, 1) * voxel_size  # (C, T, oy, ox)
    if is_complex:
        return torch.complex(out[0], out[1])
    return out[0]
