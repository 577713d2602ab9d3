"""Memory estimates of the end-to-end step and the batch size that fits.

Counted per voxel of the volume (complex64, 8 bytes; the rotation's sampling grid holds
3 float32 per voxel, 12 bytes):

* kept for the run: the volume, its gradient and momentum, its copy before each tilt, the
  start volume and the last good state on the host and the new one while the old is
  alive (7 × 8 bytes; plane wave: x, y, ∂y, the new iterate, the two FISTA temporaries,
  the scaled gradient, the start, the preview and its conversion, 10 × 8 bytes);
* one rotation with autograd (:func:`~napari_ptychotomo.tomo.rotate_volume`): the output
  coordinates, the rotated ones and the normalised grid (3 × 12), the volume as two real
  channels, the sampled channels and their complex form (3 × 8); backward, the gradients
  of the sampled and input channels and the latter's complex form (3 × 8), of the grid
  and the rotated coordinates (2 × 12): 108 bytes;
* the regularisers' workspace (k_z filter, TV, Butterworth: Fourier transforms and
  differences of the volume): 4 × 8 bytes.

Each scan position of a 4D-STEM minibatch adds the waves kept for
the backward pass at every slice and mode: the fused pass's own model,
:func:`~napari_ptychotomo.physics.fused.pass_bytes_per_position`, which MSP's estimate
starts from too. The measured diffraction data stay on the
host and are streamed to the device batch by batch. The host copies are counted as if
they shared the device's memory (as they do on a CPU), so on a GPU the estimate is a
little high. ``tests/joint/test_memory_estimates.py`` checks the estimates against the
peak memory of real runs.
"""

from __future__ import annotations

from typing import Any

from ..engine import available_memory, check_memory
from ..physics.fused import pass_bytes_per_position

__all__ = ["stem_bytes", "choose_batch_size", "plane_wave_bytes"]

_COMPLEX = 8  # complex64
_ROTATION = 3 * 12 + 3 * _COMPLEX + 3 * _COMPLEX + 2 * 12  # bytes per voxel, forward + backward
_REGULARISERS = 4 * _COMPLEX


def stem_bytes(volume_shape, window: int, num_modes: int, num_slices: int) -> tuple[int, int]:
    """(fixed bytes, bytes per scan position) of one 4D-STEM minibatch with autograd."""
    nz, ny, nx = volume_shape
    voxels = nz * ny * nx
    fixed = voxels * (7 * _COMPLEX + _ROTATION + _REGULARISERS) + 4 * num_slices * ny * nx * _COMPLEX
    return int(fixed), int(pass_bytes_per_position(window * window, num_modes, num_slices))


def plane_wave_bytes(volume_shape, num_slices: int, num_defocus: int) -> tuple[int, int]:
    """(fixed bytes, bytes per tilt) of a plane-wave gradient with autograd (one tilt's
    graph at a time: each tilt's backward pass runs before the next tilt)."""
    nz, ny, nx = volume_shape
    voxels = nz * ny * nx
    fixed = voxels * (10 * _COMPLEX + _REGULARISERS)
    per_tilt = voxels * _ROTATION + ny * nx * _COMPLEX * (4 * num_slices + 4 * num_defocus)
    return int(fixed), int(per_tilt)


def choose_batch_size(what: str, fixed: int, per_item: int, requested: int | None, device: Any, most: int) -> int:
    """``requested`` after :func:`~napari_ptychotomo.engine.check_memory` (``MemoryError``
    with a batch size that fits when it does not), or the largest that fits, at most ``most``."""
    if requested is not None:
        check_memory(what, fixed, per_item, requested, device)
        return int(requested)
    budget = 0.8 * available_memory(device)
    fits = int((budget - fixed) // max(per_item, 1))
    check_memory(what, fixed, per_item, max(1, min(fits, most)), device)
    return max(1, min(fits, most))
