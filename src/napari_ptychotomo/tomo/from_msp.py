"""From per-tilt multislice ptychography results to a projection stack for tomography.

Frames: each MSP object has its own grid (pixel (0, 0) at the scan coordinate
``provenance["object_origin"]``, positions in Å in that object frame), padded around its
scan. The tomographic projector puts the rotation centre at pixel ``(n - 1) / 2`` of every
projection (:mod:`.projector`). The scan is centred on the specimen (up to the per-tilt
shifts that alignment finds), so every phase image is resampled so that the centre of its
scan, the mean of its probe positions, lands exactly on pixel ``(n - 1) / 2``; a plain
centred crop of the object array would be off by up to a pixel, differently for objects
of different sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import MSPResult

__all__ = ["largest_common_field", "projections_from_msp", "scan_centre_px", "scan_field"]


def scan_centre_px(result: MSPResult) -> np.ndarray:
    """Centre (y, x) of the probe positions of one MSP result, in object pixels."""
    positions = np.asarray(result.positions, dtype=np.float64)
    return positions.mean(axis=0) / float(result.pixel_size)


def _largest_centred_window(shape, centre) -> tuple[int, int]:
    """Largest (ny, nx) whose centre (n - 1) / 2 sits on ``centre`` inside ``shape``."""
    out = []
    for n, c in zip(shape, centre):
        half = min(c, n - 1 - c)  # room on the nearer side, in pixels
        out.append(max(1, int(np.floor(2 * half)) + 1))
    return tuple(out)


def _items(results: Any) -> list[MSPResult]:
    items = [results[k] for k in sorted(results)] if isinstance(results, dict) else list(results)
    if not items:
        raise ValueError("results is empty; give one MSPResult per tilt")
    for k, item in enumerate(items):
        if not isinstance(item, MSPResult):
            raise ValueError(f"results[{k}] is {type(item).__name__}; expected MSPResult")
    return items


def _centres_and_fits(items: list[MSPResult], centre: str):
    if centre not in ("scan", "array"):
        raise ValueError(f"centre = {centre!r}; expected 'scan' or 'array'")
    shapes = np.array([np.shape(item.object)[-2:] for item in items])
    if centre == "array":
        return [(s - 1) / 2 for s in shapes], shapes
    centres = [scan_centre_px(item) for item in items]
    fits = np.array([_largest_centred_window(s, c) for s, c in zip(shapes, centres)])
    return centres, fits


def largest_common_field(results: Any, centre: str = "scan") -> tuple[int, int]:
    """The largest (ny, nx) field in object pixels that fits inside every MSP object
    around its scan centre (``centre="scan"``) or array centre (``"array"``)."""
    _centres, fits = _centres_and_fits(_items(results), centre)
    return tuple(int(v) for v in fits.min(0))


def _resample(image: np.ndarray, centre, size) -> np.ndarray:
    """``size`` window of ``image`` (cubic spline) with ``centre`` on its middle pixel."""
    from scipy.ndimage import map_coordinates

    axes = [c - (n - 1) / 2 + np.arange(n) for c, n in zip(centre, size)]
    yy, xx = np.meshgrid(*axes, indexing="ij")
    return map_coordinates(image.astype(np.float64), [yy, xx], order=3, mode="nearest")


def scan_field(results: Any) -> tuple[int, int]:
    """(ny, nx) in object pixels spanned by the scan positions of every result (the
    smallest over the tilts): the field where the MSP object is well determined."""
    items = _items(results)
    spans = np.array([np.ptp(np.asarray(item.positions), axis=0) / item.pixel_size for item in items])
    return tuple(int(np.floor(v)) + 1 for v in spans.min(0))


def _subtract_edge_median(image: np.ndarray, width: int = 2) -> np.ndarray:
    frame = np.ones(image.shape, bool)
    frame[width:-width, width:-width] = False
    return image - np.median(image[frame])


def projections_from_msp(
    results: Any, crop: tuple[int, int] | None = None, centre: str = "scan", background: str | None = "edge"
):
    """Summed phase per tilt, on a common field centred on each tilt's scan centre.

    Parameters
    ----------
    results : list of :class:`~napari_ptychotomo.data.MSPResult` (one per tilt) or a dict
        tilt index → MSPResult (as ``Project.msp``), taken in index order.
    crop : optional (ny, nx) field in object pixels; default the largest field that fits
        inside every object around its centre.
    centre : ``"scan"`` (default): the mean probe position of each result lands on pixel
        ``(n - 1) / 2`` (sub-pixel, cubic-spline resampling), the convention of the
        projector's rotation centre; ``"array"``: a centred integer crop of each object
        array (no resampling).
    background : ``"edge"`` (default): subtract from each projection the median of its
        outer 2-pixel frame, taken as vacuum; ptychography leaves the phase of the
        scanned area undetermined up to a constant (the probe can take it), which differs
        from tilt to tilt. The field must then have vacuum at its edges at every tilt.
        ``None``: no change.

    Returns
    -------
    projections : (T, ny, nx) float32 phases in rad (σ · Σ Re V, :meth:`MSPResult.phase`)
    angles_deg : (T,) the stage tilts of the results in degrees
    pixel_size : the common object pixel size in Å

    ``align_tilt_series(*projections_from_msp(results))`` starts the alignment.
    """
    items = _items(results)
    if background not in ("edge", None):
        raise ValueError(f"background = {background!r}; expected 'edge' or None")
    centres, fits = _centres_and_fits(items, centre)
    sizes = np.array([item.pixel_size for item in items], dtype=float)
    if np.ptp(sizes) > 1e-3 * sizes.mean():
        raise ValueError(
            f"pixel_size differs between tilts ({sizes.min():.4g} to {sizes.max():.4g} Å); "
            "reconstruct every tilt on the same object sampling"
        )
    phases = [item.phase() for item in items]
    ny, nx = tuple(int(v) for v in (crop if crop is not None else fits.min(0)))
    if np.any(fits[:, 0] < ny) or np.any(fits[:, 1] < nx):
        raise ValueError(
            f"crop = {(ny, nx)} is larger than the largest field {tuple(fits.min(0))} px "
            f"that fits in every object around its {'scan' if centre == 'scan' else 'array'} centre"
        )
    stack = np.empty((len(phases), ny, nx), np.float32)
    for k, (p, c) in enumerate(zip(phases, centres)):
        if centre == "scan":
            stack[k] = _resample(p, c, (ny, nx))
        else:
            y0, x0 = (p.shape[0] - ny) // 2, (p.shape[1] - nx) // 2
            stack[k] = p[y0 : y0 + ny, x0 : x0 + nx]
        if background == "edge" and min(ny, nx) > 4:
            stack[k] = _subtract_edge_median(stack[k])
    angles = np.array([item.tilt_deg for item in items], dtype=float)
    return stack, angles, float(sizes.mean())
