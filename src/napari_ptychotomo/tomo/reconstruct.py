"""Linear tomography: fit a volume to aligned projections by gradient descent.

The inner loop of You et al. 2025, Algorithm 2 (volume update with the alignment fixed),
reused for the final full-resolution reconstruction of Romanov et al. 2025 (optionally
through a σ = 0.5 px Gaussian blur of the volume, so that no frequency beyond Nyquist is
populated, and with projections masked by the particle's support).

Loss: mean squared error between the model projections (:func:`.projector.project`) and
the measured ones, plus optional total-variation and edge penalties; optional
non-negativity by projection after each Adam step.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from ..data import Alignment, Volume
from ..data.checks import check_type
from ..engine import Progress, check_memory, resolve_device, run
from ..params_meta import describes, ui
from .projector import project, projector_bytes_per_tilt

__all__ = ["fit_volume", "fit_volume_cgls", "gaussian_blur3d", "reconstruct_linear", "reconstruct_linear_steps"]


def gaussian_blur3d(volume: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(nz, ny, nx)`` with σ in voxels (differentiable)."""
    if sigma_px <= 0:
        return volume
    radius = max(1, int(np.ceil(3 * sigma_px)))
    x = torch.arange(-radius, radius + 1, dtype=volume.dtype, device=volume.device)
    kernel = torch.exp(-(x**2) / (2 * sigma_px**2))
    kernel = kernel / kernel.sum()
    out = volume[None, None]
    for dim in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + dim] = -1
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - dim)] = pad[2 * (2 - dim) + 1] = radius
        out = torch.nn.functional.conv3d(torch.nn.functional.pad(out, pad), kernel.reshape(shape))
    return out[0, 0]


def total_variation(volume: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV: mean |finite difference| over the three axes."""
    return sum(volume.diff(dim=d).abs().mean() for d in range(3))


def edge_weight_map(shape, width: int, device, dtype) -> torch.Tensor:
    """1 within ``width`` voxels of the volume's x/y/z faces, 0 inside."""
    w = torch.zeros(shape, device=device, dtype=dtype)
    if width > 0:
        w[:width] = w[-width:] = 1
        w[:, :width] = w[:, -width:] = 1
        w[:, :, :width] = w[:, :, -width:] = 1
    return w


def fit_volume(
    projections: torch.Tensor,
    euler_rad: torch.Tensor,
    shifts_px: torch.Tensor,
    shape: tuple[int, int, int],
    n_iter: int = 50,
    lr: float = 0.05,
    volume: torch.Tensor | None = None,
    nonnegative: bool = True,
    tv_weight: float = 0.0,
    edge_weight: float = 0.0,
    edge_width: int = 2,
    blur_sigma_px: float = 0.0,
    support: torch.Tensor | None = None,
) -> Generator[float, None, torch.Tensor]:
    """Adam on the volume with the alignment fixed; yields the loss, returns the volume.

    ``projections`` (T, ny, nx) in their units; the volume is in those units per voxel
    (unit voxel size). ``lr`` is relative to the typical voxel value
    ``max|projections| / nz``. ``support`` (nz, ny, nx) in [0, 1] multiplies the volume.
    """
    dev, dt = projections.device, projections.dtype
    nz = shape[0]
    scale = float(projections.abs().max()) / nz or 1.0
    if volume is None:
        volume = torch.zeros(shape, dtype=dt, device=dev)
    param = (volume.detach() / scale).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([param], lr=lr)
    target = projections / (scale * nz)  # normalised to O(1)
    edges = edge_weight_map(shape, edge_width, dev, dt) if edge_weight else None
    euler_rad, shifts_px = euler_rad.detach(), shifts_px.detach()

    def model(p):
        v = p if support is None else p * support
        return gaussian_blur3d(v, blur_sigma_px)

    for _ in range(n_iter):
        optimiser.zero_grad()
        residual = project(model(param), euler_rad, shifts_px, target.shape[-2:]) / nz - target
        loss = residual.pow(2).mean()
        if tv_weight:
            loss = loss + tv_weight * total_variation(param)
        if edges is not None:
            loss = loss + edge_weight * (edges * param).pow(2).mean()
        loss.backward()
        optimiser.step()
        if nonnegative:
            with torch.no_grad():
                param.clamp_(min=0)
        yield float(loss.detach())
    return model(param.detach()) * scale


def fit_volume_cgls(
    projections: torch.Tensor,
    euler_rad: torch.Tensor,
    shifts_px: torch.Tensor,
    shape: tuple[int, int, int],
    n_iter: int = 20,
    support: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float]:
    """Least-squares volume (conjugate gradients on the normal equations, CGLS).

    Minimises ||A(M v) − p||² over v, with A the projector at the given alignment and M an
    optional support mask; converges much faster than Adam and is used where the fit
    must be converged (the tilt-axis search of :mod:`.align`). Returns the volume (M v)
    and the final mean squared residual.
    """
    dev, dt = projections.device, projections.dtype
    euler_rad, shifts_px = euler_rad.detach(), shifts_px.detach()
    mask = torch.ones(shape, dtype=dt, device=dev) if support is None else support.to(dt)
    out_shape = projections.shape[-2:]

    def forward(v):
        return project(v * mask, euler_rad, shifts_px, out_shape)

    def adjoint(r):
        v = torch.zeros(shape, dtype=dt, device=dev, requires_grad=True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(forward(v), v, r)
        return grad

    x = torch.zeros(shape, dtype=dt, device=dev)
    r = projections.detach().clone()
    s = adjoint(r)
    p, gamma = s, float(s.pow(2).sum())
    for _ in range(n_iter):
        if gamma == 0:
            break
        q = forward(p)
        alpha = gamma / max(float(q.pow(2).sum()), 1e-30)
        x = x + alpha * p
        r = r - alpha * q
        s = adjoint(r)
        gamma_new = float(s.pow(2).sum())
        p, gamma = s + (gamma_new / gamma) * p, gamma_new
    return x * mask, float(r.pow(2).mean())


def linear_bytes(
    shape: tuple[int, int, int],
    projections_shape: tuple[int, int, int],
    blur_sigma_px: float = 0.0,
    tv_weight: float = 0.0,
    edge_weight: float = 0.0,
    support: bool = False,
) -> int:
    """Rough bytes :func:`fit_volume` needs (float32): volume-sized tensors (the volume,
    its gradient, Adam's two moments and the zero start; the blur's padded copies kept for
    the backward pass; the support and its product; the edge map; the TV differences),
    five projection stacks (measured, target, model, residual, its gradient) and the
    projector's smallest chunk of tilts (an eighth of them, see :func:`.projector.project`)."""
    voxels = int(np.prod([int(n) for n in shape], dtype=np.int64))
    volumes = 5 + (4 if blur_sigma_px > 0 else 0) + (2 if support else 0) + (1 if edge_weight else 0)
    volumes += 6 if tv_weight else 0
    t, ny, nx = projections_shape
    per_tilt = projector_bytes_per_tilt(shape, (ny, nx))
    return 4 * (volumes * voxels + 5 * t * ny * nx) + per_tilt * max(1, t // 8)


def _as_tensor(array, name, ndim, device, dtype=torch.float32):
    out = torch.as_tensor(np.asarray(array), dtype=dtype, device=device)
    if out.ndim != ndim:
        raise ValueError(f"{name} has shape {tuple(out.shape)}; expected {ndim} dimensions")
    return out


@describes(
    docs="reconstruct_linear",
    n_iter=ui("iterations", min=1, max=5000, tooltip="Adam iterations of the volume fit."),
    nonnegative=ui("non-negative", tooltip="Clip the volume at zero after each update."),
    tv_weight=ui(
        "TV weight",
        min=0.0,
        max=10.0,
        step=0.01,
        tooltip="Weight of the total-variation penalty of the volume, in units of the projection error; 0 = off.",
    ),
)
def reconstruct_linear_steps(
    projections,
    alignment: Alignment,
    pixel_size: float,
    shape: tuple[int, int, int] | None = None,
    n_iter: int = 50,
    lr: float = 0.2,
    nonnegative: bool = True,
    tv_weight: float = 0.0,
    edge_weight: float = 0.0,
    blur_sigma_px: float = 0.5,
    projection_mask=None,
    support=None,
    device: Any = "auto",
    preview_every: int = 10,
) -> Generator[Progress, None, Volume]:
    """Generator form of :func:`reconstruct_linear`: yields Progress, returns the Volume."""
    dev = resolve_device(device)
    proj = _as_tensor(projections, "projections", 3, dev)
    check_type("alignment", alignment, Alignment, "Alignment.from_angles(angles_deg) builds one from nominal tilts")
    alignment.validate()
    if len(alignment.euler_deg) != proj.shape[0]:
        raise ValueError(
            f"alignment has {len(alignment.euler_deg)} tilts but projections has "
            f"{proj.shape[0]}; give one Euler triple and shift per projection"
        )
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"pixel_size = {pixel_size!r}; expected a positive size in Å")
    for name, value in (("n_iter", n_iter), ("preview_every", preview_every)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} = {value!r}; expected a positive integer (iterations)")
    t, ny, nx = proj.shape
    shape = tuple(shape or (nx, ny, nx))
    need = linear_bytes(shape, (t, ny, nx), blur_sigma_px, tv_weight, edge_weight, support is not None)
    check_memory(
        f"linear tomography of a {'×'.join(str(int(n)) for n in shape)}-voxel volume from {t} projections of "
        f"{ny}×{nx} px (a smaller shape, or binned projections)",
        need,
        0,
        1,
        dev,
    )
    if projection_mask is not None:
        proj = proj * _as_tensor(projection_mask, "projection_mask", 3, dev)
    sup = None if support is None else _as_tensor(support, "support", 3, dev)
    euler = torch.as_tensor(np.deg2rad(alignment.euler_deg), dtype=torch.float32, device=dev)
    shifts = torch.as_tensor(np.asarray(alignment.shifts) / pixel_size, dtype=torch.float32, device=dev)
    fit = fit_volume(
        proj,
        euler,
        shifts,
        shape,
        n_iter,
        lr,
        None,
        nonnegative,
        tv_weight,
        edge_weight,
        blur_sigma_px=blur_sigma_px,
        support=sup,
    )
    step = 0
    while True:
        try:
            loss = next(fit)
        except StopIteration as stop:
            volume = stop.value
            break
        step += 1
        if step % preview_every == 0 or step == n_iter:
            yield Progress(step, n_iter, loss, message="linear tomography")
    # projections are line integrals in pixel units; per Å: divide by the voxel size
    result = Volume(
        data=(volume / pixel_size).cpu().numpy().astype(np.float32),
        voxel_size=float(pixel_size),
        origin=np.zeros(3),
        units="projection unit per Å",
        provenance={"step": "linear tomography", "n_iter": n_iter, "blur_sigma_px": blur_sigma_px},
    )
    yield Progress(n_iter, n_iter, loss, preview=result.data[result.shape[0] // 2], result=result)
    return result


def reconstruct_linear(projections, alignment: Alignment, pixel_size: float, **kwargs) -> Volume:
    """Full-resolution linear tomography with the alignment fixed (Romanov et al. 2025).

    Parameters
    ----------
    projections : (T, ny, nx) aligned-or-not projections (e.g. phases in rad).
    alignment : :class:`~napari_ptychotomo.data.Alignment` with ``euler_deg`` (T, 3) and
        ``shifts`` (T, 2) in Å, the shift found in each projection.
    pixel_size : projection pixel size in Å (= voxel size of the result).
    shape : volume shape (nz, ny, nx); default (nx, ny, nx).
    n_iter, lr : Adam iterations and relative step size.
    nonnegative, tv_weight, edge_weight : constraints and penalties.
    blur_sigma_px : Gaussian blur σ in voxels inside the forward model (0.5 as in Romanov
        et al.; 0 disables).
    projection_mask : optional (T, ny, nx) weights applied to the projections (e.g. from
        :func:`project_mask`), ``support`` optional (nz, ny, nx) volume support.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``...

    Returns
    -------
    Volume in projection units per Å (rad/Å for phases; divide by σ(E) for V).
    """
    return run(reconstruct_linear_steps(projections, alignment, pixel_size, **kwargs))
