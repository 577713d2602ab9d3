"""Live previews of volume engines, pure (no napari): an orthogonal-slice mosaic.

The end-to-end and plane-wave engines preview the central planes ``yx``, ``zx`` and
``zy`` of Re V (:func:`napari_ptychotomo.joint.result.orthogonal_slices`).
:func:`orthogonal_mosaic` lays them out as one 2D image, as orthogonal views are usually
drawn: ``yx`` top left, ``zy`` (transposed to y × z) to its right sharing y, ``zx`` below
sharing x; so one layer shows all three at the volume's voxel size.
"""

from __future__ import annotations

import numpy as np

__all__ = ["orthogonal_mosaic", "mosaic_origins"]


def mosaic_origins(shape: tuple[int, int, int], gap: int = 2) -> dict[str, tuple[int, int]]:
    """Top-left pixel (row, column) of each plane in the mosaic of a ``(nz, ny, nx)`` volume."""
    nz, ny, nx = shape
    return {"yx": (0, 0), "zy": (0, nx + gap), "zx": (ny + gap, 0)}


def orthogonal_mosaic(slices: dict[str, np.ndarray], gap: int = 2) -> np.ndarray:
    """One image ``(ny + gap + nz, nx + gap + nz)`` of the three central planes.

    Parameters
    ----------
    slices : ``{"yx": (ny, nx), "zx": (nz, nx), "zy": (nz, ny)}`` as the engines preview.
    gap : pixels between the planes, filled with the smallest value shown.
    """
    yx, zx, zy = (
        np.real(np.asarray(slices[key], dtype=np.complex64 if np.iscomplexobj(slices[key]) else np.float32))
        for key in ("yx", "zx", "zy")
    )
    ny, nx = yx.shape
    nz = zx.shape[0]
    if zx.shape != (nz, nx) or zy.shape != (nz, ny):
        raise ValueError(
            f"slices have shapes yx {yx.shape}, zx {zx.shape}, zy {zy.shape}; "
            "expected (ny, nx), (nz, nx), (nz, ny) of one volume"
        )
    fill = float(min(yx.min(), zx.min(), zy.min()))
    out = np.full((ny + gap + nz, nx + gap + nz), fill, dtype=np.float32)
    origins = mosaic_origins((nz, ny, nx), gap)
    (r, c) = origins["yx"]
    out[r : r + ny, c : c + nx] = yx
    (r, c) = origins["zy"]
    out[r : r + ny, c : c + nz] = zy.T
    (r, c) = origins["zx"]
    out[r : r + nz, c : c + nx] = zx
    return out
