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
:mod:`.coarse_alignment`.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..engine import EngineError, Progress
from .coarse_alignment import (
    centre_of_mass_shifts,
    is_isolated,
    neighbour_shifts,
    remove_translation,
)
from .peak_refinement import refine_peak_model
from .projector import project

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


def sirt(
    projections: torch.Tensor,
    euler_rad: torch.Tensor,
    shifts_px: torch.Tensor,
    shape: tuple[int, int, int],
    n_iter: int = 20,
    volume: torch.Tensor | None = None,
    nonnegative: bool = True,
    relaxation: float = 1.0,
) -> torch.Tensor:
    """Simultaneous iterative reconstruction (SIRT) of a volume, optionally non-negative.

    v ← max(0, v + λ C Aᵀ R (p − A v)) with R = 1 / (A 1) per ray and C = 1 / (Aᵀ 1) per
    voxel (Gilbert 1972), A the projector at the given alignment. ``projections``
    (T, ny, nx); returns (nz, ny, nx) in projection units per voxel.
    """
    dev, dt = projections.device, projections.dtype
    euler_rad, shifts_px = euler_rad.detach().to(dt), shifts_px.detach().to(dt)
    out_shape = tuple(projections.shape[-2:])

    def forward(v):
        return project(v, euler_rad, shifts_px, out_shape)

    # the projector is linear in the volume: one recorded graph gives the adjoint of every
    # residual (its backward pass depends on the ray geometry only)
    with torch.enable_grad():
        probe = torch.zeros(shape, dtype=dt, device=dev, requires_grad=True)
        recorded = forward(probe)

    def adjoint(r):
        (grad,) = torch.autograd.grad(recorded, probe, r, retain_graph=True)
        return grad

    with torch.no_grad():
        ones = torch.ones(shape, dtype=dt, device=dev)
        ray = forward(ones)
        row = torch.where(ray > 1e-3 * ray.max(), 1 / ray.clamp(min=1e-12), torch.zeros_like(ray))
        col = adjoint(torch.ones_like(projections))
        col = torch.where(col > 1e-6, 1 / col.clamp(min=1e-12), torch.zeros_like(col))
        v = torch.zeros(shape, dtype=dt, device=dev) if volume is None else volume.detach().clone()
        for _ in range(n_iter):
            v = v + relaxation * col * adjoint(row * (projections - forward(v)))
            if nonnegative:
                v = v.clamp(min=0)
    return v


def register_shifts(
    data: torch.Tensor, model: torch.Tensor, upsample: int = 20, lowpass_px: float = 0.0
) -> torch.Tensor:
    """Shift (T, 2) (y, x) in pixels by which each ``data`` image is displaced from its
    ``model`` image: a global search by cross-correlation over the whole image, refined
    by upsampled DFT (skimage ``phase_cross_correlation``, Guizar-Sicairos et al. 2008)."""
    from scipy.ndimage import gaussian_filter
    from skimage.registration import phase_cross_correlation

    out = np.zeros((data.shape[0], 2))
    d, m = data.detach().cpu().double().numpy(), model.detach().cpu().double().numpy()
    for k in range(len(d)):
        a, b = d[k], m[k]
        if lowpass_px > 0:
            a, b = gaussian_filter(a, lowpass_px), gaussian_filter(b, lowpass_px)
        shift, _, _ = phase_cross_correlation(b, a, upsample_factor=upsample, normalization=None)
        out[k] = -shift  # skimage: the shift that moves data onto model
    return torch.as_tensor(out, dtype=data.dtype, device=data.device)


def downsample(stack: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor`` × ``factor`` pixel blocks (centre (n − 1)/2 kept in place when the
    sides are multiples of ``factor``)."""
    if factor == 1:
        return stack
    return F.avg_pool2d(stack[:, None], factor)[:, 0]


def peak_model(volume: torch.Tensor, min_distance: int = 3, threshold: float = 0.3):
    """Local maxima of a volume as a sparse model: positions (n, 3) (x, y, z) in voxels from
    the volume centre (refined to the weighted centroid of their 3×3×3 neighbourhood) and
    their heights (n,)."""
    from skimage.feature import peak_local_max

    v = volume.detach().cpu().double().numpy()
    peaks = peak_local_max(v, min_distance=int(min_distance), threshold_rel=threshold, exclude_border=False)
    if len(peaks) == 0:
        return np.zeros((0, 3)), np.zeros(0)
    offsets = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    idx = np.clip(peaks[:, None, :] + offsets[None], 0, np.array(v.shape) - 1)
    weight = v[idx[..., 0], idx[..., 1], idx[..., 2]].clip(min=0)
    zyx = (idx * weight[..., None]).sum(1) / weight.sum(1).clip(min=1e-30)[:, None]
    zyx = zyx - (np.array(v.shape) - 1) / 2
    return zyx[:, ::-1].copy(), v[tuple(peaks.T)]


def render_peaks(
    positions: np.ndarray, heights: np.ndarray, euler_rad, shape: tuple[int, int], sigma_px: float, scale: float = 1.0
) -> np.ndarray:
    """Projections (T, ny, nx) of Gaussian blobs at ``positions`` (n, 3) (x, y, z) in volume
    voxels (× ``scale`` = image pixels) after rotation by R(euler) (docs/conventions.md), unshifted."""
    from .rotation import rotation_matrix

    rot = rotation_matrix(torch.as_tensor(np.asarray(euler_rad), dtype=torch.float64)).numpy()
    ny, nx = shape
    y = np.arange(ny) - (ny - 1) / 2
    x = np.arange(nx) - (nx - 1) / 2
    out = np.empty((len(rot), ny, nx))
    for k in range(len(rot)):
        moved = positions @ rot[k].T * scale
        gx = np.exp(-((x[None] - moved[:, 0:1]) ** 2) / (2 * sigma_px**2))
        gy = np.exp(-((y[None] - moved[:, 1:2]) ** 2) / (2 * sigma_px**2))
        out[k] = (heights[:, None] * gy).T @ gx
    return out


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


def _correlation_at(cross: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """Cross-correlation Σ_k X(k) exp(2πi k·s) at the shifts sy × sx (pixels), by a
    matrix DFT of the cross-power spectrum ``cross`` (an upsampled DFT, as Guizar-Sicairos
    et al. 2008, on a small grid only)."""
    ky = np.fft.fftfreq(cross.shape[0])
    kx = np.fft.fftfreq(cross.shape[1])
    ey = np.exp(2j * np.pi * sy[:, None] * ky[None, :])
    ex = np.exp(2j * np.pi * kx[:, None] * sx[None, :])
    return (ey @ cross @ ex).real


def _register(
    data: np.ndarray,
    template: np.ndarray,
    upsample: int,
    lowpass_px: float,
    guess_px=(0.0, 0.0),
    max_shift_fraction: float = 0.1,
):
    """Shift (y, x) in pixels of ``data`` against ``template`` (data ≈ template moved by
    +shift) and the normalised correlation at it.

    A search of the cross-correlation of both images low-passed by a Gaussian of
    ``lowpass_px`` (which removes the periodic detail of a crystal lattice, whose
    correlation peaks a lattice vector away can beat the right one) over shifts within
    ``max_shift_fraction`` of the image sides of ``guess_px`` (y, x), then the full-band
    correlation maximised within ±1.5 px of it to 1/``upsample`` px.
    """
    d = np.fft.fft2(data - data.mean())
    t = np.fft.fft2(template - template.mean())
    cross = d * t.conj()
    ky = np.fft.fftfreq(data.shape[0])[:, None]
    kx = np.fft.fftfreq(data.shape[1])[None, :]
    k2 = ky**2 + kx**2
    # a band: above it the lattice, below it a phase image's smooth background and halo
    smooth = np.exp(-2 * np.pi**2 * lowpass_px**2 * k2)
    coarse = np.fft.ifft2(cross * smooth).real
    size = np.array(data.shape)
    # only shifts near the guess (the coarse stage's error is a few pixels): further out
    # the low-passed correlation of a phase image's smooth background and halo with the
    # template, or a particle's outline one row of columns over, can win (measured: jumps
    # of 40 px and of 18 px on the demo's MSP phases of 84 px)
    lag_y = (np.fft.fftfreq(size[0]) * size[0] - guess_px[0] + size[0] / 2) % size[0] - size[0] / 2
    lag_x = (np.fft.fftfreq(size[1]) * size[1] - guess_px[1] + size[1] / 2) % size[1] - size[1] / 2
    reach = (lag_y[:, None] / size[0]) ** 2 + (lag_x[None, :] / size[1]) ** 2 <= max_shift_fraction**2
    coarse = np.where(reach, coarse, -np.inf)
    peak = np.array(np.unravel_index(int(np.argmax(coarse)), coarse.shape), dtype=float)
    peak = np.where(peak > size // 2, peak - size, peak)
    centre, radius, step = peak, 1.5, 0.1
    while True:
        grid = np.arange(-radius, radius + step / 2, step)
        values = _correlation_at(cross, centre[0] + grid, centre[1] + grid)
        iy, ix = np.unravel_index(int(np.argmax(values)), values.shape)
        centre = centre + grid[[iy, ix]]
        if step <= 1.0 / upsample:
            break
        radius, step = 1.5 * step, max(step / 10, 1.0 / upsample)
    norm = np.sqrt((np.abs(d) ** 2).sum() * (np.abs(t) ** 2).sum())
    return centre, float(values.max() / norm) if norm > 0 else 0.0


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
