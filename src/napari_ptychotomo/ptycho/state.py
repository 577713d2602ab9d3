"""Starting state of multislice ptychography: object grid, positions, probe, memory.

The object grid has the reconstruction's pixel size, set by the detector and the model's
oversampling f: Δx = 1/(f K Δk) for a detector of K pixels of Δk. The model's window is
f K pixels, so its far field spans f times the detector's angles at the detector's Δk and
the measured pixels are its central K × K. The grid is padded so that every probe window
centred on a scan position fits with ``object_padding`` pixels to spare, also after
positions move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..engine import check_memory
from ..physics import make_probe, orthogonalize_modes, probe_modes
from ..physics.fused import pass_bytes_per_position
from .params import MSPParams

__all__ = ["MSPGeometry", "make_geometry", "initial_probe", "choose_batch_size", "memory_per_pattern"]


@dataclass
class MSPGeometry:
    """Object grid of one reconstruction.

    ``pixel_size`` Å; ``window`` (f K, f K) probe window of the model (the detector shape
    times the oversampling f); ``detector`` (K, K) the measured patterns; ``object_shape``
    (H, W) pixels; ``origin`` Å, the scan coordinate (y, x) of object pixel (0, 0);
    ``positions_px`` (n, 2) start probe centres in object pixels.
    """

    pixel_size: float
    window: tuple[int, int]
    object_shape: tuple[int, int]
    origin: np.ndarray
    positions_px: np.ndarray
    detector: tuple[int, int] = (0, 0)

    @property
    def oversampling(self) -> int:
        return self.window[0] // self.detector[0]

    def measured(self, intensities):
        """The detector's pixels ``(..., K, K)`` of centred model intensities ``(..., fK, fK)``."""
        (n, m), (k, l) = self.window, self.detector
        r, c = n // 2 - k // 2, m // 2 - l // 2
        return intensities if (n, m) == (k, l) else intensities[..., r : r + k, c : c + l]


def make_geometry(scan: Any, params: MSPParams) -> MSPGeometry:
    """Object grid holding every probe window of ``scan`` (positions in Å, raster or
    given) with ``params.object_padding`` spare pixels on each side."""
    detector = scan.detector_shape
    dy, dx = scan.calibration.pixel_size(detector)
    factor = int(params.oversampling)
    window = (factor * detector[0], factor * detector[1])
    dy, dx = dy / factor, dx / factor
    if abs(dy - dx) > 1e-6 * dx:
        raise ValueError(
            f"detector shape {window} gives non-square pixels ({dy:.4g}, {dx:.4g}) Å; "
            "use a square detector (crop or pad the patterns)"
        )
    positions = scan.positions_angstrom()
    lo = positions.min(axis=0)
    span = (positions.max(axis=0) - lo) / dx
    margin = np.array(window) // 2 + params.object_padding + 1
    shape = np.ceil(span).astype(int) + 2 * margin + 1
    origin = lo - margin * dx
    return MSPGeometry(
        pixel_size=float(dx),
        window=(int(window[0]), int(window[1])),
        object_shape=(int(shape[0]), int(shape[1])),
        origin=origin,
        positions_px=(positions - origin) / dx,
        detector=(int(detector[0]), int(detector[1])),
    )


def initial_probe(
    scan: Any, geometry: MSPGeometry, params: MSPParams, defocus: float, mean_counts: float, device
) -> torch.Tensor:
    """Probe modes ``(M, K, K)`` complex64 from the calibration with ``defocus`` Å,
    orthogonal, with total power equal to the mean counts of a pattern."""
    cal = scan.calibration
    aberrations = cal.aberration_dict()
    aberrations["C10"] = -float(defocus)
    probe = make_probe(
        geometry.window, geometry.pixel_size, cal.energy_eV, cal.semiangle_mrad, aberrations, device=device
    )
    probe = probe * float(np.sqrt(mean_counts))
    modes = probe_modes(probe, params.num_modes, params.probe_mode_power)
    return orthogonalize_modes(modes).to(torch.complex64)


# The default batch: about 1/_BATCH_FRACTION of the scan, within these bounds (patterns),
# halved until it fits in memory
_BATCH_FRACTION = 8
_SMALLEST_DEFAULT_BATCH = 16
_LARGEST_DEFAULT_BATCH = 256


def memory_per_pattern(params: MSPParams, window: tuple[int, int]) -> float:
    """Bytes one diffraction pattern of a batch needs during a forward + backward pass.

    The fused pass's own model (:func:`~napari_ptychotomo.physics.fused.pass_bytes_per_position`,
    which the end-to-end estimate uses too) plus a margin of M(S + 2)/2 waves per pattern
    (M modes, S slices; complex64): half of what an older model of autograd's copies counted
    beyond the fused pass (M(S + 2), and M(S + 2) + S while the pass stored a stack of
    patches and one of their gradients). Measured (``tests/joint/test_memory_estimates.py``,
    64-px window, 8 slices, 2 modes, 64 patterns; the peak resident size of the same run
    varies by 10 %, 83-92 MB over six runs): the estimate is 1.6-1.8× the peak, the pass
    model alone 1.4-1.6×. With the full margin it was 1.9-2.1× once the probe's shift stopped
    saving its (B, n, m) ramp, over the test's 2×.
    """
    pixels = window[0] * window[1]
    modes, slices = params.num_modes, params.num_slices
    margin = modes * (slices + 2) / 2  # waves
    return pass_bytes_per_position(pixels, modes, slices) + 8.0 * pixels * margin


def fixed_memory(params: MSPParams, geometry: MSPGeometry, num_positions: int) -> float:
    """Bytes independent of the batch: object with gradient and optimiser moments (×6),
    measured amplitudes, probe modes."""
    h, w = geometry.object_shape
    obj = 8.0 * params.num_slices * h * w * 6
    data = 4.0 * num_positions * geometry.window[0] * geometry.window[1]
    probe = 8.0 * params.num_modes * geometry.window[0] * geometry.window[1] * 6
    return obj + data + probe


def choose_batch_size(params: MSPParams, geometry: MSPGeometry, num_positions: int, device) -> int:
    """The batch size to use: ``params.batch_size`` if it fits (else ``MemoryError`` with
    one that does), or, when ``None``, about an eighth of the scan (16 to 256
    patterns), reduced to what fits in memory."""
    per = memory_per_pattern(params, geometry.window)
    fixed = fixed_memory(params, geometry, num_positions)
    if params.batch_size is not None:
        check_memory("multislice ptychography", fixed, per, min(params.batch_size, num_positions), device)
        return min(params.batch_size, num_positions)
    batch = int(np.clip(num_positions // _BATCH_FRACTION, _SMALLEST_DEFAULT_BATCH, _LARGEST_DEFAULT_BATCH))
    batch = min(batch, num_positions)
    while batch > 1:
        try:
            check_memory("multislice ptychography", fixed, per, batch, device)
            return batch
        except MemoryError:
            batch //= 2
    check_memory("multislice ptychography", fixed, per, 1, device)
    return 1
