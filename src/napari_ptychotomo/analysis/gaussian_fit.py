"""Batched 3D Gaussian least-squares fits of many atoms at once, with neighbour
subtraction (Ren et al. 2018, "Measurements of Atom Positions and Species").

Each atom i is h_i exp(−|r − c_i|² / 2s_i²) + b_i inside a small cubic window around it.
Before each fit the current model of all *other* atoms is subtracted from its window, so
close neighbours do not pull the fit; all windows are fitted together by damped
Gauss-Newton steps, one small 6×6 normal-equation system per atom solved in one batched
call. Positions are in voxel units here; the caller converts to Å.
"""

from __future__ import annotations

import torch

__all__ = ["window_offsets", "render_model", "refine_gaussians"]


def window_offsets(radius: int, device) -> torch.Tensor:
    """Integer offsets (w³, 3) of a cubic window of half-width ``radius`` voxels."""
    r = torch.arange(-radius, radius + 1, device=device)
    return torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)


def _windows(centres: torch.Tensor, offsets: torch.Tensor, shape):
    """Voxel coordinates (n, w³, 3), flat indices and in-volume mask of each atom's window."""
    anchor = torch.round(centres).long()
    coords = anchor[:, None, :] + offsets[None]
    size = torch.as_tensor(shape, device=centres.device)
    inside = ((coords >= 0) & (coords < size)).all(-1)
    clipped = torch.minimum(torch.clamp(coords, min=0), size - 1)
    flat = (clipped[..., 0] * shape[1] + clipped[..., 1]) * shape[2] + clipped[..., 2]
    return coords.to(centres.dtype), flat, inside


def _gaussians(coords, centres, heights, widths):
    d2 = ((coords - centres[:, None, :]) ** 2).sum(-1)
    return heights[:, None] * torch.exp(-d2 / (2 * widths[:, None] ** 2)), d2


def render_model(shape, centres, heights, widths, offsets) -> torch.Tensor:
    """Sum of all atoms' Gaussians (each within its window) as a flat volume."""
    coords, flat, inside = _windows(centres, offsets, shape)
    values, _ = _gaussians(coords, centres, heights, widths)
    model = torch.zeros(int(shape[0] * shape[1] * shape[2]), device=centres.device, dtype=centres.dtype)
    model.index_add_(0, flat[inside], values[inside])
    return model


def refine_gaussians(
    volume: torch.Tensor,
    centres: torch.Tensor,
    heights: torch.Tensor,
    widths: torch.Tensor,
    background: torch.Tensor,
    *,
    radius: int = 2,
    steps: int = 3,
    max_shift: float = 0.5,
    width_range: tuple[float, float] = (0.3, 4.0),
):
    """One neighbour-subtracted refinement of all atoms.

    Parameters
    ----------
    volume : (nz, ny, nx) tensor.
    centres : (n, 3) positions in voxels (z, y, x); heights, widths (voxels), background (n,).
    radius : window half-width in voxels.
    steps : Gauss-Newton steps on the fixed, neighbour-subtracted windows.
    max_shift : largest position change per step in voxels.
    width_range : allowed σ in voxels.

    Returns
    -------
    centres, heights, widths, background : updated tensors.
    """
    shape = volume.shape
    offsets = window_offsets(radius, volume.device)
    model = render_model(shape, centres, heights, widths, offsets)
    coords, flat, inside = _windows(centres, offsets, shape)
    own, _ = _gaussians(coords, centres, heights, widths)
    # the data each atom sees: the volume minus every other atom's current model
    data = volume.reshape(-1)[flat] - model[flat] + own * inside
    weight = inside.to(volume.dtype)
    eye = torch.eye(6, device=volume.device, dtype=volume.dtype)
    for _ in range(steps):
        g, d2 = _gaussians(coords, centres, heights, widths)
        residual = (data - g - background[:, None]) * weight
        s2 = widths[:, None] ** 2
        jac = (
            torch.stack(
                [
                    g * (coords[..., 0] - centres[:, None, 0]) / s2,
                    g * (coords[..., 1] - centres[:, None, 1]) / s2,
                    g * (coords[..., 2] - centres[:, None, 2]) / s2,
                    g / heights[:, None].clamp_min(1e-12),
                    g * d2 / (s2 * widths[:, None]),
                    torch.ones_like(g),
                ],
                dim=-1,
            )
            * weight[..., None]
        )
        normal = jac.transpose(1, 2) @ jac
        damping = 1e-3 * torch.diagonal(normal, dim1=1, dim2=2).mean(-1).clamp_min(1e-12)
        rhs = (jac * residual[..., None]).sum(1)
        delta = torch.linalg.solve(normal + damping[:, None, None] * eye, rhs[..., None])[..., 0]
        delta = torch.nan_to_num(delta)
        shift = delta[:, :3]
        norm = shift.norm(dim=-1, keepdim=True)
        centres = centres + shift * torch.clamp(max_shift / norm.clamp_min(1e-12), max=1.0)
        heights = (heights + delta[:, 3]).clamp_min(1e-12)
        widths = torch.clamp(widths + delta[:, 4].clamp(-0.3, 0.3), *width_range)
        background = background + delta[:, 5]
    return centres, heights, widths, background
