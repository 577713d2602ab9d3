"""The result of the end-to-end step and the previews it yields while running.

Every Progress of the joint engines carries ``preview["volume"]``: the last good volume as
a :class:`~napari_ptychotomo.data.Volume` (a detached host copy, ``provenance["partial"]``
true), so that Stop keeps it without reading the engine's locals. ``Progress.result``
stays ``None`` until the end (:func:`~napari_ptychotomo.engine.run` takes it as the result).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import Alignment, Volume

__all__ = ["JointResult", "orthogonal_slices", "partial_volume"]


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


def partial_volume(volume: Any, voxel_size: float, provenance: dict[str, Any]) -> Volume:
    """The engine's current volume (a torch tensor, any device) as a Volume of its own:
    a detached host copy (complex potential in V, voxel size in Å) that later updates
    leave alone, with ``provenance`` and ``partial=True``."""
    data = volume.detach().to("cpu", copy=True).numpy().astype(np.complex64, copy=False)
    return Volume(data=data, voxel_size=float(voxel_size), units="V", provenance={**provenance, "partial": True})
