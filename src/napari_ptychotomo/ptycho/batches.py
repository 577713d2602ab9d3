"""Minibatches of adjacent scan positions and the neighbour pairs of a scan.

Batches are compact tiles of neighbouring positions (each batch touches a small part of
the object, as in the "compact" batches of PtyRAD); their order is shuffled every
iteration with a seeded generator, so runs are reproducible.
"""

from __future__ import annotations

import numpy as np

__all__ = ["adjacent_batches", "neighbour_pairs"]


def adjacent_batches(positions: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Split positions ``(n, 2)`` (any unit) into compact tiles of neighbours, each of
    ``n / ceil(n / batch_size)`` positions (sizes differ by at most one or two).

    The number of tiles is the fewest that keeps every tile at or below ``batch_size``;
    they are laid out as rows of tiles matching the scan's aspect ratio: the positions are
    cut into rows along y by rank (so each row holds the share of positions its tiles
    need), and each row into tiles along x by rank. Thin edge tiles, which would make
    noisy updates of a handful of patterns, cannot occur. Returns a list of index arrays
    covering every position exactly once.
    """
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    if batch_size >= n:
        return [np.arange(n)]
    tiles = int(np.ceil(n / batch_size))
    extent = np.maximum(np.ptp(positions, axis=0), 1e-9)
    rows = int(np.clip(np.round(np.sqrt(tiles * extent[0] / extent[1])), 1, tiles))
    per_row = np.full(rows, tiles // rows) + (np.arange(rows) < tiles % rows)
    # positions per row in proportion to its tiles, so every tile gets n / tiles
    bounds = np.round(np.concatenate([[0], np.cumsum(per_row)]) * n / tiles).astype(int)
    by_y = np.lexsort((positions[:, 1], positions[:, 0]))
    batches = []
    for r in range(rows):
        row = by_y[bounds[r] : bounds[r + 1]]
        row = row[np.lexsort((positions[row, 0], positions[row, 1]))]
        batches.extend(np.array_split(row, per_row[r]))
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
