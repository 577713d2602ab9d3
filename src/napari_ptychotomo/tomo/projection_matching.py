"""Fine alignment of a tilt series without gradient steps on the shifts: projection matching.

Fit a volume to the projections (SIRT with non-negativity), take its local maxima as a
sparse model, re-project that at every tilt, find each tilt's shift against its
re-projection by upsampled cross-correlation (searched over a tenth of the image around
the current shift),
repeat until the shifts stop moving (You et al. 2025, Algorithm 2's alternation, with a
search in place of gradient steps on the shifts); then fit the model's peaks
together with the shifts and the axis angle (:mod:`.peak_refinement`). See
:func:`match_projections_steps` for why a sparse model and not the voxel volume, and for
the axis angle. The coarse start (centre of mass, neighbouring tilts) is in
:mod:`.coarse_alignment`; the volume fit and its sparse model in :mod:`.sparse_model`;
the registration of each tilt against its re-projection in :mod:`.registration`.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch

from ..engine import EngineError, Progress
from .coarse_alignment import (
    centre_of_mass_shifts,
    is_isolated,
    neighbour_shifts,
    remove_translation,
)
from .peak_refinement import refine_peak_model
from .registration import _register, register_shifts
from .sparse_model import downsample, peak_model, render_peaks, sirt

__all__ = [
    "MatchResult",
    "centre_of_mass_shifts",
    "is_isolated",
    "match_projections_steps",
    "neighbour_shifts",
    "peak_model",
    "register_shifts",
    "remove_translation",
    "render_peaks",
    "sirt",
]


@dataclass
class MatchResult:
    """Outcome of :func:`match_projections_steps`: shifts (T, 2) (y, x) in pixels (gauge
    removed), Euler angles (T, 3) in radians, the rounds run, whether the shifts stopped
    moving, per-round ``history`` (RMS shift change in px, ψ in degrees, peaks in the
    model) and the last binned volume with its bin factor; ``seconds`` spent in volume
    refits (SIRT and peaks, ψ scan included), registrations and joint fits."""

    shifts_px: torch.Tensor
    euler_rad: torch.Tensor
    rounds: int
    converged: bool
    history: list
    volume: torch.Tensor
    volume_bin: int
    seconds: dict


def _volume_bin(ny: int, nx: int, max_size: int) -> int:
    for b in range(1, max(ny, nx) + 1):
        if max(ny, nx) / b <= max_size and ny % b == 0 and nx % b == 0:
            return b
    return 1


def _axis_scan(matched, euler, shifts, search_deg, step_deg, warm):
    """ψ offsets over ±``search_deg`` in steps of ``step_deg``, one matching each (with
    ``warm``, each volume fit starts from the previous angle's), kept by the mean
    correlation (parabola through the best three); yields (offset, score) and returns
    (best offset in degrees, the shifts found there)."""
    offsets = np.arange(-search_deg, search_deg + step_deg / 2, step_deg)
    scores, found, volume = [], [], None
    for offset in offsets:
        trial = euler.clone()
        trial[:, 2] += np.deg2rad(offset)
        volume, _, _, shifts_found, score = matched(trial, shifts, volume if warm else None)
        scores.append(score)
        found.append(shifts_found)
        yield float(np.rad2deg(trial[0, 2])), score
    best = int(np.argmax(scores))
    offset = offsets[best]
    if 0 < best < len(offsets) - 1:
        a, c = scores[best - 1] - scores[best], scores[best + 1] - scores[best]
        if a + c < 0:
            offset += 0.5 * step_deg * (a - c) / (a + c)
    return float(offset), found[best]


def match_projections_steps(
    stack: torch.Tensor,
    euler_rad: torch.Tensor,
    shifts_px: torch.Tensor,
    n_rounds: int = 4,
    tolerance_px: float = 0.05,
    refine_axis: bool = True,
    axis_search_deg: float = 3.0,
    axis_scan_step_deg: float = 1.0,
    volume_size: int = 96,
    n_sirt: int = 30,
    n_sirt_warm: int = 10,
    peak_threshold: float = 0.3,
    min_peak_distance: int = 3,
    upsample: int = 50,
    n_fit_cycles: int = 4,
    fit_iter: int = 200,
    fit_step_px: float = 0.1,
    refine_tilts: bool = False,
    scan_warm_start: bool = False,
) -> Generator[Progress, None, MatchResult]:
    """Projection matching against a sparse re-projection (generator; returns MatchResult).

    1. With ``refine_axis``, a scan of the axis angle ψ over ±``axis_search_deg`` in
       steps of ``axis_scan_step_deg`` (one matching each, kept by the mean correlation;
       with ``scan_warm_start`` each volume starts from the previous angle's and runs
       ``n_sirt_warm`` iterations: 40 % faster, but on the Pt case at 72 px it ranked the
       scan's edge first and left 10 px errors, so it is off by default).
    2. Up to ``n_rounds`` matching rounds: SIRT with non-negativity of a volume binned to
       at most ``volume_size`` voxels across (the binning divides the image sides) at the
       current alignment (``n_sirt`` iterations, then ``n_sirt_warm`` from the last
       volume); its local maxima above ``peak_threshold`` × the maximum as Gaussian blobs
       (σ = 0.75 voxel) re-projected at every tilt at the projections' own pixel size;
       each tilt's shift against its re-projection by upsampled cross-correlation (a
       search over a tenth of the image around the current shift, 1/``upsample`` px).
       They stop when the shifts move less than
       ``tolerance_px`` RMS (gauge removed).
    3. ``n_fit_cycles`` cycles of a volume refit, its peaks, and a joint least-squares
       fit of the peaks with the shifts, ψ (with ``refine_axis``) and each tilt's θ (with
       ``refine_tilts``) (:func:`.peak_refinement.refine_peak_model`, ``fit_iter`` Adam steps
       of ``fit_step_px`` px for the peaks and the shifts). Each cycle starts from the peaks
       of a fresh volume: a fit warm-started from the last one's blobs settles (moves
       < 0.01 px) on a worse answer (0.49 px RMS against 0.24 on the ψ = 2° case, seed 4),
       as the blobs take up part of the misplacement. ``refine_tilts`` is off: on that
       case it moved the tilts away from the truth (0.70° RMS from 0.60°). Steps of 0.1 px
       rather than 0.05 px: the ψ case's seeds 2 and 4 reach 0.24 px RMS instead of 0.29
       and 0.32 in the same four cycles.

    Why peaks: with few tilts a voxel volume fitted to all of them reproduces each tilt's
    own misplacement across the axis (the least-squares volume absorbs it entirely), and
    one fitted without the tilt predicts only its coarse outline. A few hundred blobs
    fitted to all tilts cannot follow one tilt's shift (each blob is pinned by the
    others), yet carry the fine detail that fixes a shift to a fraction of a pixel. This
    assumes a specimen of compact features (atoms, nanoparticles); use the gradient
    stages of :mod:`.align` otherwise.

    Why the joint fit for ψ: a volume refitted at a wrong ψ takes up most of the error as
    a turn about z, which is exact at 0° and leaves only a remainder at high tilts; the
    matching's correlation hardly tells ψ a degree apart. A fixed set of blobs fitted
    together with ψ (and with a turn of its own) keeps that remainder visible.
    """
    t, ny, nx = stack.shape
    dev = stack.device
    b = _volume_bin(ny, nx, volume_size)
    small = downsample(stack, b)
    shape = (nx // b, ny // b, nx // b)
    sigma = 0.75 * b
    lowpass = 4 * sigma  # px: the coarse search sees blobs of peaks, not single ones
    data = stack.detach().cpu().double().numpy()
    euler = euler_rad.detach().to(torch.float64).cpu().clone()
    shifts = remove_translation(shifts_px.detach().to(torch.float64).cpu(), euler)
    history, converged, volume = [], False, None
    total = n_rounds + n_fit_cycles
    seconds = {"volume refits": 0.0, "registration": 0.0, "joint fits": 0.0}

    def fit_volume(euler_try, shifts_try, start=None):
        began = time.perf_counter()
        vol = sirt(
            small,
            euler_try.to(small.dtype).to(dev),
            (shifts_try / b).to(small.dtype).to(dev),
            shape,
            n_sirt if start is None else n_sirt_warm,
            start,
        )
        pos, hts = peak_model(vol, min_peak_distance, peak_threshold)
        if len(hts) == 0:
            raise EngineError("projection matching found no peaks in the volume; lower peak_threshold")
        seconds["volume refits"] += time.perf_counter() - began
        return vol, pos, hts

    def matched(euler_try, shifts_try, start=None, upsample_try=10):
        """Volume at an alignment, its peaks, each tilt's shift and the mean correlation."""
        vol, pos, hts = fit_volume(euler_try, shifts_try, start)
        began = time.perf_counter()
        templates = render_peaks(pos, hts, euler_try.numpy(), (ny, nx), sigma, b)
        guess = shifts_try.numpy()
        found = [_register(data[k], templates[k], upsample_try, lowpass, guess[k]) for k in range(t)]
        seconds["registration"] += time.perf_counter() - began
        shifts_found = remove_translation(torch.as_tensor(np.array([f[0] for f in found])), euler_try)
        return vol, pos, hts, shifts_found, float(np.mean([f[1] for f in found]))

    if refine_axis and axis_scan_step_deg > 0:
        scan = _axis_scan(matched, euler, shifts, axis_search_deg, axis_scan_step_deg, scan_warm_start)
        while True:
            try:
                psi_deg, score = next(scan)
            except StopIteration as stop:
                offset, shifts = stop.value
                break
            yield Progress(0, total, -score, message=f"axis scan: ψ {psi_deg:.2f}°, correlation {score:.4f}")
        euler[:, 2] += np.deg2rad(offset)
    round_ = 0
    for round_ in range(1, n_rounds + 1):
        volume, positions, heights, new, _ = matched(euler, shifts, volume, upsample)
        change = float((new - shifts).pow(2).mean().sqrt())
        shifts = new
        history.append(
            {"rms_change_px": change, "psi_deg": float(np.rad2deg(euler[:, 2].mean())), "n_peaks": len(heights)}
        )
        yield Progress(
            round_,
            total,
            change,
            preview=_preview(volume, shifts, euler),
            message=f"projection matching round {round_}: shifts moved {change:.3f} px RMS, {len(heights)} peaks",
        )
        if change < tolerance_px:
            converged = True
            break
    for cycle in range(1, n_fit_cycles + 1):
        volume, positions, heights = fit_volume(euler, shifts, volume)
        began = time.perf_counter()
        fit = refine_peak_model(
            stack,
            positions * b,
            heights,
            euler,
            shifts,
            sigma,
            fit_iter,
            refine_psi=refine_axis,
            refine_tilts=refine_tilts,
            lr_px=fit_step_px,
        )
        seconds["joint fits"] += time.perf_counter() - began
        euler = fit.euler_rad
        new = remove_translation(fit.shifts_px, euler)
        change = float((new - shifts).pow(2).mean().sqrt())
        shifts = new
        history.append(
            {
                "rms_change_px": change,
                "psi_deg": float(np.rad2deg(euler[:, 2].mean())),
                "n_peaks": len(heights),
                "misfit": fit.misfit_end,
            }
        )
        yield Progress(
            n_rounds + cycle,
            total,
            fit.misfit_end,
            preview=_preview(volume, shifts, euler),
            message=f"joint fit of peaks and geometry {cycle}: shifts moved {change:.3f} px RMS, "
            f"ψ {history[-1]['psi_deg']:.2f}°, misfit {fit.misfit_start:.4f} → "
            f"{fit.misfit_end:.4f}",
        )
    return MatchResult(
        shifts.to(stack.dtype).to(dev),
        euler.to(dev),
        round_,
        converged,
        history,
        volume,
        b,
        {k: round(v, 2) for k, v in seconds.items()},
    )


def _preview(volume, shifts, euler):
    return {
        "volume_slice": volume[volume.shape[0] // 2].cpu().numpy(),
        "shifts_px": shifts.numpy(),
        "euler_deg": np.rad2deg(euler.numpy()),
    }
