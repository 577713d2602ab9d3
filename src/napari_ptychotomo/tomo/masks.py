"""Support masks of a particle and their projections (Romanov et al. 2025, section 2).

A low-resolution reconstruction is binarised above a threshold and blurred into a mask
volume that outlines the particle; its projections at the tilt series' alignment multiply
the measured projections so that the full-resolution reconstruction ignores the substrate.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Alignment, Volume
from ..params_meta import describes, ui
from .projector import project
from .reconstruct import gaussian_blur3d

__all__ = ["make_support_mask", "project_mask"]


@describes(
    threshold=ui(
        "mask threshold (fraction of max)",
        min=0.01,
        max=0.99,
        step=0.05,
        tooltip="Voxels above this fraction of the volume maximum seed the support mask (then blurred, which "
        "dilates it, and thresholded again).",
    )
)
def make_support_mask(
    volume,
    threshold: float = 0.2,
    blur_sigma_px: float = 2.0,
    level: float = 0.1,
    shape: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Boolean support (nz, ny, nx) of the particle in a (low-resolution) volume.

    Voxels above ``threshold`` × the volume maximum are kept, the binary map is blurred
    with a Gaussian of ``blur_sigma_px`` voxels (which dilates it by about 2σ) and
    thresholded again at ``level``. ``shape`` resamples the mask (e.g. from the
    downsampled alignment volume to full resolution) before the final threshold.

    Parameters
    ----------
    volume : Volume or (nz, ny, nx) array.
    """
    data = volume.data if isinstance(volume, Volume) else volume
    data = torch.as_tensor(np.asarray(data), dtype=torch.float32)
    if data.ndim != 3:
        raise ValueError(f"volume has shape {tuple(data.shape)}; expected (nz, ny, nx)")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold = {threshold!r}; expected a fraction of the maximum in (0, 1)")
    binary = (data > threshold * data.max()).float()
    soft = gaussian_blur3d(binary, blur_sigma_px)
    if shape is not None and tuple(shape) != tuple(soft.shape):
        soft = F.interpolate(soft[None, None], size=tuple(shape), mode="trilinear", align_corners=True)[0, 0]
    return (soft > level).numpy()


def project_mask(mask, alignment: Alignment, pixel_size: float, out_shape=None, soft_px: float = 1.0) -> np.ndarray:
    """Projections (T, ny, nx) in [0, 1] of a support mask at each tilt's alignment.

    A pixel is 1 where its ray meets the support, with a soft edge of ``soft_px``
    pixels; multiply measured projections by it to remove what lies outside the particle.
    ``pixel_size`` in Å converts the alignment's shifts to pixels.
    """
    alignment.validate()
    m = torch.as_tensor(np.asarray(mask), dtype=torch.float32)
    if m.ndim != 3:
        raise ValueError(f"mask has shape {tuple(m.shape)}; expected (nz, ny, nx)")
    euler = torch.as_tensor(np.deg2rad(alignment.euler_deg), dtype=torch.float32)
    shifts = torch.as_tensor(np.asarray(alignment.shifts) / pixel_size, dtype=torch.float32)
    with torch.no_grad():
        path = project(m, euler, shifts, out_shape)  # path length through the support
    return torch.clamp(path / max(soft_px, 1e-6), 0, 1).numpy()
