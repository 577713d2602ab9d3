"""Atom tracing benchmark: accuracy against noise (tracer vs a plain baseline) and the
time to trace 10⁴ atoms in a 256³ volume. Writes benchmarks/results/atoms.json.

Run: ``python benchmarks/atoms.py [--quick]`` (a few minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from napari_ptychotomo import score_atoms, trace_atoms
from napari_ptychotomo.analysis.peak_filters import gaussian_blur
from napari_ptychotomo.simulate import potential_volume

VOXEL = 0.33


def random_atoms(n, low, high, min_distance, rng):
    """Up to n random positions (Å) no two closer than min_distance (grid-accelerated)."""
    from scipy.spatial import cKDTree

    candidates = rng.uniform(low, high, size=(int(n * 3), 3))
    keep = []
    tree = cKDTree(candidates)
    blocked = np.zeros(len(candidates), bool)
    for k in range(len(candidates)):
        if blocked[k]:
            continue
        keep.append(k)
        blocked[tree.query_ball_point(candidates[k], min_distance)] = True
        if len(keep) == n:
            break
    return candidates[keep]


def baseline(volume, threshold):
    """skimage peak_local_max + centre of mass of the 3×3×3 voxels around each peak (Å)."""
    from skimage.feature import peak_local_max

    peaks = peak_local_max(volume, min_distance=3, threshold_abs=threshold)
    offsets = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    windows = np.clip(peaks[:, None, :] + offsets, 0, np.array(volume.shape) - 1)
    weights = np.clip(volume[windows[..., 0], windows[..., 1], windows[..., 2]], 0, None) + 1e-12
    return (windows * weights[..., None]).sum(1) / weights.sum(1)[:, None] * VOXEL


def summary(score):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in score.items() if k != "matches"}


def noise_sweep(size, levels, blur, rng):
    box = size * VOXEL
    positions = random_atoms(int(size**3 * 0.9e-3), 1.0, box - 1.0, 2.2, rng)
    heavy = rng.random(len(positions)) < 0.4
    truth = (positions, heavy.astype(int))
    clean = potential_volume(positions, np.where(heavy, 78, 8), (size,) * 3, VOXEL)
    if blur:
        clean = gaussian_blur(torch.as_tensor(clean), blur / VOXEL).numpy()
    rows = []
    for noise in levels:
        volume = clean + noise * rng.standard_normal(clean.shape).astype(np.float32)
        traced = trace_atoms(volume, voxel_size=VOXEL)
        plain = baseline(volume, 5 * max(noise, 1.0))
        rows.append({
            "noise_V": noise, "blur_A": blur, "n_atoms": len(positions),
            "tracer": summary(score_atoms(traced, truth, 0.6)),
            "baseline": {**summary(score_atoms(plain, truth, 0.6)), "species_accuracy": None},
        })
        t, b = rows[-1]["tracer"], rows[-1]["baseline"]
        print(f"noise {noise:5.1f} V blur {blur} Å: tracer recall {t['recall']:.4f} FP {t['false_positive_rate']:.4f} "
              f"RMS {t['rms_error_3d']:.4f} Å species {t['species_accuracy']:.4f} | baseline recall "
              f"{b['recall']:.4f} FP {b['false_positive_rate']:.4f} RMS {b['rms_error_3d']:.4f} Å", flush=True)
    return rows


def timing(size, n_atoms, rng):
    box = size * VOXEL
    positions = random_atoms(n_atoms, 1.0, box - 1.0, 2.2, rng)
    heavy = rng.random(len(positions)) < 0.4
    volume = potential_volume(positions, np.where(heavy, 78, 8), (size,) * 3, VOXEL)
    volume += 10.0 * rng.standard_normal(volume.shape).astype(np.float32)
    start = time.perf_counter()
    traced = trace_atoms(volume, voxel_size=VOXEL, device="cpu")
    seconds = time.perf_counter() - start
    score = summary(score_atoms(traced, (positions, heavy.astype(int)), 0.6))
    print(f"{len(positions)} atoms in {size}³: {seconds:.1f} s on {torch.get_num_threads()} threads; "
          f"recall {score['recall']:.4f}, RMS {score['rms_error_3d']:.4f} Å", flush=True)
    return {"size": size, "n_atoms": len(positions), "seconds": seconds,
            "threads": torch.get_num_threads(), "score": score}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small volumes only")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    size = 48 if args.quick else 64
    levels = [0.0, 10.0, 25.0, 50.0, 100.0]
    result = {
        "voxel_size_A": VOXEL,
        "species": "Pt (40 %) and O, Lobato potentials, ≥ 2.2 Å apart",
        "noise_sweep_sharp": noise_sweep(size, levels, 0.0, rng),
        "noise_sweep_blurred": noise_sweep(size, [0.0, 5.0, 10.0, 20.0, 40.0], 0.3, rng),
    }
    if not args.quick:
        result["timing"] = timing(256, 10_000, rng)
    out = Path(__file__).parent / "results" / "atoms.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
