"""Fourier shell correlation (FSC) of two independent reconstructions and the resolution
read from it.

The FSC of shell k is Re Σ F₁F₂* / √(Σ|F₁|² Σ|F₂|²) over the Fourier voxels of the shell
(Saxton & Baumeister 1982; used with half-data reconstructions by You et al. 2025). Each
Fourier voxel at continuous shell coordinate r = |k|·N_min / shell_width is shared
linearly between shells ⌊r⌋ and ⌊r⌋+1 (tent weights), which gives a smooth curve on
small boxes. Thresholds follow van Heel & Schatz, J. Struct. Biol. 151, 250 (2005), eq. 17:
for a half-data SNR S and n voxels in the shell,

    T(n) = [S + (2√S + 1)/√n] / [1 + S + 2√S/√n],

with S = 1/2 for the one-bit and S = (√2 − 1)/2 for the half-bit criterion (the SNR of
one half when the full data reach log₂(1 + SNR) = 1 or 1/2 bit); the fixed 0.143 level
(Rosenthal & Henderson 2003) is reported too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import Resolution
from .volume_input import volume_array

__all__ = ["fsc", "threshold_curve", "first_crossing", "SNR_ONE_BIT", "SNR_HALF_BIT"]

#: SNR of one half-data reconstruction for the one-bit and half-bit criteria
SNR_ONE_BIT = 0.5
SNR_HALF_BIT = (np.sqrt(2.0) - 1.0) / 2.0


def threshold_curve(n_voxels: Any, snr: float) -> np.ndarray:
    """Information threshold of van Heel & Schatz (2005, eq. 17) for ``n_voxels`` per shell.

    Parameters
    ----------
    n_voxels : array (n_shells,), number of Fourier voxels in each shell (may be fractional).
    snr : SNR of one half-data reconstruction (:data:`SNR_ONE_BIT`, :data:`SNR_HALF_BIT`).
    """
    n = np.maximum(np.asarray(n_voxels, dtype=np.float64), 1e-12)
    root_n = np.sqrt(n)
    root_s = np.sqrt(snr)
    return (snr + (2 * root_s + 1) / root_n) / (1 + snr + 2 * root_s / root_n)


def first_crossing(frequency: np.ndarray, curve: np.ndarray, threshold: Any) -> float:
    """Resolution in Å where ``curve`` first falls below ``threshold`` (beyond shell 0).

    The crossing frequency is interpolated linearly between the shells around it; ``nan``
    when the curve never falls below the threshold; when it is already below at the
    first shells (no information at all), the resolution of the first shell below, i.e.
    "no better than" that (the box length when shell 1 already fails: shell 0 holds
    only the mean, so nothing is interpolated against it).
    """
    frequency = np.asarray(frequency, dtype=np.float64)
    diff = np.asarray(curve, dtype=np.float64) - np.broadcast_to(threshold, np.shape(curve))
    keep = np.isfinite(diff)  # empty shells (e.g. of a narrow cone) have no value
    keep[0] = True
    frequency, diff = frequency[keep], diff[keep]
    below = np.flatnonzero(diff[1:] < 0)
    if below.size == 0:
        return float("nan")
    i = int(below[0]) + 1
    d0, d1 = diff[i - 1], diff[i]
    if d0 < 0 or i == 1 and frequency[0] == 0:
        return float(1.0 / frequency[i])
    k = frequency[i - 1] + (frequency[i] - frequency[i - 1]) * d0 / (d0 - d1)
    return float(1.0 / k) if k > 0 else float("inf")


def fourier_shell_coordinate(shape: tuple[int, int, int], shell_width: float, device: Any):
    """Continuous shell coordinate r = |k| N_min / shell_width of every voxel of an
    unshifted ``fftn`` grid (torch, float64), and the unit wave vectors (3, nz, ny, nx) as (z, y, x)."""
    import torch

    axes = [torch.fft.fftfreq(n, device=device, dtype=torch.float64) for n in shape]
    kz, ky, kx = torch.meshgrid(*axes, indexing="ij")
    k = torch.sqrt(kz**2 + ky**2 + kx**2)
    unit = torch.stack([kz, ky, kx]) / torch.clamp(k, min=1e-300)
    return k * (min(shape) / shell_width), unit


def shell_sums(f1, f2, coordinate, n_shells: int, select=None):
    """Tent-weighted shell sums of Re F₁F₂*, |F₁|², |F₂|² and of the voxel weights.

    ``select`` is an optional boolean mask over the Fourier grid (e.g. a cone). Returns
    four float64 numpy arrays (n_shells,).
    """
    import torch

    r = coordinate
    cross = (f1 * torch.conj(f2)).real.double()
    p1 = f1.real.double() ** 2 + f1.imag.double() ** 2
    p2 = f2.real.double() ** 2 + f2.imag.double() ** 2
    if select is not None:
        r, cross, p1, p2 = r[select], cross[select], p1[select], p2[select]
    r, cross, p1, p2 = r.reshape(-1), cross.reshape(-1), p1.reshape(-1), p2.reshape(-1)
    lower = torch.floor(r).long()
    frac = r - lower
    out = []
    for values in (cross, p1, p2, torch.ones_like(r)):
        acc = torch.zeros(n_shells + 2, dtype=torch.float64, device=r.device)
        acc.index_add_(0, torch.clamp(lower, max=n_shells + 1), values * (1 - frac))
        acc.index_add_(0, torch.clamp(lower + 1, max=n_shells + 1), values * frac)
        out.append(acc[:n_shells].cpu().numpy())
    return tuple(out)


def correlation_result(frequency, sums) -> dict[str, Any]:
    """FSC curve, thresholds and crossings from :func:`shell_sums` output."""
    cross, p1, p2, counts = sums
    denom = np.sqrt(p1 * p2)
    curve = np.where(denom > 0, cross / np.where(denom > 0, denom, 1.0), 0.0)
    # shells holding less than one Fourier voxel (narrow cones at low |k|) have no value;
    # the thresholds exceed 1 there anyway
    curve[counts < 1.0] = np.nan
    thresholds = {
        "one_bit": threshold_curve(counts, SNR_ONE_BIT),
        "half_bit": threshold_curve(counts, SNR_HALF_BIT),
        "0.143": np.full(len(curve), 0.143),
    }
    crossings = {name: first_crossing(frequency, curve, t) for name, t in thresholds.items()}
    return {
        "frequency": frequency,
        "fsc": curve,
        "thresholds": thresholds,
        "crossings": crossings,
        "shell_counts": counts,
    }


def prepare_pair(volume1, volume2, voxel_size, mask, device):
    """Check two volumes (and a mask) and return their Fourier transforms on ``device``."""
    import torch

    from ..engine import resolve_device

    a, size1, _ = volume_array(volume1, voxel_size, "volume1")
    b, size2, _ = volume_array(volume2, voxel_size, "volume2")
    if a.shape != b.shape:
        raise ValueError(f"volume2 has shape {b.shape}; expected {a.shape} like volume1")
    if not np.isclose(size1, size2, rtol=1e-6):
        raise ValueError(f"volume2 has voxel_size {size2} Å; expected {size1} Å like volume1")
    dev = resolve_device(device)
    complex_input = np.iscomplexobj(a) or np.iscomplexobj(b)
    dtype = np.complex64 if complex_input else np.float32
    ta = torch.as_tensor(a.astype(dtype, copy=False), device=dev)
    tb = torch.as_tensor(b.astype(dtype, copy=False), device=dev)
    if mask is not None:
        m = np.asarray(mask, dtype=np.float32)
        if m.shape != a.shape:
            raise ValueError(f"mask has shape {m.shape}; expected {a.shape} like the volumes")
        tm = torch.as_tensor(m, device=dev)
        ta, tb = ta * tm, tb * tm
    return torch.fft.fftn(ta), torch.fft.fftn(tb), a.shape, size1, dev


def fsc(
    volume1: Any,
    volume2: Any,
    voxel_size: float | None = None,
    *,
    mask: Any = None,
    shell_width: float = 1.0,
    device: Any = "auto",
) -> Resolution:
    """Fourier shell correlation of two independent reconstructions of one specimen.

    Parameters
    ----------
    volume1, volume2 : Volume or array (nz, ny, nx), real or complex, cubic voxels.
    voxel_size : voxel edge in Å (taken from a ``Volume`` when not given).
    mask : optional real array (nz, ny, nx) multiplied into both volumes (a soft mask
        avoids edge ringing).
    shell_width : shell spacing in units of 1/(N_min · voxel_size), N_min the smallest
        box edge; shells run from 0 to the Nyquist frequency of that edge.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...

    Returns
    -------
    Resolution
        ``frequency`` (n_shells,) in 1/Å, ``fsc``, ``thresholds`` (``"one_bit"``,
        ``"half_bit"``, ``"0.143"``), ``crossings`` (first crossing of each, interpolated,
        as a resolution in Å; ``nan`` when the curve stays above) and ``shell_counts``
        (Fourier voxels per shell, the n of the thresholds).
    """
    if not (np.isfinite(shell_width) and 0.5 <= shell_width <= 8):
        raise ValueError(f"shell_width = {shell_width!r}; expected 0.5 to 8 (shells of 1/box)")
    f1, f2, shape, size, dev = prepare_pair(volume1, volume2, voxel_size, mask, device)
    coordinate, _ = fourier_shell_coordinate(shape, shell_width, dev)
    n_shells = int(np.floor(min(shape) / (2 * shell_width))) + 1
    frequency = np.arange(n_shells) * shell_width / (min(shape) * size)
    result = correlation_result(frequency, shell_sums(f1, f2, coordinate, n_shells))
    return Resolution(**result).validate()
