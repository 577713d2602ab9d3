"""Per-axis projections of the 3D power spectrum and the "last peak" resolution of
Romanov et al. 2025 (Sec. 3, Fig. 5): the 3D power spectrum |F(k)|² of a crystalline
volume is integrated over two axes; the highest-frequency Bragg peak that still stands
out of the background along an axis gives the resolution along it (1 / k_peak)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .volume_input import volume_array

__all__ = ["axis_power_spectra"]

_AXIS_NAMES = ("z", "y", "x")


def _last_peak(frequency: np.ndarray, spectrum: np.ndarray, n_sigma: float, min_frequency: float):
    """Frequencies of the significant peaks of a 1D spectrum and the last one (1/Å).

    The background is a running median (9 bins); a local maximum counts as a Bragg peak
    when it rises ``n_sigma`` robust standard deviations (1.4826 · MAD of the residual)
    above it. The noise estimate is floored at 1e-7 of the spectrum's maximum, the
    precision of a float32 transform, so noise-free volumes do not list rounding errors.
    """
    from scipy.ndimage import median_filter
    from scipy.signal import find_peaks

    background = median_filter(spectrum, size=9, mode="reflect")
    excess = spectrum - background
    spread = 1.4826 * np.median(np.abs(excess - np.median(excess)))
    spread = max(spread, 1e-7 * float(np.max(spectrum)))
    peaks, _ = find_peaks(excess, height=n_sigma * spread)
    peaks = peaks[frequency[peaks] >= min_frequency]
    last = float(frequency[peaks[-1]]) if peaks.size else float("nan")
    return frequency[peaks], last


def axis_power_spectra(
    volume: Any,
    voxel_size: float | None = None,
    *,
    n_sigma: float = 5.0,
    min_frequency: float | None = None,
    device: Any = "auto",
) -> dict[str, Any]:
    """Power spectrum of a volume projected onto each axis, and its last-peak resolution.

    Parameters
    ----------
    volume : Volume or array (nz, ny, nx), real or complex.
    voxel_size : voxel edge in Å (from a ``Volume`` when not given).
    n_sigma : how far a peak must rise above the local background (a running median),
        in robust standard deviations of the spectrum's residual, to count as a Bragg
        peak.
    min_frequency : ignore peaks below this frequency in 1/Å (default: 2 / box length,
        which skips the envelope of the specimen's shape).
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...

    Returns
    -------
    dict
        Per axis name ``"z"``, ``"y"``, ``"x"``: ``{"frequency": (n,) 1/Å from 0 to
        Nyquist, "spectrum": (n,) power summed over the other two axes (±k folded),
        "peaks": peak frequencies 1/Å, "last_peak": 1/Å, "resolution": Å}``; and
        ``"projections"``: per axis the centred 2D power spectrum summed along that axis
        (e.g. ``"z"`` → (ky, kx)), for display.
    """
    import torch

    from ..engine import resolve_device

    array, size, _ = volume_array(volume, voxel_size)
    dev = resolve_device(device)
    dtype = np.complex64 if np.iscomplexobj(array) else np.float32
    data = torch.as_tensor(array.astype(dtype, copy=False), device=dev)
    data = data - data.mean()
    power = torch.fft.fftn(data).abs().double() ** 2
    floor_frequency = 2.0 / (max(array.shape) * size) if min_frequency is None else float(min_frequency)
    result: dict[str, Any] = {"projections": {}}
    for axis, name in enumerate(_AXIS_NAMES):
        others = tuple(a for a in range(3) if a != axis)
        line = power.sum(dim=others).cpu().numpy()
        n = array.shape[axis]
        half = n // 2
        folded = line[: half + 1].copy()
        folded[1:] += line[::-1][:half]  # add −k to +k (index n−k)
        folded[1:] /= 2.0
        if n % 2 == 0:
            folded[half] = line[half]
        frequency = np.arange(half + 1) / (n * size)
        peaks, last = _last_peak(frequency, folded, n_sigma, floor_frequency)
        result[name] = {
            "frequency": frequency,
            "spectrum": folded,
            "peaks": peaks,
            "last_peak": last,
            "resolution": float(1.0 / last) if np.isfinite(last) else float("nan"),
        }
        result["projections"][name] = torch.fft.fftshift(power.sum(dim=axis)).float().cpu().numpy()
    return result
