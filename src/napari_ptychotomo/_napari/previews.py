"""Live previews of volume engines, pure (no napari): an orthogonal-slice mosaic and the
state a stopped engine leaves behind.

The end-to-end and plane-wave engines preview the central planes ``yx``, ``zx`` and
``zy`` of Re V (:func:`napari_ptychotomo.joint.result.orthogonal_slices`).
:func:`orthogonal_mosaic` lays them out as one 2D image, as orthogonal views are usually
drawn: ``yx`` top left, ``zy`` (transposed to y × z) to its right sharing y, ``zx`` below
sharing x; so one layer shows all three at the volume's voxel size.

:func:`suspended_tensor` reads a named local of the engine generator that is suspended at a
``yield`` (following ``yield from`` to the innermost one). The engines yield no full
volume while running; after Stop the widget rebuilds the partial result from the last
good volume the engine holds (``last_good`` in the 4D-STEM engine, ``x`` in the
plane-wave one). The names are the engines' own; a test catches a rename.
"""

from __future__ import annotations

import inspect
from typing import Any, Generator

import numpy as np

__all__ = ["orthogonal_mosaic", "mosaic_origins", "suspended_tensor"]


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
    yx, zx, zy = (np.real(np.asarray(slices[key], dtype=np.complex64 if np.iscomplexobj(
        slices[key]) else np.float32)) for key in ("yx", "zx", "zy"))
    ny, nx = yx.shape
    nz = zx.shape[0]
    if zx.shape != (nz, nx) or zy.shape != (nz, ny):
        raise ValueError(f"slices have shapes yx {yx.shape}, zx {zx.shape}, zy {zy.shape}; "
                         "expected (ny, nx), (nz, nx), (nz, ny) of one volume")
    fill = float(min(yx.min(), zx.min(), zy.min()))
    out = np.full((ny + gap + nz, nx + gap + nz), fill, dtype=np.float32)
    origins = mosaic_origins((nz, ny, nx), gap)
    (r, c) = origins["yx"]
    out[r:r + ny, c:c + nx] = yx
    (r, c) = origins["zy"]
    out[r:r + ny, c:c + nz] = zy.T
    (r, c) = origins["zx"]
    out[r:r + nz, c:c + nx] = zx
    return out


def suspended_tensor(generator: Generator, names: tuple[str, ...]) -> Any:
    """The first of ``names`` bound in the innermost suspended frame of ``generator``
    (a torch tensor or array), or ``None`` when the generator has finished or none is bound."""
    gen: Any = generator
    while inspect.isgenerator(getattr(gen, "gi_yieldfrom", None)):
        gen = gen.gi_yieldfrom
    frame = getattr(gen, "gi_frame", None)
    if frame is None:
        return None
    local = frame.f_locals
    for name in names:
        if local.get(name) is not None:
            return local[name]
    return None
