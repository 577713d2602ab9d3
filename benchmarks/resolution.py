"""Resolution benchmark: FSC, directional FSC and per-axis spectra on fixed synthetic
volumes (time and the crossings found). Writes benchmarks/results/resolution.json.

Run: ``python benchmarks/resolution.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from napari_ptychotomo import directional_fsc, fsc
from napari_ptychotomo.analysis import axis_power_spectra


def blurred_pair(size, voxel, sigma, noise, rng, wedge_deg=None):
    """Two independently noised copies of a Fourier-blurred random volume, optionally with
    a missing wedge (tilts ±(90 − wedge/2)° about y) in the signal."""
    shape = (size,) * 3
    kz, ky, kx = np.meshgrid(*[np.fft.fftfreq(n, d=voxel) for n in shape], indexing="ij")
    signal = np.fft.fftn(rng.standard_normal(shape)) * np.exp(-2 * np.pi**2 * sigma**2 * (kx**2 + ky**2 + kz**2))
    if wedge_deg:
        max_tilt = np.deg2rad(90 - wedge_deg / 2)
        signal *= (np.abs(kz) <= np.tan(max_tilt) * np.abs(kx)) | ((kz == 0) & (kx == 0))
    signal = np.fft.ifftn(signal).real.astype(np.float32)
    return [signal + noise * rng.standard_normal(shape).astype(np.float32) for _ in range(2)]


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main():
    rng = np.random.default_rng(0)
    rows = []
    for size in (64, 128, 256):
        a, b = blurred_pair(size, 0.5, 0.6, 0.1, rng)
        result, seconds = timed(fsc, a, b, 0.5, device="cpu")
        rows.append({"size": size, "fsc_seconds": seconds, "crossings_A": result.crossings})
        print(f"FSC {size}³: {seconds:.2f} s, one-bit {result.crossings['one_bit']:.3f} Å", flush=True)
    a, b = blurred_pair(128, 0.5, 0.6, 0.1, rng, wedge_deg=60)
    table, seconds = timed(directional_fsc, a, b, 0.5, cone_half_angle_deg=45, device="cpu")
    wedge = {
        "size": 128,
        "seconds": seconds,
        "wedge_deg": 60,
        "cone_half_angle_deg": 45,
        "crossings_A": {k: table[k]["crossings"] for k in ("x", "y", "z")},
        "anisotropy": table["anisotropy"],
    }
    print(f"directional FSC 128³ (60° wedge): {seconds:.2f} s, anisotropy {table['anisotropy']}", flush=True)
    spectra, seconds = timed(axis_power_spectra, a, 0.5, device="cpu")
    out = {
        "threads": torch.get_num_threads(),
        "fsc": rows,
        "directional_missing_wedge": wedge,
        "power_spectra_128_seconds": seconds,
    }
    path = Path(__file__).parent / "results" / "resolution.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
