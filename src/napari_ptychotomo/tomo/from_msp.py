"""From per-tilt multislice ptychography results to a projection stack for tomography."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import MSPResult

__all__ = ["projections_from_msp"]


def projections_from_msp(results: Any, crop: tuple[int, int] | None = None):
    """Summed phase per tilt, cropped to a common centred field of view.

    Parameters
    ----------
    results : list of :class:`~napari_ptychotomo.data.MSPResult` (one per tilt) or a dict
        tilt index → MSPResult (as ``Project.msp``), taken in index order.
    crop : optional (ny, nx) to crop every phase image to (centred); default the
        smallest shape among the results.

    Returns
    -------
    projections : (T, ny, nx) float32 phases in rad (σ · Σ Re V, :meth:`MSPResult.phase`)
    angles_deg : (T,) the stage tilts of the results in degrees
    pixel_size : the common object pixel size in Å

    ``align_tilt_series(*projections_from_msp(results))`` starts the alignment.
    """
    items = [results[k] for k in sorted(results)] if isinstance(results, dict) else list(results)
    if not items:
        raise ValueError("results is empty; give one MSPResult per tilt")
    for k, item in enumerate(items):
        if not isinstance(item, MSPResult):
            raise ValueError(f"results[{k}] is {type(item).__name__}; expected MSPResult")
    sizes = np.array([item.pixel_size for item in items], dtype=float)
    if np.ptp(sizes) > 1e-3 * sizes.mean():
        raise ValueError(
            f"pixel_size differs between tilts ({sizes.min():.4g} to {sizes.max():.4g} Å); "
            "reconstruct every tilt on the same object sampling"
        )
    phases = [item.phase() for item in items]
    shapes = np.array([p.shape for p in phases])
    ny, nx = crop if crop is not None else tuple(shapes.min(0))
    if np.any(shapes[:, 0] < ny) or np.any(shapes[:, 1] < nx):
        raise ValueError(f"crop = {(ny, nx)} is larger than the smallest phase image {tuple(shapes.min(0))}")
    stack = np.empty((len(phases), ny, nx), np.float32)
    for k, p in enumerate(phases):
        y0, x0 = (p.shape[0] - ny) // 2, (p.shape[1] - nx) // 2
        stack[k] = p[y0 : y0 + ny, x0 : x0 + nx]
    angles = np.array([item.tilt_deg for item in items], dtype=float)
    return stack, angles, float(sizes.mean())
