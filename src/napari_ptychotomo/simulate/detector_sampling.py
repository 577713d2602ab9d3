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

The detector alone sets the least f (:func:`automatic_oversampling`). The specimen may ask
for more: a thick crystal of heavy atoms scatters a fifth of the beam past that grid's
antialias, and what leaves the grid no longer scatters back into the detector. The
simulator's default therefore refines f by :func:`next_oversampling` until the patterns
stop changing (:func:`pattern_distance` ≤ :data:`CONVERGED_DISTANCE` between f and the
next f), measured at up to 3×3 probe positions spanning the scan before it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

__all__ = [
    "ANTIALIAS_MARGIN",
    "CONVERGED_DISTANCE",
    "MAX_SIMULATION_PIXELS",
    "automatic_oversampling",
    "next_oversampling",
    "pattern_distance",
    "check_sampling_factors",
    "converged_oversampling",
    "crop_and_bin",
    "average_to_coarse_pixels",
]

#: default ratio of the simulation's antialias radius to the detector's corner radius
ANTIALIAS_MARGIN = 1.25

#: patterns count as converged in the sampling when refining the grid 1.5× moves them by at
#: most this much (:func:`pattern_distance`, a sum over the pattern of the absolute change
#: of each pixel's share of the counts). Measured on 82 Å of Au at 200 keV: at most 3.5e-3
#: between f = 18 and 27 (1.4e-2 between 12 and 18), and f = 18 lies 1.1e-3 from abTEM
#: converged at 0.016 Å pixels.
CONVERGED_DISTANCE = 5e-3

#: the simulation window's largest side (pixels) the automatic refinement goes to
MAX_SIMULATION_PIXELS = 2048


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


def next_oversampling(factor: int) -> int:
    """The next f of the convergence search, ⌈1.5 f⌉: 3, 5, 8, 12, 18, 27, …"""
    return math.ceil(1.5 * int(factor))


def pattern_distance(a: Any, b: Any) -> float:
    """Mean over patterns of Σ|a/Σa − b/Σb| (0: the same shape; 2: disjoint), for arrays
    ``(..., K_y, K_x)`` of equal shape: how far two simulations of the same patterns lie
    apart whatever their total counts."""
    a = torch.as_tensor(a, dtype=torch.float64).reshape(-1, *a.shape[-2:])
    b = torch.as_tensor(b, dtype=torch.float64).reshape(-1, *b.shape[-2:])
    share_a = a / a.sum(dim=(-2, -1), keepdim=True)
    share_b = b / b.sum(dim=(-2, -1), keepdim=True)
    return float((share_a - share_b).abs().sum(dim=(-2, -1)).mean())


def converged_oversampling(patterns_at, start: int, window_side: int) -> tuple[int, list]:
    """The least f from ``start`` up (3, 5, 8, 12, …) at which no pattern of
    ``patterns_at(f)`` ``(k, K_y, K_x)`` moves by more than :data:`CONVERGED_DISTANCE` when
    the grid is refined to the next f, and the search as ``[(f, largest distance to the next
    f), …]``. Where the next window (``window_side`` · f pixels) would exceed
    :data:`MAX_SIMULATION_PIXELS` it stops at f, with a warning that says how far the
    patterns were from converged (or that it could not check)."""
    if next_oversampling(start) * window_side > MAX_SIMULATION_PIXELS:
        warnings.warn(
            f"oversampling {start}, the detector's least, is used unchecked: a finer grid would "
            f"exceed {MAX_SIMULATION_PIXELS} pixels a side; set oversampling to an integer to choose",
            stacklevel=4,
        )
        return start, []
    factor, patterns, search = start, patterns_at(start), []
    while True:
        finer = next_oversampling(factor)
        if finer * window_side > MAX_SIMULATION_PIXELS:
            warnings.warn(
                f"the patterns still change by {search[-1][1]:.1e} when the simulation grid is "
                f"refined from oversampling {search[-1][0]} to {factor}; the next step would "
                f"exceed {MAX_SIMULATION_PIXELS} pixels a side, so oversampling {factor} is used",
                stacklevel=4,
            )
            return factor, search
        finer_patterns = patterns_at(finer)
        moved = max(pattern_distance(a, b) for a, b in zip(patterns, finer_patterns))
        search.append((factor, moved))
        if moved <= CONVERGED_DISTANCE:
            return factor, search
        factor, patterns = finer, finer_patterns


def check_sampling_factors(oversampling: Any, binning: Any, detector_shape: tuple[int, int]) -> tuple[int, int]:
    """``(f, b)`` as ints: ``oversampling`` "auto" or "detector" (both give the detector's
    least f, :func:`automatic_oversampling`; "auto" is refined further by the simulator) or
    an integer ≥ 1, ``binning`` an odd integer ≥ 1; ValueError otherwise."""
    if isinstance(oversampling, str):
        if oversampling not in ("auto", "detector"):
            raise ValueError(f"oversampling = {oversampling!r}; expected 'auto', 'detector' or an integer ≥ 1")
        oversampling = automatic_oversampling(detector_shape)
    if not _is_int(oversampling) or int(oversampling) < 1:
        raise ValueError(
            f"oversampling = {oversampling!r}; expected 'auto', 'detector' or an integer ≥ 1 "
            "(simulation pixel = detector real-space pixel / oversampling; 1 simulates on the "
            "detector grid)"
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
    out = fine
    for axis in (-2, -1):
        # fine pixels f·i − half … f·i − half + f − 1 (the block around f·i for odd f)
        rolled = torch.roll(out, half, dims=axis).movedim(axis, -1)
        blocks = rolled.reshape(*rolled.shape[:-1], -1, f)
        total = blocks.sum(dim=-1)
        if f % 2 == 0:  # half weight on the first tap (f·i − half) and on f·i + half
            first = blocks[..., 0]
            total = total + 0.5 * (torch.roll(first, -1, dims=-1) - first)
        out = (total / f).movedim(-1, axis)
    return out.contiguous()
