"""Where the probe goes in a simulated scan: the specimen tilt at each position, the probe
shifts of a partially coherent source, and the few positions the sampling search looks at
(:func:`.detector_sampling.converged_oversampling`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .specimens import Specimen

__all__ = ["pilot_raster", "source_offsets", "tilt_map"]


def source_offsets(source_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Probe shifts (k, 2) Å and weights for a Gaussian source of std ``source_size`` Å
    (3×3 Gauss-Hermite quadrature of the incoherent average over source points)."""
    if source_size <= 0:
        return np.zeros((1, 2)), np.ones(1)
    nodes, weights = np.polynomial.hermite_e.hermegauss(3)
    yy, xx = np.meshgrid(nodes, nodes, indexing="ij")
    w = np.outer(weights, weights).ravel()
    return np.stack([yy.ravel(), xx.ravel()], 1) * source_size, w / w.sum()


def tilt_map(mistilt_mrad: Any, positions: np.ndarray, scan_shape: tuple[int, int]) -> np.ndarray:
    """Specimen tilt (θ_x, θ_y) mrad at each probe position, ``(n, 2)`` float64.

    ``mistilt_mrad``: (2,) for one tilt; ``(n, 2)`` or ``(Ny, Nx, 2)`` per position (raster
    order); or a function of ``positions`` (n, 2) Å (y, x) in the specimen's frame
    returning (n, 2) or (2,) mrad.
    """
    n = len(positions)
    value = mistilt_mrad(positions.copy()) if callable(mistilt_mrad) else mistilt_mrad
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape == (2,):
        arr = np.broadcast_to(arr, (n, 2))
    elif arr.shape == (*scan_shape, 2):
        arr = arr.reshape(n, 2)
    if arr.shape != (n, 2) or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"mistilt_mrad gives shape {np.shape(value)}; expected (θx, θy) in mrad as (2,), "
            f"(n_positions={n}, 2) or {(*scan_shape, 2)}, or a function of positions (n, 2) Å"
        )
    return np.array(arr)


def pilot_raster(mistilt_mrad: Any, specimen: Specimen, scan_shape, scan_step: float):
    """Where the sampling search looks: up to 3×3 positions spanning the scan (its corners,
    edge middles and centre), as ``(shape, step)`` of a raster centred like the scan's, and
    the specimen tilt (mrad) at each, ``(k, 2)``, taken from the scan position nearest it."""
    ny, nx = (int(v) for v in scan_shape)
    shape = (min(ny, 3), min(nx, 3))
    spans = [n - 1 for n in (ny, nx) if n > 1]
    step = scan_step * min(spans) / 2 if spans else scan_step
    iy, ix = np.meshgrid(np.arange(ny) - (ny - 1) / 2, np.arange(nx) - (nx - 1) / 2, indexing="ij")
    offsets = np.stack([iy.ravel(), ix.ravel()], 1) * scan_step
    tilts = tilt_map(mistilt_mrad, offsets + specimen.centre[1:], (ny, nx))
    py, px = np.meshgrid(
        np.arange(shape[0]) - (shape[0] - 1) / 2, np.arange(shape[1]) - (shape[1] - 1) / 2, indexing="ij"
    )
    pilot = np.stack([py.ravel(), px.ravel()], 1) * step
    nearest = np.argmin(np.hypot(*(pilot[:, None, :] - offsets[None]).transpose(2, 0, 1)), axis=1)
    return shape, step, tilts[nearest]
