"""Small views of 4D-STEM data for display: virtual bright field and mean diffraction.

Both read the intensities in batches of scan rows (or of positions), so a lazily opened
dataset of many GB is never loaded whole. No napari import here.
"""

from __future__ import annotations

import numpy as np

from ..data import ScanData

__all__ = ["bright_field_mask", "scan_views", "scan_step_angstrom"]


def bright_field_mask(scan: ScanData) -> np.ndarray:
    """Boolean detector mask ``(Ky, Kx)`` of the bright-field disk.

    A pixel belongs to the disk when its scattering angle, measured from the pattern centre
    ``(K//2, K//2)`` in units of ``calibration.detector_sampling_mrad``, is at most the
    probe semi-angle. When the disk is smaller than one pixel the centre pixel is used.
    """
    ky, kx = scan.detector_shape
    cal = scan.calibration
    ay = (np.arange(ky) - ky // 2) * cal.detector_sampling_mrad
    ax = (np.arange(kx) - kx // 2) * cal.detector_sampling_mrad
    mask = ay[:, None] ** 2 + ax[None, :] ** 2 <= cal.semiangle_mrad**2
    if not mask.any():
        mask[ky // 2, kx // 2] = True
    return mask


def scan_views(scan: ScanData, batch_bytes: int = 64 * 2**20) -> tuple[np.ndarray, np.ndarray]:
    """Virtual bright-field signal and mean diffraction pattern of one scan.

    Parameters
    ----------
    scan : the scan; ``intensities`` ``(Ny, Nx, Ky, Kx)`` or ``(n, Ky, Kx)``, possibly lazy.
    batch_bytes : at most this many bytes of float32 patterns are read at a time.

    Returns
    -------
    bright_field : ``(Ny, Nx)`` for a raster scan (or ``(n,)`` per position) float32, the
        counts inside :func:`bright_field_mask` per pattern.
    mean_pattern : ``(Ky, Kx)`` float32, the mean diffraction pattern.
    """
    data = scan.intensities
    shape = tuple(data.shape)
    if len(shape) not in (3, 4) or min(shape) < 1:
        raise ValueError(
            f"intensities have shape {shape}; expected (Ny, Nx, Ky, Kx) or (n, Ky, Kx) diffraction patterns"
        )
    mask = bright_field_mask(scan)
    pattern_bytes = 4 * shape[-1] * shape[-2]
    total = np.zeros(shape[-2:], np.float64)
    if len(shape) == 4:
        ny, nx = shape[:2]
        rows = max(1, batch_bytes // (pattern_bytes * nx))
        bright = np.empty((ny, nx), np.float32)
        for y0 in range(0, ny, rows):
            block = _checked(np.asarray(data[y0 : y0 + rows], dtype=np.float32), y0 * nx)
            bright[y0 : y0 + rows] = block[..., mask].sum(-1)
            total += block.sum(axis=(0, 1), dtype=np.float64)
        count = ny * nx
    else:
        count = shape[0]
        size = max(1, batch_bytes // pattern_bytes)
        bright = np.empty((count,), np.float32)
        for i0 in range(0, count, size):
            block = _checked(np.asarray(data[i0 : i0 + size], dtype=np.float32), i0)
            bright[i0 : i0 + size] = block[:, mask].sum(-1)
            total += block.sum(axis=0, dtype=np.float64)
        if scan.scan_shape is not None and int(np.prod(scan.scan_shape)) == count:
            bright = bright.reshape(scan.scan_shape)
    return bright, (total / max(count, 1)).astype(np.float32)


def _checked(block: np.ndarray, first: int) -> np.ndarray:
    """``block`` of patterns, refused when it holds NaN, inf or negative counts (opening a
    file checks only a sample of its patterns; the views read them all)."""
    if not np.all(np.isfinite(block)):
        bad = np.flatnonzero(~np.isfinite(block).reshape(-1, *block.shape[-2:]).all(axis=(1, 2)))
        raise ValueError(
            f"intensities: pattern(s) {(first + bad[:5]).tolist()} (counted along the scan) hold NaN or infinite counts"
        )
    if block.size and block.min() < 0:
        raise ValueError(
            f"intensities: negative counts (minimum {block.min():.3g}) among "
            f"patterns from {first} on; subtract the dark reference and clip"
        )
    return block


def scan_step_angstrom(scan: ScanData) -> tuple[float, float]:
    """Raster step ``(dy, dx)`` in Å: the calibration's ``scan_step``, else the median
    spacing of the given positions along each scan axis, else 1 Å."""
    if scan.calibration.scan_step is not None:
        step = float(scan.calibration.scan_step)
        return step, step
    if (
        scan.positions is not None
        and scan.scan_shape is not None
        and int(np.prod(scan.scan_shape)) * 2 == np.size(scan.positions)
    ):
        ny, nx = (int(v) for v in scan.scan_shape)
        pos = np.asarray(scan.positions, dtype=np.float64).reshape(ny, nx, 2)
        dy = np.median(np.abs(np.diff(pos[:, :, 0], axis=0))) if ny > 1 else np.nan
        dx = np.median(np.abs(np.diff(pos[:, :, 1], axis=1))) if nx > 1 else np.nan
        dy = dx if not np.isfinite(dy) or dy <= 0 else dy
        dx = dy if not np.isfinite(dx) or dx <= 0 else dx
        if np.isfinite(dy) and dy > 0:
            return float(dy), float(dx)
    return 1.0, 1.0
