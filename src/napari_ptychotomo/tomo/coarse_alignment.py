"""Coarse alignment of a tilt series: shifts without a start and without a volume.

* **Centre of mass** (isolated object): the first moment of a projection is the projection
  of the object's centre of mass, so at tilt k the image centre of mass is
  P_k·c + t_k, and t_k follows up to the rigid translation c (the gauge). It needs no
  start and no volume; its error is the noise's first moment inside the window.
* **Neighbouring tilts** (extended specimens): cross-correlation of each tilt with the
  next, stretched across the axis by the ratio of their cosines, chained from 0°.

Both leave the gauge free (:func:`remove_translation`); :mod:`.projection_matching`
refines their result.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["centre_of_mass_shifts", "is_isolated", "neighbour_shifts", "remove_translation"]


def _gauge_basis(euler_rad: torch.Tensor) -> torch.Tensor:
    """(T, 2, 3): how a volume translation (x, y, z) moves each projection (y, x)."""
    from .rotation import rotation_matrix

    rot = rotation_matrix(euler_rad.to(torch.float64))  # (T, 3, 3) acting on (x, y, z)
    return torch.stack([rot[:, 1], rot[:, 0]], 1)  # image (y, x) rows of R


def remove_translation(shifts_px: torch.Tensor, euler_rad: torch.Tensor) -> torch.Tensor:
    """(T, 2) shifts (y, x) less their least-squares fit by a rigid volume translation
    (the gauge), for general Euler angles (in-plane axis angle ψ included)."""
    basis = _gauge_basis(euler_rad).reshape(-1, 3)  # (2T, 3)
    flat = shifts_px.to(torch.float64).reshape(-1, 1)
    coef = torch.linalg.lstsq(basis, flat).solution
    return (flat - basis @ coef).reshape(-1, 2).to(shifts_px.dtype)


def centre_of_mass_shifts(
    stack: torch.Tensor,
    euler_rad: torch.Tensor,
    radius_px: float | None = None,
    n_rounds: int = 4,
    floor: float | None = 0.0,
) -> torch.Tensor:
    """Shifts (T, 2) (y, x) in pixels from the projections' centres of mass, gauge removed.

    The centre of mass is taken in a circular window of ``radius_px`` (default 0.45 × the
    smaller image side) that follows it for ``n_rounds`` rounds, so that noise far from
    the object does not enter, and of the values above ``floor`` × the stack maximum
    only (``None``: all values): a phase image's negative halo (MSP phases have one around the particle and
    artefacts at the scan's edge) would otherwise cancel most of the mass and throw the
    centre pixels away. Clipped noise adds a uniform mass in the window, whose centre
    follows the object's, so it slows the rounds without moving their fixed point; a
    floor above zero cuts the atoms' tails unevenly as they move between pixels. The
    object must stay inside the window at every tilt and the background must be zero on
    average (vacuum).
    """
    t, ny, nx = stack.shape
    dev, dt = stack.device, torch.float64
    data = stack.to(dt)
    data = torch.where(data > floor * data.max(), data, torch.zeros_like(data)) if floor is not None else data
    y = torch.arange(ny, dtype=dt, device=dev) - (ny - 1) / 2
    x = torch.arange(nx, dtype=dt, device=dev) - (nx - 1) / 2
    radius = 0.45 * min(ny, nx) if radius_px is None else float(radius_px)
    centre = torch.zeros(t, 2, dtype=dt, device=dev)
    for _ in range(n_rounds):
        r2 = (y[None, :, None] - centre[:, 0, None, None]) ** 2 + (x[None, None, :] - centre[:, 1, None, None]) ** 2
        weighted = data * (r2 <= radius**2)
        mass = weighted.sum((1, 2))
        cy = (weighted * y[None, :, None]).sum((1, 2)) / mass
        cx = (weighted * x[None, None, :]).sum((1, 2)) / mass
        centre = torch.stack([cy, cx], 1)
    return remove_translation(centre, euler_rad).to(stack.dtype)


def is_isolated(stack: torch.Tensor, border_px: int = 4, level: float = 0.05) -> bool:
    """Whether an object sits in vacuum at every tilt: the mean of each image's border
    band is below ``level`` × its interior mean, or within four standard errors of zero
    (white noise averaged over the band)."""
    _, ny, nx = stack.shape
    band = torch.ones(ny, nx, dtype=torch.bool, device=stack.device)
    band[border_px:-border_px, border_px:-border_px] = False
    edge = stack[:, band].double()
    inner = stack[:, ~band].double().mean(1).abs()
    noise = 4 * edge.std(1) / np.sqrt(edge.shape[1])
    return bool((edge.mean(1).abs() < torch.maximum(level * inner, noise)).all())


def neighbour_shifts(stack: torch.Tensor, euler_rad: torch.Tensor, upsample: int = 20) -> torch.Tensor:
    """Shifts (T, 2) (y, x) in pixels by cross-correlating neighbouring tilts, chained
    outwards from the tilt nearest 0°, gauge removed.

    Before each comparison the image at tilt θ_j is stretched across the axis by
    cos θ_i / cos θ_j about the image centre, so that a flat film looks the same in both;
    this serves extended specimens (films), for which the centre of mass is meaningless.
    """
    from scipy.ndimage import affine_transform
    from skimage.registration import phase_cross_correlation

    theta = euler_rad[:, 1].detach().cpu().double().numpy()
    order = np.argsort(theta)
    data = stack.detach().cpu().double().numpy()
    t, ny, nx = data.shape
    centre = np.array([(ny - 1) / 2, (nx - 1) / 2])
    start = int(np.argmin(np.abs(theta[order])))
    shifts = np.zeros((t, 2))
    for direction in (1, -1):
        i = start
        while 0 <= i + direction < t:
            a, b = order[i], order[i + direction]
            stretch = np.cos(theta[a]) / np.cos(theta[b])
            # output pixel u samples input at centre + (u - centre) / stretch (x only)
            matrix = np.diag([1.0, 1.0 / stretch])
            moved = affine_transform(data[b], matrix, offset=centre - matrix @ centre, order=1)
            found, _, _ = phase_cross_correlation(data[a], moved, upsample_factor=upsample, normalization=None)
            # the stretched image b is image a displaced by s_b·(1, stretch) − s_a
            shifts[b] = (shifts[a] - found) * np.array([1.0, 1.0 / stretch])
            i += direction
    return remove_translation(torch.as_tensor(shifts, dtype=stack.dtype, device=stack.device), euler_rad)
