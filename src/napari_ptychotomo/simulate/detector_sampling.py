"""The simulation grid behind a detector, and how its far field becomes the detector's pixels.

A detector of N pixels of Δk (Å⁻¹) sees the real-space window 1/Δk with pixels 1/(N Δk).
Multislice on that grid keeps only frequencies below 2/3 of its Nyquist frequency, N Δk / 3:
inside the detector (edge N Δk / 2, corner N Δk / √2), so a third of the detector's edge
and more of its corners would see nothing but what the band limit lets through. The
simulator therefore works on a grid ``oversampling`` (f) times finer, and, when the probe
needs a wider window than the detector's, ``binning`` (b) times wider:

* simulation pixel = detector real-space pixel / f; window = f·b·N pixels (b/Δk wide),
  so the simulation's Δk is Δk / b and its antialias lies at f·N·Δk / 3;
* the far field (zero frequency at pixel M//2 of M = f·b·N) is cropped to the b·N pixels
  around zero frequency and summed in b×b blocks, so detector pixel j (zero frequency at
  N//2) collects the simulated pixels within half a detector pixel of (j − N//2)·Δk.

b must be odd: with an even b the centre of the detector's zero-frequency pixel would fall
between simulated pixels. Both factors are integers ≥ 1; f = 1, b = 1 is simulating on the
detector's own grid.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "ANTIALIAS_MARGIN",
    "automatic_oversampling",
    "check_sampling_factors",
    "crop_and_bin",
    "average_to_coarse_pixels",
]

#: default ratio of the simulation's antialias radius to the detector's corner radius
ANTIALIAS_MARGIN = 1.25


def automatic_oversampling(detector_shape: tuple[int, int], margin: float = ANTIALIAS_MARGIN) -> int:
    """Smallest integer f whose antialias (2/3 of the simulation grid's Nyquist frequency on
    its coarser axis) lies ``margin`` times beyond the detector's corner.

    The antialias radius is f·min(N_y, N_x)·Δk / 3 and the corner radius
    Δk·√(N_y² + N_x²) / 2, so f = ⌈1.5·margin·√(N_y² + N_x²) / min(N_y, N_x)⌉ (3 for a
    square detector and the default margin: antialias at 1.41× the corner, 2× the edge).
    The corner, not the edge, because a detector records its corners: every pixel it
    records must be computed without the band limit touching it.
    """
    ny, nx = (int(n) for n in detector_shape)
    return max(1, math.ceil(1.5 * margin * math.hypot(ny, nx) / min(ny, nx) - 1e-9))


def check_sampling_factors(oversampling: Any, binning: Any, detector_shape: tuple[int, int]) -> tuple[int, int]:
    """``(f, b)`` as ints: ``oversampling`` "auto" (see :func:`automatic_oversampling`) or
    an integer ≥ 1, ``binning`` an odd integer ≥ 1; ValueError otherwise."""
    if isinstance(oversampling, str):
        if oversampling != "auto":
            raise ValueError(f"oversampling = {oversampling!r}; expected 'auto' or an integer ≥ 1")
        oversampling = automatic_oversampling(detector_shape)
    if not _is_int(oversampling) or int(oversampling) < 1:
        raise ValueError(
            f"oversampling = {oversampling!r}; expected 'auto' or an integer ≥ 1 (simulation "
            "pixel = detector real-space pixel / oversampling; 1 simulates on the detector grid)"
        )
    if not _is_int(binning) or int(binning) < 1 or int(binning) % 2 == 0:
        raise ValueError(
            f"detector_binning = {binning!r}; expected an odd integer ≥ 1 (b×b simulated "
            "far-field pixels per detector pixel; an even b would put the detector's "
            "zero-frequency pixel between simulated pixels)"
        )
    return int(oversampling), int(binning)


def _is_int(value: Any) -> bool:
    try:
        return float(value) == int(value)
    except (TypeError, ValueError):
        return False


def crop_and_bin(patterns: torch.Tensor, detector_shape: tuple[int, int], binning: int) -> torch.Tensor:
    """Centred far-field intensities ``(B, M_y, M_x)`` (zero frequency at M//2) as the
    detector's ``(B, N_y, N_x)`` (zero frequency at N//2), summing b×b blocks.

    The spectrum of a discrete wave is periodic, so a block that would start before the
    first row wraps around (only with f = 1 and b > 1, where the grid is aliased anyway).
    """
    b = int(binning)
    out = patterns
    for axis, n in zip((-2, -1), detector_shape):
        m = patterns.shape[axis]
        start = m // 2 - b * (int(n) // 2) - (b - 1) // 2
        out = torch.roll(out, -start, dims=axis).narrow(axis, 0, b * int(n))
    if b > 1:
        lead = out.shape[:-2]
        ny, nx = (int(n) for n in detector_shape)
        out = out.reshape(*lead, ny, b, nx, b).sum(dim=(-3, -1))
    return out.contiguous()


def average_to_coarse_pixels(fine: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean of a periodic ``(..., f·H, f·W)`` image over each coarse pixel of f×f fine ones,
    ``(..., H, W)``; coarse pixel (i, j) is centred on fine pixel (f·i, f·j).

    For odd f that is the f×f block around it; for even f the coarse pixel's edges run
    through fine pixel centres, so the f + 1 taps per axis weigh ½, 1, …, 1, ½. The mean
    of the image is kept exactly.
    """
    f = int(factor)
    if f == 1:
        return fine
    half = f // 2
    weights = [1.0] * f if f % 2 else [0.5] + [1.0] * (f - 1) + [0.5]
    out = fine
    for axis in (-2, -1):
        acc = torch.zeros_like(out)
        for k, w in zip(range(-half, -half + len(weights)), weights):
            acc += w * torch.roll(out, -k, dims=axis)
        out = (acc / f).index_select(axis, torch.arange(0, out.shape[axis], f, device=out.device))
    return out.contiguous()
