"""What the "Inspect" widget computes, as pure functions (numpy / scipy, no napari).

Coordinates: world coordinates are physical (Å) as napari's layers with ``scale`` in Å
give them; a layer's data index is ``(world − translate) / scale`` (no rotation or shear).
Volumes are ``(z, y, x)``; tilt maps are the ``(n, 2)`` per-position (θx, θy) in mrad of an
:class:`~napari_ptychotomo.data.MSPResult` at its probe positions ``(n, 2)`` (y, x) in Å.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["world_to_index", "orthogonal_views", "line_profile", "points_in_shape", "region_statistics"]


def world_to_index(point: Any, scale: Any, translate: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Nearest voxel index of a world point (the last ``len(shape)`` coordinates), clipped
    into the array."""
    n = len(shape)
    point = np.asarray(point, dtype=float)[-n:]
    index = np.rint((point - np.asarray(translate, float)[-n:]) / np.asarray(scale, float)[-n:])
    return tuple(int(np.clip(i, 0, s - 1)) for i, s in zip(index, shape))


def orthogonal_views(volume: np.ndarray, index: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The three planes through voxel ``index`` (z, y, x): ``"yx"`` (ny, nx) at z,
    ``"zx"`` (nz, nx) at y, ``"zy"`` (nz, ny) at x."""
    data = np.asarray(volume)
    if data.ndim != 3:
        raise ValueError(f"volume has shape {data.shape}; expected (nz, ny, nx)")
    z, y, x = index
    return {"yx": data[z], "zx": data[:, y, :], "zy": data[:, :, x]}


def line_profile(
    data: np.ndarray, scale: Any, translate: Any, start: Any, end: Any, samples_per_voxel: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``data`` along the straight line from ``start`` to ``end`` (world, Å).

    Parameters
    ----------
    data : (nz, ny, nx) or (ny, nx) array.
    scale, translate : the layer's voxel size and origin in Å per axis.
    start, end : world points; their last ``data.ndim`` coordinates are used.
    samples_per_voxel : sampling density along the line (linear interpolation).

    Returns
    -------
    distance : (m,) Å from ``start``; values : (m,) interpolated values (NaN outside).
    """
    from scipy.ndimage import map_coordinates

    array = np.asarray(data, dtype=np.float64)
    n = array.ndim
    scale = np.asarray(scale, float)[-n:]
    translate = np.asarray(translate, float)[-n:]
    a, b = np.asarray(start, float)[-n:], np.asarray(end, float)[-n:]
    length = float(np.linalg.norm(b - a))
    if length == 0:
        raise ValueError("the profile line has zero length; draw a line or pick two distinct points")
    count = max(2, int(np.ceil(length / scale.min() * samples_per_voxel)) + 1)
    t = np.linspace(0.0, 1.0, count)
    world = a[None] + t[:, None] * (b - a)[None]
    index = (world - translate) / scale
    values = map_coordinates(array, index.T, order=1, mode="constant", cval=np.nan)
    return t * length, values


def points_in_shape(points: np.ndarray, vertices: np.ndarray, shape_type: str) -> np.ndarray:
    """Which of ``points`` (n, 2) lie inside one napari shape given by its ``vertices``
    (m, 2) in the same (y, x) coordinates: ``rectangle`` / ``polygon`` by the polygon,
    ``ellipse`` by the ellipse inscribed in its four bounding-box vertices."""
    from skimage.measure import points_in_poly

    points = np.asarray(points, float)[:, -2:]
    vertices = np.asarray(vertices, float)[:, -2:]
    if shape_type == "ellipse":
        centre = vertices.mean(0)
        radii = (vertices.max(0) - vertices.min(0)) / 2
        return np.sum(((points - centre) / np.maximum(radii, 1e-12)) ** 2, axis=1) <= 1.0
    if shape_type in ("rectangle", "polygon"):
        return points_in_poly(points, vertices)
    raise ValueError(f"shape type {shape_type!r} encloses no region; draw a rectangle, polygon or ellipse")


def region_statistics(tilt_map: np.ndarray, inside: np.ndarray) -> dict[str, Any]:
    """Mean, median and standard deviation in mrad of θx and θy over the positions
    ``inside`` (n,) of a tilt map (n, 2) as (θx, θy); ``count`` positions."""
    values = np.asarray(tilt_map, float)[np.asarray(inside, bool)]
    if not len(values):
        raise ValueError("the region holds no scan position; draw it over the tilt map")
    out: dict[str, Any] = {"count": int(len(values))}
    for column, name in enumerate(("theta_x", "theta_y")):
        v = values[:, column]
        out[name] = {"mean": float(v.mean()), "median": float(np.median(v)), "std": float(v.std())}
    return out
