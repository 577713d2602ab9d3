"""Joint least-squares refinement of a sparse (peak) model and the tilt geometry.

The last step of projection matching (:mod:`.projection_matching`): the peaks of the
matched volume (Gaussian blobs at 3D positions, with heights) and the geometry (the
in-plane axis angle ψ shared by all tilts, each tilt's θ, each tilt's shift) are fitted
together to the projections by gradient descent on

    L = Σ_k ‖ Σ_i h_i G_σ(u − P_k(R_k r_i) − t_k) − p_k ‖² / Σ_k ‖p_k‖²,

with P_k the projection onto the image (y, x) and G_σ a 2D Gaussian. Unlike a voxel volume
refitted at each geometry, a few hundred blobs seen by every tilt cannot take up one
tilt's misplacement, and a change of ψ cannot be undone by turning them (the tilts share
one axis), so the geometry is pinned by the data as a bundle adjustment would pin it.
Per-tilt θ matters because a tilt off its nominal value moves every feature away from
the depth of the centre across the axis, which would otherwise read as a shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .rotation import rotation_matrix

__all__ = ["PeakFit", "refine_peak_model", "render_blobs"]


def render_blobs(
    positions_px: torch.Tensor,
    heights: torch.Tensor,
    euler_rad: torch.Tensor,
    shifts_px: torch.Tensor,
    shape: tuple[int, int],
    sigma_px: float,
) -> torch.Tensor:
    """Projections (T, ny, nx) of Gaussian blobs (σ in image pixels) at ``positions_px``
    (n, 3) (x, y, z) in image pixels from the volume centre, rotated by R(euler) and
    shifted by ``shifts_px`` (T, 2) (y, x); differentiable in every argument."""
    ny, nx = shape
    dt = positions_px.dtype
    y = torch.arange(ny, dtype=dt, device=positions_px.device) - (ny - 1) / 2
    x = torch.arange(nx, dtype=dt, device=positions_px.device) - (nx - 1) / 2
    moved = torch.einsum("tij,nj->tni", rotation_matrix(euler_rad.to(dt)), positions_px)  # (T, n, 3)
    gx = torch.exp(-((x[None, None] - moved[..., 0:1] - shifts_px[:, None, 1:2]) ** 2) / (2 * sigma_px**2))
    gy = torch.exp(-((y[None, None] - moved[..., 1:2] - shifts_px[:, None, 0:1]) ** 2) / (2 * sigma_px**2))
    return torch.einsum("tny,tnx->tyx", gy * heights[None, :, None], gx)


@dataclass
class PeakFit:
    """Outcome of :func:`refine_peak_model`: shifts (T, 2) (y, x) px, Euler angles (T, 3)
    rad, peak positions (n, 3) (x, y, z) in image px from the volume centre, heights (n,),
    and the relative misfit before and after."""

    shifts_px: torch.Tensor
    euler_rad: torch.Tensor
    positions_px: torch.Tensor
    heights: torch.Tensor
    misfit_start: float
    misfit_end: float


def refine_peak_model(
    projections: torch.Tensor,
    positions_px: np.ndarray,
    heights: np.ndarray,
    euler_rad: torch.Tensor,
    shifts_px: torch.Tensor,
    sigma_px: float,
    n_iter: int = 150,
    refine_psi: bool = True,
    refine_tilts: bool = True,
    lr_px: float = 0.05,
    lr_deg: float = 0.02,
    optimizer: str = "adam",
) -> PeakFit:
    """Fit blob positions and heights, shifts, ψ (shared) and θ_k to ``projections``.

    Adam steps of ``lr_px`` pixels for positions and shifts and ``lr_deg`` degrees for the
    angles (heights relative to their start). The mean change of θ_k is a turn of the
    model about the tilt axis (free) and is removed; so is the mean shift along the axis.
    Start within about a blob width (σ) of the answer: the fit is local.
    """
    dt = torch.float32
    data = projections.detach().to("cpu", dt)
    shape = tuple(data.shape[-2:])
    norm = float(data.pow(2).sum())
    pos = torch.as_tensor(positions_px, dtype=dt).clone().requires_grad_(True)
    shifts = shifts_px.detach().to("cpu", dt).clone().requires_grad_(True)
    euler0 = euler_rad.detach().to("cpu", torch.float64)
    h = torch.as_tensor(heights, dtype=dt).clamp(min=1e-12)
    with torch.no_grad():  # the blobs' units are the volume's: scale them to the data first
        model = render_blobs(pos, h, euler0, shifts, shape, sigma_px)
        h = h * (model * data).sum() / model.pow(2).sum().clamp(min=1e-30)
    log_h = torch.log(h.clamp(min=1e-12)).requires_grad_(True)
    d_psi = torch.zeros((), dtype=torch.float64, requires_grad=refine_psi)
    d_theta = torch.zeros(len(data), dtype=torch.float64, requires_grad=refine_tilts)
    rad = np.deg2rad(lr_deg)
    groups = [{"params": [pos, shifts], "lr": lr_px}, {"params": [log_h], "lr": 0.02}]
    # a turn of the whole model (about x and z; about y it is the mean tilt): a collective
    # motion that steps on single positions would take hundreds of iterations to make,
    # and the one that a change of ψ is almost traded against
    turn = torch.zeros(3, dtype=torch.float64, requires_grad=refine_psi)
    angles = [p for p, on in ((d_psi, refine_psi), (d_theta, refine_tilts), (turn, refine_psi)) if on]
    if angles:
        groups.append({"params": angles, "lr": rad})
    opt = torch.optim.Adam(groups)

    def current_euler(scale_psi=1.0):
        e = euler0.clone()
        e[:, 2] = e[:, 2] + d_psi * scale_psi
        e[:, 1] = e[:, 1] + d_theta - d_theta.mean()
        return e

    def turned():
        return pos @ rotation_matrix(turn).to(dt).T

    def misfit(scale_psi=1.0):
        model = render_blobs(turned(), log_h.exp(), current_euler(scale_psi), shifts, shape, sigma_px)
        return (model - data).pow(2).sum() / norm

    with torch.no_grad():
        start = float(misfit())
    if optimizer == "lbfgs":
        # ψ in units of 1/radius rad, so that a unit step moves the model's edge by ~1 px
        radius = float(pos.detach().norm(dim=1).max().clamp(min=1.0))
        d_psi.data /= 1.0
        params = [pos, shifts, log_h] + angles
        opt = torch.optim.LBFGS(params, lr=1, max_iter=n_iter, history_size=20, line_search_fn="strong_wolfe")
        scale_psi = 1.0 / radius

        def closure():
            opt.zero_grad()
            loss = misfit(scale_psi)
            loss.backward()
            return loss

        opt.step(closure)
    else:
        for _ in range(n_iter):
            opt.zero_grad()
            loss = misfit()
            loss.backward()
            opt.step()
    if optimizer == "lbfgs":
        d_psi.data *= scale_psi
    with torch.no_grad():
        end = float(misfit())
        out_shifts = shifts.detach().double()
        out_shifts[:, 0] -= out_shifts[:, 0].mean()
    return PeakFit(out_shifts, current_euler().detach(), turned().detach(), log_h.exp().detach(), start, end)
