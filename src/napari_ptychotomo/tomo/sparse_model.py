"""The sparse model that projection matching (:mod:`.projection_matching`) compares with.

A volume fitted to the projections by SIRT with non-negativity (:func:`sirt`, on
projections binned by :func:`downsample`), its local maxima as a sparse model
(:func:`peak_model`) and that model's projections as Gaussian blobs at every tilt
(:func:`render_peaks`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .projector import project

__all__ = ["downsample", "peak_model", "render_peaks", "sirt"]


def sirt(
    projections: torch.Tensor,
    euler_rad: torch.Tensor,
    shifts_px: torch.Tensor,
    shape: tuple[int, int, int],
    n_iter: int = 20,
    volume: torch.Tensor | None = None,
    nonnegative: bool = True,
    relaxation: float = 1.0,
) -> torch.Tensor:
    """Simultaneous iterative reconstruction (SIRT) of a volume, optionally non-negative.

    v ← max(0, v + λ C Aᵀ R (p − A v)) with R = 1 / (A 1) per ray and C = 1 / (Aᵀ 1) per
    voxel (Gilbert 1972), A the projector at the given alignment. ``projections``
    (T, ny, nx); returns (nz, ny, nx) in projection units per voxel.
    """
    dev, dt = projections.device, projections.dtype
    euler_rad, shifts_px = euler_rad.detach().to(dt), shifts_px.detach().to(dt)
    out_shape = tuple(projections.shape[-2:])

    def forward(v):
        return project(v, euler_rad, shifts_px, out_shape)

    # the projector is linear in the volume: one recorded graph gives the adjoint of every
    # residual (its backward pass depends on the ray geometry only)
    with torch.enable_grad():
        probe = torch.zeros(shape, dtype=dt, device=dev, requires_grad=True)
        recorded = forward(probe)

    def adjoint(r):
        (grad,) = torch.autograd.grad(recorded, probe, r, retain_graph=True)
        return grad

    with torch.no_grad():
        ones = torch.ones(shape, dtype=dt, device=dev)
        ray = forward(ones)
        row = torch.where(ray > 1e-3 * ray.max(), 1 / ray.clamp(min=1e-12), torch.zeros_like(ray))
        col = adjoint(torch.ones_like(projections))
        col = torch.where(col > 1e-6, 1 / col.clamp(min=1e-12), torch.zeros_like(col))
        v = torch.zeros(shape, dtype=dt, device=dev) if volume is None else volume.detach().clone()
        for _ in range(n_iter):
            v = v + relaxation * col * adjoint(row * (projections - forward(v)))
            if nonnegative:
                v = v.clamp(min=0)
    return v


def downsample(stack: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor`` × ``factor`` pixel blocks (centre (n − 1)/2 kept in place when the
    sides are multiples of ``factor``)."""
    if factor == 1:
        return stack
    return F.avg_pool2d(stack[:, None], factor)[:, 0]


def peak_model(volume: torch.Tensor, min_distance: int = 3, threshold: float = 0.3):
    """Local maxima of a volume as a sparse model: positions (n, 3) (x, y, z) in voxels from
    the volume centre (refined to the weighted centroid of their 3×3×3 neighbourhood) and
    their heights (n,)."""
    from skimage.feature import peak_local_max

    v = volume.detach().cpu().double().numpy()
    peaks = peak_local_max(v, min_distance=int(min_distance), threshold_rel=threshold, exclude_border=False)
    if len(peaks) == 0:
        return np.zeros((0, 3)), np.zeros(0)
    offsets = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    idx = np.clip(peaks[:, None, :] + offsets[None], 0, np.array(v.shape) - 1)
    weight = v[idx[..., 0], idx[..., 1], idx[..., 2]].clip(min=0)
    zyx = (idx * weight[..., None]).sum(1) / weight.sum(1).clip(min=1e-30)[:, None]
    zyx = zyx - (np.array(v.shape) - 1) / 2
    return zyx[:, ::-1].copy(), v[tuple(peaks.T)]


def render_peaks(
    positions: np.ndarray, heights: np.ndarray, euler_rad, shape: tuple[int, int], sigma_px: float, scale: float = 1.0
) -> np.ndarray:
    """Projections (T, ny, nx) of Gaussian blobs at ``positions`` (n, 3) (x, y, z) in volume
    voxels (× ``scale`` = image pixels) after rotation by R(euler) (docs/conventions.md), unshifted."""
    from .rotation import rotation_matrix

    rot = rotation_matrix(torch.as_tensor(np.asarray(euler_rad), dtype=torch.float64)).numpy()
    ny, nx = shape
    y = np.arange(ny) - (ny - 1) / 2
    x = np.arange(nx) - (nx - 1) / 2
    out = np.empty((len(rot), ny, nx))
    for k in range(len(rot)):
        moved = positions @ rot[k].T * scale
        gx = np.exp(-((x[None] - moved[:, 0:1]) ** 2) / (2 * sigma_px**2))
        gy = np.exp(-((y[None] - moved[:, 1:2]) ** 2) / (2 * sigma_px**2))
        out[k] = (heights[:, None] * gy).T @ gx
    return out
