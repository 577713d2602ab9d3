"""napari writers (npe2 single-layer writers), delegating to :func:`napari_ptychotomo.save`.

Image layers → ``.mrc``, ``.tif``, ``.ptycho.h5``; Points layers → ``.xyz``, ``.csv``.
A layer made by this plugin carries its data object in ``metadata["result"]``; when that
object still matches the layer's data it is saved as it is (a Volume keeps its origin and
units, an MSP result or scan goes whole into ``.ptycho.h5``). Any other layer is turned
into a :class:`~napari_ptychotomo.data.Volume` / image stack (voxel size from the layer's
``scale`` in Å) or :class:`~napari_ptychotomo.data.Atoms` (species from a ``species``
feature) first. Pure functions: no viewer needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data import Atoms, Volume

__all__ = ["write_image", "write_points", "image_to_object", "points_to_atoms"]


def _cubic(scale: np.ndarray) -> bool:
    return bool(np.allclose(scale, scale[-1], rtol=1e-6))


def image_to_object(data: Any, meta: dict[str, Any], native: bool = False) -> tuple[Any, dict]:
    """The object to save for an image layer and the keywords for ``save``.

    Parameters
    ----------
    data : the layer data ``(ny, nx)`` or ``(nz, ny, nx)``.
    meta : the layer attributes napari passes to writers (``scale``, ``translate``,
        ``metadata``, ``name``).
    native : the target is ``.ptycho.h5`` (any data object may be saved whole).
    """
    result = (meta.get("metadata") or {}).get("result")
    array = np.asarray(data)
    if (
        isinstance(result, Volume)
        and tuple(result.data.shape) == array.shape
        and not np.iscomplexobj(np.empty(0, dtype=result.data.dtype))
    ):
        return result, {}
    if native and result is not None and not isinstance(result, np.ndarray):
        return result, {}
    if array.ndim not in (2, 3):
        raise ValueError(
            f"layer {meta.get('name')!r} has shape {array.shape}; expected an image (ny, nx) "
            "or a volume / stack (n, ny, nx)"
        )
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    scale = np.asarray(meta.get("scale", np.ones(array.ndim)), dtype=float)
    translate = np.asarray(meta.get("translate", np.zeros(array.ndim)), dtype=float)
    if array.ndim == 3 and _cubic(scale):
        return Volume(data=array, voxel_size=float(scale[-1]), origin=translate), {}
    if native:
        volume = array[None] if array.ndim == 2 else array
        origin = np.concatenate([np.zeros(3 - len(translate)), translate])[-3:]
        return Volume(data=volume, voxel_size=float(scale[-1]), origin=origin), {}
    return array, {"voxel_size": float(scale[-1])}


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one image layer to ``.mrc``, ``.tif`` or ``.ptycho.h5``; returns ``[path]``."""
    from ..io import save

    native = str(path).lower().endswith(".ptycho.h5")
    obj, kwargs = image_to_object(data, meta, native=native)
    if native:
        kwargs["name"] = _result_name(meta)
    return [str(save(obj, path, **kwargs))]


def _result_name(meta: dict[str, Any]) -> str:
    metadata = meta.get("metadata") or {}
    for key in ("volume_name", "atoms_name", "tilt_index"):
        if metadata.get(key) is not None:
            return str(metadata[key])
    return str(meta.get("name") or "layer")


def points_to_atoms(data: Any, meta: dict[str, Any]) -> Atoms:
    """Atoms of a Points layer: the ``Atoms`` in its metadata when it still matches,
    else positions ``(n, 3)`` Å (2D points get z = 0) with ``species`` / ``intensity`` /
    ``width`` taken from the layer's features when present."""
    positions = np.asarray(data, dtype=np.float64)
    result = (meta.get("metadata") or {}).get("result")
    if (
        isinstance(result, Atoms)
        and np.shape(result.positions) == positions.shape
        and np.allclose(result.positions, positions)
    ):
        return result
    if positions.ndim != 2 or positions.shape[1] not in (2, 3):
        raise ValueError(
            f"layer {meta.get('name')!r} has points of shape {positions.shape}; expected "
            "(n, 3) as (z, y, x) or (n, 2) as (y, x) in Å"
        )
    if positions.shape[1] == 2:
        positions = np.concatenate([np.zeros((len(positions), 1)), positions], axis=1)
    features = meta.get("features")
    columns = {} if features is None else {k: np.asarray(features[k]) for k in features}
    n = len(positions)
    species = columns.get("species", np.zeros(n, int)).astype(int)
    names = None
    if "element" in columns and n:
        names = [None] * (int(species.max()) + 1)
        for s, e in zip(species, columns["element"]):
            names[s] = str(e)
        names = [name or f"X{s}" for s, name in enumerate(names)]
    return Atoms(
        positions=positions,
        species=species,
        intensities=_measured(columns, "intensity"),
        widths=_measured(columns, "width"),
        names=names,
    )


def _measured(columns: dict[str, np.ndarray], key: str) -> np.ndarray | None:
    values = columns.get(key)
    if values is None:
        return None
    values = values.astype(float)
    return None if values.size and np.all(np.isnan(values)) else values


def write_points(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Points layer as atoms to ``.xyz`` (extended XYZ) or ``.csv``."""
    from ..io import save

    return [str(save(points_to_atoms(data, meta), Path(path)))]
