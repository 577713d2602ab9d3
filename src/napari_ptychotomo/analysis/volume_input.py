"""Turn what a user passes (a :class:`~napari_ptychotomo.data.Volume`, a numpy array or a
torch tensor) into a checked 3D array and a voxel size in Å."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import Volume


def volume_array(volume: Any, voxel_size: float | None, name: str = "volume") -> tuple[np.ndarray, float, np.ndarray]:
    """Return ``(array (nz, ny, nx), voxel_size Å, origin (3,) Å)`` of ``volume``.

    A ``Volume`` brings its own voxel size and origin (an explicit ``voxel_size`` must
    agree with it); an array needs ``voxel_size`` in Å and gets origin (0, 0, 0).
    """
    origin = np.zeros(3)
    if isinstance(volume, Volume):
        data = volume.data
        own = float(volume.voxel_size)
        if voxel_size is not None and not np.isclose(float(voxel_size), own, rtol=1e-6):
            raise ValueError(
                f"voxel_size = {voxel_size!r} Å but {name} is a Volume with voxel_size "
                f"{own!r} Å; leave voxel_size out or make them agree"
            )
        voxel_size = own
        origin = np.asarray(volume.origin, dtype=np.float64)
    else:
        data = volume
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    array = np.asarray(data)
    if array.ndim != 3:
        raise ValueError(f"{name} has shape {array.shape}; expected a volume (nz, ny, nx)")
    if min(array.shape) < 4:
        raise ValueError(f"{name} has shape {array.shape}; expected at least 4 voxels per axis")
    if voxel_size is None:
        raise ValueError(
            f"voxel_size is missing: {name} is a plain array, so give voxel_size in Å "
            "(or pass a Volume, which carries it)"
        )
    voxel_size = float(voxel_size)
    if not (np.isfinite(voxel_size) and voxel_size > 0):
        raise ValueError(f"voxel_size = {voxel_size!r}; expected a positive length in Å")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array, voxel_size, origin
