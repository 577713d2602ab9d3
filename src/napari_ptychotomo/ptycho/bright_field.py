"""Defocus from the bright-field disc: tilt-corrected bright field (parallax).

Each detector pixel inside the bright-field disc, at angle α, gives a virtual image of the
specimen shifted by the gradient of the aberration phase, ∇χ/2π = −λ Δf k = −Δf α for
defocus Δf (C10 = −Δf). Shifting every virtual image back by Δf·α and summing gives the
tilt-corrected bright-field image, whose contrast is largest at the true defocus
(You et al. 2025, workflow step (a); the parallax method of Yu et al.). The search runs
coarse-to-fine over Δf on the Fourier transforms of the virtual images, so each trial
costs one multiply-and-sum.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..data import ScanData
from ..data.checks import check_disc_on_detector, check_type
from ..engine import resolve_device

__all__ = ["estimate_defocus", "start_defocus", "check_disc_on_detector"]


def _virtual_images(scan, inner_fraction: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Virtual bright-field images (nk, ny, nx) (contrast, zero mean) and the detector
    angle (nk, 2) as (y, x) in rad of each."""
    if scan.scan_shape is None or scan.num_positions != scan.scan_shape[0] * scan.scan_shape[1]:
        raise ValueError("estimate_defocus needs a raster scan: give intensities as (Ny, Nx, Ky, Kx) or set scan_shape")
    ny, nx = scan.scan_shape
    ky, kx = scan.detector_shape
    cal = scan.calibration
    check_disc_on_detector(cal, (ky, kx))
    patterns = torch.as_tensor(scan.patterns(), device=device).reshape(ny, nx, ky, kx)
    mean = patterns.mean(dim=(0, 1))
    ay = (torch.arange(ky, device=device) - ky // 2) * cal.detector_sampling_mrad * 1e-3
    ax = (torch.arange(kx, device=device) - kx // 2) * cal.detector_sampling_mrad * 1e-3
    angle = torch.sqrt(ay[:, None] ** 2 + ax[None, :] ** 2)
    inside = (angle <= inner_fraction * cal.semiangle_mrad * 1e-3) & (mean > 0.2 * mean.max())
    if int(inside.sum()) < 5:
        # a dark centre pixel: the disc is elsewhere (e.g. patterns stored with the beam at the corner)
        centred = bool(mean[ky // 2, kx // 2] > 0.2 * mean.max())
        raise ValueError(
            f"only {int(inside.sum())} detector pixels lie inside the bright-field disc of "
            f"{cal.semiangle_mrad} mrad at {cal.detector_sampling_mrad} mrad per pixel; "
            + (
                "check semiangle_mrad and detector_sampling_mrad"
                if centred
                else f"the centre pixel ({ky // 2}, {kx // 2}) of the mean pattern is dark: the patterns must "
                "be centred, the bright-field disc in the middle of the detector (np.fft.fftshift "
                "patterns stored with the beam at the corner)"
            )
        )
    iy, ix = torch.nonzero(inside, as_tuple=True)
    images = patterns[:, :, iy, ix].permute(2, 0, 1)  # (nk, ny, nx)
    images = images / images.mean(dim=(-2, -1), keepdim=True).clamp(min=1e-12) - 1.0
    angles = torch.stack([ay[iy], ax[ix]], dim=1)
    return images.float(), angles.float()


def _contrast(spectra, fy, fx, angles, step, defoci, astigmatism=(0.0, 0.0)):
    """Variance of the tilt-corrected sum for each trial defocus (Parseval).

    Image k (detector angle α_k) is moved back by A·α_k / step pixels with
    A = [[Δf + a, −b], [−b, Δf − a]] in (y, x) order, where (a, b) = C12 (cos 2φ12,
    sin 2φ12): the parallax of χ = (π/λ) α² (C10 + C12 cos 2(φ − φ12)), C10 = −Δf.
    """
    a, b = astigmatism
    out = []
    for df in defoci:
        sy = ((df + a) * angles[:, 0] - b * angles[:, 1]) / step
        sx = (-b * angles[:, 0] + (df - a) * angles[:, 1]) / step
        ramp = torch.exp(2j * math.pi * (fy[None] * sy[:, None, None] + fx[None] * sx[:, None, None]))
        total = torch.sum(spectra * ramp, dim=0)
        out.append(float(torch.sum(torch.abs(total) ** 2)))
    return np.asarray(out)


def _astigmatism(spectra, fy, fx, angles, step, df, fine, extent) -> tuple[float, float]:
    """(a, b) = C12 (cos 2φ12, sin 2φ12) in Å maximising the contrast at defocus ``df``,
    by alternating coarse-to-fine searches over a and b within ±``extent`` Å."""
    ab = [0.0, 0.0]
    width = extent / 4
    while width > fine / 2:
        for i in (0, 1):
            trials = ab[i] + np.linspace(-4 * width, 4 * width, 9)
            scores = [
                _contrast(spectra, fy, fx, angles, step, [df], (t, ab[1]) if i == 0 else (ab[0], t))[0] for t in trials
            ]
            ab[i] = float(trials[int(np.argmax(scores))])
        width /= 4
    return ab[0], ab[1]


def estimate_defocus(
    scan: Any,
    search_range: tuple[float, float] = (-1000.0, 1000.0),
    device: Any = "auto",
    min_gain: float = 2.0,
    max_spread: float = 0.15,
    astigmatism: bool = False,
) -> dict[str, Any]:
    """Defocus of the probe (Å, positive = underfocus) from the bright-field disc alone.

    Parameters
    ----------
    scan : raster :class:`~napari_ptychotomo.data.ScanData` (positions on a regular grid
        with ``calibration.scan_step``).
    search_range : defoci (Å) searched.

    min_gain, max_spread : the estimate is ``reliable`` when its contrast gain is at
        least ``min_gain`` and the estimates from the two halves of the disc (detector
        x < 0 and x ≥ 0) differ by at most ``max_spread`` × |defocus| (or 4 search steps).

    Returns ``{"defocus": Å, "contrast_gain": contrast at the optimum / at zero defocus,
    "spread": Å, |difference of the two half-disc estimates|, "reliable": bool}``; a
    thick or tilted specimen, or a scan too small for the parallax, makes the halves
    disagree. With ``astigmatism`` also two-fold astigmatism: ``"C12"`` Å and its azimuth
    ``"phi12"`` rad (in (−π/2, π/2]; the convention of
    :func:`~napari_ptychotomo.physics.aberration_phase`), from the same contrast
    maximum with the parallax A·α of χ = (π/λ) α² (C10 + C12 cos 2(φ − φ12)).
    """
    check_type("scan", scan, ScanData, "wrap the patterns as ScanData(intensities, Calibration(...))")
    scan.validate()
    dev = resolve_device(device)
    step = scan.calibration.scan_step
    if step is None:
        raise ValueError("calibration.scan_step is None; estimate_defocus needs the raster step in Å")
    images, angles = _virtual_images(scan, 0.9, dev)
    ny, nx = images.shape[-2:]
    taper = (
        torch.hann_window(ny, periodic=False, dtype=torch.float32, device=dev)[:, None]
        * torch.hann_window(nx, periodic=False, dtype=torch.float32, device=dev)[None, :]
    )
    padded = (2 * ny, 2 * nx)  # zero padding: shifted images do not wrap onto each other
    spectra = torch.fft.fft2(images * taper, s=padded)
    fy = torch.fft.fftfreq(padded[0], device=dev, dtype=torch.float32)[:, None]
    fx = torch.fft.fftfreq(padded[1], device=dev, dtype=torch.float32)[None, :]
    lo, hi = (float(v) for v in search_range)
    # the finest useful step: the largest parallax shift changes by ~¼ scan pixel
    fine = 0.25 * step / float(torch.max(torch.linalg.vector_norm(angles, dim=1)))
    best, gain = _search(spectra, fy, fx, angles, step, lo, hi, fine)
    # the two halves of the disc (detector x < 0 and x ≥ 0) see opposite parallax; each
    # alone determines the defocus, and their disagreement measures how well it is known
    halves = [angles[:, 1] < 0, angles[:, 1] >= 0]
    parts = [_search(spectra[h], fy, fx, angles[h], step, lo, hi, fine)[0] for h in halves]
    spread = abs(parts[0] - parts[1])
    out = {
        "defocus": float(best),
        "contrast_gain": float(gain),
        "spread": float(spread),
        "reliable": bool(gain >= min_gain and spread <= max(max_spread * abs(best), 4 * fine)),
    }
    if astigmatism:
        a, b = _astigmatism(spectra, fy, fx, angles, step, best, fine, max(abs(best), 50.0))
        # with the astigmatism known, refine the defocus once more
        best = _search(spectra, fy, fx, angles, step, best - 8 * fine, best + 8 * fine, fine, (a, b))[0]
        out.update(defocus=float(best), C12=float(np.hypot(a, b)), phi12=float(0.5 * np.arctan2(b, a)))
    return out


def _search(spectra, fy, fx, angles, step, lo, hi, fine, astigmatism=(0.0, 0.0)) -> tuple[float, float]:
    """Coarse-to-fine maximum of the tilt-corrected contrast over [lo, hi] Å; returns the
    defocus and its contrast gain over zero defocus."""
    grid = np.linspace(lo, hi, int(np.clip((hi - lo) / (8 * fine), 16, 120)) + 1)
    scores = _contrast(spectra, fy, fx, angles, step, grid, astigmatism)
    best = grid[int(np.argmax(scores))]
    width = grid[1] - grid[0]
    while width > fine:
        grid = np.linspace(best - width, best + width, 9)
        scores = _contrast(spectra, fy, fx, angles, step, grid, astigmatism)
        best = grid[int(np.argmax(scores))]
        width = grid[1] - grid[0]
    zero = _contrast(spectra, fy, fx, angles, step, [0.0])[0]
    return float(best), float(scores.max() / max(zero, 1e-30))


def start_defocus(scan: Any, params: Any) -> tuple[float, str]:
    """Start defocus (Å) of the probe for ``params.defocus`` (see
    :class:`~napari_ptychotomo.ptycho.MSPParams`) and where it came from: ``"given"``,
    ``"calibration"`` or ``"bright-field estimate"`` (for the provenance)."""
    if params.defocus is None:
        return float(scan.calibration.defocus), "calibration"
    if not isinstance(params.defocus, str):
        return float(params.defocus), "given"
    if params.defocus == "estimate":
        return float(estimate_defocus(scan)["defocus"]), "bright-field estimate"
    raster = (
        scan.scan_shape is not None
        and scan.calibration.scan_step is not None
        and scan.num_positions == scan.scan_shape[0] * scan.scan_shape[1]
    )
    if raster:
        estimate = estimate_defocus(scan)
        # the parallax refers the focus to a plane within the specimen: trust it only
        # when the specimen is thin against the defocus, and the estimate is consistent
        thickness = params.num_slices * params.slice_thickness
        if estimate["reliable"] and thickness < 0.5 * abs(estimate["defocus"]):
            return float(estimate["defocus"]), "bright-field estimate"
    return float(scan.calibration.defocus), "calibration"
