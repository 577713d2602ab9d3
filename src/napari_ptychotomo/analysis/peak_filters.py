"""Smoothing, difference-of-Gaussians and local-maximum search on volumes (torch, any
device): the candidate stage of atom tracing (Ren et al. 2018, "Measurements of Atom
Positions and Species")."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "gaussian_blur",
    "difference_of_gaussians",
    "local_maxima",
    "robust_sigma",
    "filter_gain",
    "white_noise_sigma",
    "climb_to_maxima",
    "sample_trilinear",
    "sphere_directions",
    "bridge_fractions",
]


def _kernel_1d(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, int(np.ceil(4 * sigma)))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(volume: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (nz, ny, nx) tensor, σ in voxels, edges reflected."""
    if sigma <= 0:
        return volume
    kernel = _kernel_1d(sigma, volume.device, volume.dtype)
    radius = len(kernel) // 2
    out = volume[None, None]
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = len(kernel)
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = min(radius, out.shape[2 + axis] - 1)
        padded = F.pad(out, pad, mode="reflect")
        if pad[2 * (2 - axis)] < radius:  # tiny axis: pad the rest with edge values
            extra = radius - pad[2 * (2 - axis)]
            pad2 = [0, 0, 0, 0, 0, 0]
            pad2[2 * (2 - axis)] = pad2[2 * (2 - axis) + 1] = extra
            padded = F.pad(padded, pad2, mode="replicate")
        out = F.conv3d(padded, kernel.view(shape))
    return out[0, 0]


def difference_of_gaussians(volume: torch.Tensor, sigma_small: float = 0.5, sigma_large: float = 1.0) -> torch.Tensor:
    """Gaussian σ_small minus Gaussian σ_large (voxels), each of unit sum, so the kernel
    has zero total weight (Ren et al. 2018 use 0.5 and 1 voxel)."""
    return gaussian_blur(volume, sigma_small) - gaussian_blur(volume, sigma_large)


def local_maxima(volume: torch.Tensor, threshold: float, radius: int = 1, border: int = 0) -> torch.Tensor:
    """Voxel indices (m, 3) as (z, y, x) of local maxima above ``threshold``.

    A voxel is a maximum when it equals the maximum of its (2·radius + 1)³ neighbourhood;
    plateaus give one voxel each (the first in raster order). ``border`` voxels at the
    faces are skipped.
    """
    size = 2 * radius + 1
    pooled = F.max_pool3d(volume[None, None], size, stride=1, padding=radius)[0, 0]
    is_max = (volume >= pooled) & (volume > threshold)
    if border > 0:
        inner = torch.zeros_like(is_max)
        inner[border:-border, border:-border, border:-border] = True
        is_max &= inner
    index = torch.nonzero(is_max)
    if len(index) > 1:  # break plateaus: keep the first voxel of equal neighbours
        flat = (index[:, 0] * volume.shape[1] + index[:, 1]) * volume.shape[2] + index[:, 2]
        marker = torch.full((volume.numel(),), -float(volume.numel() + 1), device=volume.device, dtype=torch.float64)
        marker[flat] = -flat.to(torch.float64) - 1  # larger for earlier voxels
        pooled_marker = F.max_pool3d(marker.view(1, 1, *volume.shape), size, stride=1, padding=radius).view(-1)
        index = index[pooled_marker[flat] == marker[flat]]
    return index


def robust_sigma(values: torch.Tensor) -> float:
    """Standard deviation of the bulk of ``values`` from the median absolute deviation."""
    flat = values.reshape(-1)
    if flat.numel() > 2_000_000:  # a fixed subsample is plenty for a MAD
        step = flat.numel() // 2_000_000 + 1
        flat = flat[::step]
    median = flat.median()
    return float(1.4826 * (flat - median).abs().median())


def filter_gain(filter_fn, device, size: int = 25) -> float:
    """Standard deviation that a linear filter gives unit white noise: the root sum of
    squares of its impulse response (measured on a centred delta)."""
    delta = torch.zeros((size, size, size), device=device)
    delta[size // 2, size // 2, size // 2] = 1.0
    return float(filter_fn(delta).pow(2).sum().sqrt())


def white_noise_sigma(volume: torch.Tensor) -> float:
    """Per-voxel σ of white noise in a volume of sparse peaks: the robust spread of its
    high-pass part (volume minus a 1-voxel blur), divided by that filter's noise gain."""

    def high_pass(v):
        return v - gaussian_blur(v, 1.0)

    return robust_sigma(high_pass(volume)) / filter_gain(high_pass, volume.device)


def climb_to_maxima(volume: torch.Tensor, start: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Steepest-ascent walk on the voxel grid from each start voxel to a local maximum
    (the local-maximum search of Romanov et al. 2025, started at lattice sites).

    Each voxel points at the largest voxel of its 3³ neighbourhood (one max-pool); the
    walk follows these pointers, all starts at once. Returns the end voxels (m, 3) as
    (z, y, x) and whether each walk reached a maximum within ``steps`` moves.
    """
    _, pointer = F.max_pool3d(volume[None, None], 3, stride=1, padding=1, return_indices=True)
    pointer = pointer.view(-1)
    ny, nx = volume.shape[1], volume.shape[2]
    current = (start[:, 0] * ny + start[:, 1]) * nx + start[:, 2]
    for _ in range(steps):
        current = pointer[current]
    converged = pointer[current] == current
    end = torch.stack([current // (ny * nx), (current // nx) % ny, current % nx], -1)
    return end, converged


def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix of the 1D Gaussian blur of :func:`gaussian_blur` along an axis of n
    voxels, including its reflected (then edge-replicated) borders."""
    if sigma <= 0:
        return np.eye(n)
    kernel = _kernel_1d(sigma, "cpu", torch.float64).numpy()
    radius = len(kernel) // 2
    reflect = min(radius, n - 1)
    index = np.arange(-radius, n + radius)
    index = np.clip(index, -reflect, n - 1 + reflect)  # replicate beyond the reflected part
    index = np.where(index < 0, -index, index)
    index = np.where(index > n - 1, 2 * (n - 1) - index, index)
    matrix = np.zeros((n, n))
    rows = np.arange(n)
    for t, weight in enumerate(kernel):
        np.add.at(matrix, (rows, index[rows + t]), weight)
    return matrix


def dog_noise_map(shape, sigma_small: float, sigma_large: float) -> np.ndarray:
    """Standard deviation (nz, ny, nx) of :func:`difference_of_gaussians` applied to unit
    white noise, voxel by voxel: larger near the faces, where the reflected border
    repeats voxels (exact, from the separable 1D operators; ``sigma_large`` 0 gives a
    plain Gaussian blur)."""
    small = [_blur_matrix(n, sigma_small) for n in shape]
    large = [_blur_matrix(n, sigma_large) if sigma_large > 0 else None for n in shape]

    def outer(factors):
        return factors[0][:, None, None] * factors[1][None, :, None] * factors[2][None, None, :]

    variance = outer([(m * m).sum(1) for m in small])
    if sigma_large > 0:
        variance = (
            variance
            + outer([(m * m).sum(1) for m in large])
            - 2 * outer([(a * b).sum(1) for a, b in zip(small, large)])
        )
    return np.sqrt(np.clip(variance, 0, None)).astype(np.float32)


def sample_trilinear(volume: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Values of a (nz, ny, nx) volume at points (..., 3) given in voxels as (z, y, x),
    trilinearly interpolated (points beyond the faces take the face values)."""
    size = torch.as_tensor(volume.shape, device=volume.device, dtype=volume.dtype)
    scaled = 2 * points.to(volume.dtype) / (size - 1).clamp_min(1) - 1
    grid = scaled.flip(-1).reshape(1, 1, 1, -1, 3)  # grid_sample wants (x, y, z)
    values = F.grid_sample(volume[None, None], grid, mode="bilinear", padding_mode="border", align_corners=True)
    return values.reshape(points.shape[:-1])


def sphere_directions(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``n`` unit vectors (n, 3) spread evenly over the sphere (a Fibonacci lattice)."""
    k = torch.arange(n, device=device, dtype=dtype) + 0.5
    cos_polar = 1 - 2 * k / n
    azimuth = np.pi * (1 + 5**0.5) * k
    sin_polar = torch.sqrt(1 - cos_polar**2)
    return torch.stack([cos_polar, sin_polar * torch.sin(azimuth), sin_polar * torch.cos(azimuth)], -1)


def bridge_fractions(
    volume: torch.Tensor,
    centres: torch.Tensor,
    heights: torch.Tensor,
    widths: torch.Tensor,
    radius: float,
    min_contrast: float = 1.0,
    min_separation: float = 4.0,
    samples: int = 9,
    directions: int = 64,
) -> torch.Tensor:
    """How strongly each peak is bridged to a brighter neighbour: per peak (n,) the
    largest, over the brighter fitted peaks within ``radius`` voxels and at least
    ``min_separation`` of the brighter peak's fitted σ (voxels) away, of the lowest excess
    of the volume over the brighter peak's radial profile along the peak's half of the
    straight line between the two centres, as a fraction of the peak's fitted height
    (0 without such a neighbour).

    The radial profile at distance r is the median of the volume over the sphere of radius
    r about the brighter centre (``directions`` points): an atom's own tail, however far
    it reaches, but neither its neighbours nor a streak through it, which cover few of the
    sphere's directions. A real atom is a peak of its own on that tail: towards the
    brighter atom the excess falls well below its height. A ghost on a streak that runs
    out of a bright atom (angular undersampling in tomography) is joined to it by a ridge
    of about its own height. Closer than ``min_separation`` σ a real atom's half-line
    lies inside its own peak: such pairs are left to the fit.
    """
    from scipy.spatial import cKDTree

    out = torch.zeros(len(centres), device=volume.device, dtype=volume.dtype)
    if len(centres) < 2:
        return out
    pairs = cKDTree(centres.detach().cpu().numpy()).query_pairs(radius, output_type="ndarray")
    if len(pairs) == 0:
        return out
    pairs = torch.as_tensor(pairs, device=volume.device)
    a, b = pairs[:, 0], pairs[:, 1]
    weak = torch.where(heights[a] < heights[b], a, b)
    bright = torch.where(heights[a] < heights[b], b, a)
    apart = (centres[weak] - centres[bright]).norm(dim=-1) >= min_separation * widths[bright]
    apart &= heights[bright] >= min_contrast * heights[weak]
    weak, bright = weak[apart], bright[apart]
    if len(weak) == 0:
        return out
    t = torch.linspace(0, 0.5, samples, device=volume.device, dtype=volume.dtype)
    offset = centres[weak] - centres[bright]
    points = centres[bright, None, :] + (1 - t)[None, :, None] * offset[:, None, :]
    distance = (1 - t)[None, :] * offset.norm(dim=-1, keepdim=True)
    sphere = sphere_directions(directions, volume.device, volume.dtype)
    shells = centres[bright, None, None, :] + distance[..., None, None] * sphere  # (pairs, samples, dirs, 3)
    tail = sample_trilinear(volume, shells).median(-1).values
    excess = (sample_trilinear(volume, points) - tail).min(-1).values / heights[weak].clamp_min(1e-12)
    return out.scatter_reduce(0, weak, excess, reduce="amax")
