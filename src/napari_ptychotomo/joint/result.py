"""The result of the end-to-end step and the previews it yields while running."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import Alignment, Volume

__all__ = ["JointResult", "orthogonal_slices"]


@dataclass
class JointResult:
    """End-to-end ptycho-tomography result.

    Attributes
    ----------
    volume : :class:`~napari_ptychotomo.data.Volume`, complex potential in V (Im V =
        absorption), voxel size in Å; ``halves`` holds the two half-data volumes in
        half-data mode.
    probes : (n_tilts, M, n, n) refined probe modes (unit total power), or ``None`` in the
        plane-wave mode.
    positions : per tilt (K, 2) refined probe positions in Å as (y, x), in the frame the
        scan's positions were given in; ``None`` in the plane-wave mode.
    alignment : refined Euler angles (deg) and shifts (Å).
    loss_history : mean loss per pass over all tilts.
    loss_per_tilt : (iterations, n_tilts) loss of each tilt in each pass.
    """

    volume: Volume
    probes: np.ndarray | None
    positions: list[np.ndarray] | None
    alignment: Alignment
    loss_history: list[float] = field(default_factory=list)
    loss_per_tilt: np.ndarray | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


def orthogonal_slices(volume: np.ndarray) -> dict[str, np.ndarray]:
    """Central planes of Re V for a live view: ``yx`` (nz//2), ``zx`` (ny//2), ``zy`` (nx//2)."""
    real = np.real(volume)
    nz, ny, nx = real.shape
    return {
        "yx": np.ascontiguousarray(real[nz // 2]),
        "zx": np.ascontiguousarray(real[:, ny // 2]),
        "zy": np.ascontiguousarray(real[:, :, nx // 2]),
    }
