"""Memory estimates of the end-to-end step and the batch size that fits.

The volume, its gradient, two Adam moments, the rotated copy and the resampling grid live
on the device for the whole run (the fixed part); each scan position of a minibatch adds
its object patches and the waves kept for the backward pass at every slice and mode. The
measured diffraction data stay on the host and are streamed to the device batch by batch.
"""

from __future__ import annotations

from typing import Any

from ..engine import available_memory, check_memory

__all__ = ["stem_bytes", "choose_batch_size", "plane_wave_bytes"]

_COMPLEX = 8  # complex64


def stem_bytes(volume_shape, window: int, num_modes: int, num_slices: int) -> tuple[int, int]:
    """(fixed bytes, bytes per scan position) of one 4D-STEM minibatch with autograd."""
    nz, ny, nx = volume_shape
    voxels = nz * ny * nx
    # V, grad, 2 Adam moments, rotated V and its grad, grid (3 × float32), binned slices
    fixed = voxels * (6 * _COMPLEX + 12) + 4 * num_slices * ny * nx * _COMPLEX
    per_position = window * window * _COMPLEX * (num_slices * (3 * num_modes + 2) + 4 * num_modes)
    return int(fixed), int(per_position)


def plane_wave_bytes(volume_shape, num_slices: int, num_defocus: int) -> tuple[int, int]:
    """(fixed bytes, bytes per tilt) of a plane-wave gradient with autograd."""
    nz, ny, nx = volume_shape
    voxels = nz * ny * nx
    fixed = voxels * (6 * _COMPLEX + 12)
    per_tilt = voxels * (2 * _COMPLEX + 12) + ny * nx * _COMPLEX * (4 * num_slices + 4 * num_defocus)
    return int(fixed), int(per_tilt)


def choose_batch_size(
    what: str, fixed: int, per_item: int, requested: int | None, device: Any, most: int
) -> int:
    """``requested`` after :func:`~napari_ptychotomo.engine.check_memory` (``MemoryError``
    with a batch size that fits when it does not), or the largest that fits, at most ``most``."""
    if requested is not None:
        check_memory(what, fixed, per_item, requested, device)
        return int(requested)
    budget = 0.8 * available_memory(device)
    fits = int((budget - fixed) // max(per_item, 1))
    check_memory(what, fixed, per_item, max(1, min(fits, most)), device)
    return max(1, min(fits, most))
