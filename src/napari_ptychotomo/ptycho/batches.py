"""Minibatches of adjacent scan positions and the neighbour pairs of a scan.

Batches are compact tiles of neighbouring positions (each batch touches a small part of
the object, as in the "compact" batches of PtyRAD); their order is shuffled every
iteration with a seeded generator, so runs are reproducible.
"""

from __future__ import annotations

import numpy as np

__all__ = ["adjacent_batches", "neighbour_pairs"]


def adjacent_batches(positions: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Split positions ``(n, 2)`` (any unit) into tiles of about ``batch_size`` neighbours.

    The scanned area is cut into square tiles that hold ``batch_size`` positions on
    average; a tile with more positions than that is split along its raster order.
    Returns a list of index arrays covering every position exactly once.
    """
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    if batch_size >= n:
        return [np.arange(n)]
    lo = positions.min(axis=0)
    extent = np.maximum(positions.max(axis=0) - lo, 1e-9)
    area = float(extent[0] * extent[1]) if np.all(extent > 1e-6) else float(extent.max()) ** 2
    side = max(np.sqrt(area * batch_size / n), 1e-9)
    tiles = np.floor((positions - lo) / side).astype(np.int64)
    tiles = np.minimum(tiles, np.floor(extent / side).astype(np.int64))
    key = tiles[:, 0] * (tiles[:, 1].max() + 1) + tiles[:, 1]
    order = np.lexsort((positions[:, 1], positions[:, 0], key))
    batches = []
    for tile in np.unique(key):
        members = order[key[order] == tile]
        pieces = int(np.ceil(len(members) / batch_size))
        batches.extend(np.array_split(members, pieces))
    return batches


def neighbour_pairs(positions: np.ndarray, factor: float = 1.5) -> np.ndarray:
    """Index pairs ``(p, 2)`` of positions closer than ``factor`` × the median
    nearest-neighbour distance (each pair once), for the tilt-map smoothness penalty."""
    from scipy.spatial import cKDTree

    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    tree = cKDTree(positions)
    nearest, _ = tree.query(positions, k=2)
    radius = factor * float(np.median(nearest[:, 1]))
    pairs = tree.query_pairs(radius, output_type="ndarray")
    return pairs.astype(np.int64)
