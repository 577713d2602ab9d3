"""End-to-end ptycho-tomography benchmark: seconds per tilt-iteration, peak memory and the
FFT-floor ratio on a fixed synthetic case. Writes benchmarks/results/joint.json.

Full case: a 96³ volume, 16×16 scan, 64×64 detector, 8 slices, 2 probe modes,
batches of 64 positions. ``--quick``: 48³, 8×8 scan, 32×32 detector, 4 slices.

A tilt-iteration is one pass of Algorithm 3 over one tilt's positions (forward, backward,
update, regularisers). The FFT floor is the time of the FFTs the multislice model needs
for that pass alone (forward and backward: 2 per slice and mode, plus the far field, on
the same batch shapes); the ratio measured / floor says how far the step is from the cost
of its FFTs. The plane-wave mode is timed per iteration on the same volume.

``--missing-wedge`` runs the missing-wedge comparison at a larger size than its test
(tests/joint/missing_wedge_case.py: a Pt@O particle, 9 tilts over ±45°, 12×12 scans; real
MSP per tilt, converged (200 iterations) → linear tomography, its length chosen against the
truth, and the same with FISTA + proximal TV, against end-to-end with proximal TV started from
the MSP probes, positions and the sequential volume) and stores its NRMSEs and heavy-atom
peak widths under ``"missing_wedge"``.

Run: ``python benchmarks/joint.py [--quick] [--device cpu|cuda] [--missing-wedge]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_ptychotomo.data import Calibration, DefocusSeries, ScanData, TiltSeries
from napari_ptychotomo.engine import resolve_device
from napari_ptychotomo.joint import JointParams, joint_steps, plane_wave_steps
from napari_ptychotomo.physics import wavelength

ENERGY = 300e3


def case(n_volume, scan, window, seed=0):
    """A random-atom tilt series (patterns from a thin weak volume; timing only)."""
    from napari_ptychotomo.joint.forward import stem_intensities
    from napari_ptychotomo.physics import fresnel_propagator, interaction_constant, make_probe

    voxel = 0.4
    lam = float(wavelength(ENERGY))
    cal = Calibration(ENERGY, 20.0, lam / (window * voxel) * 1e3, scan_step=None)
    extent = n_volume - window - 6
    step = extent / (scan - 1) * voxel
    yy, xx = np.meshgrid(np.arange(scan) * step, np.arange(scan) * step, indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], 1)
    rng = np.random.default_rng(seed)
    volume = torch.zeros((n_volume,) * 3, dtype=torch.complex64)
    idx = rng.integers(n_volume // 4, 3 * n_volume // 4, size=(200, 3))
    volume[idx[:, 0], idx[:, 1], idx[:, 2]] = 50.0
    probe = make_probe((window, window), voxel, ENERGY, 20.0)[None]
    prop = fresnel_propagator((window, window), voxel, lam, n_volume / 4 * voxel)
    centred = torch.tensor((pos - pos.mean(0)) / voxel + (n_volume - 1) / 2, dtype=torch.float32)
    scans = []
    for angle in (-20.0, 20.0):
        with torch.no_grad():
            patterns = stem_intensities(
                volume,
                torch.tensor([0.0, np.deg2rad(angle), 0.0]),
                torch.zeros(2),
                probe,
                centred,
                prop,
                4,
                voxel,
                float(interaction_constant(ENERGY)),
            )
        scans.append(ScanData(patterns.numpy().astype(np.float32), cal, positions=pos, tilt_deg=angle))
    return TiltSeries(scans, [-20.0, 20.0]), voxel


def fft_floor(batch, modes, slices, window, device, repeats=3):
    """Seconds for the FFTs of one minibatch: forward (2 per slice and mode + far field),
    backward (the same again)."""
    waves = torch.randn(batch, modes, window, window, dtype=torch.complex64, device=device)
    count = 2 * (2 * slices + 1)
    for _ in range(2):
        torch.fft.fft2(waves)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        for _ in range(count):
            waves = torch.fft.fft2(waves)
    _sync(device)
    return (time.perf_counter() - start) / repeats


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_bytes(device):
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--missing-wedge", action="store_true")
    args = parser.parse_args()
    if args.missing_wedge:
        return missing_wedge()
    device = resolve_device(args.device)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    n_volume, scan, window, slices, modes, batch = (48, 8, 32, 4, 2, 32) if args.quick else (96, 16, 64, 8, 2, 64)
    series, voxel = case(n_volume, scan, window)
    params = JointParams(
        iterations=2,
        num_slices=slices,
        num_modes=modes,
        batch_size=batch,
        volume_shape=(n_volume,) * 3,
        learn_probe=True,
        learn_positions=True,
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    gen = joint_steps(series, params=params, device=device)
    start = time.perf_counter()
    for _ in gen:
        _sync(device)
        now = time.perf_counter()
        times.append(now - start)
        start = now
    per_tilt = float(np.median(times[1:])) if len(times) > 1 else float(times[0])
    batches = int(np.ceil(scan * scan / batch))
    floor = fft_floor(batch, modes, slices, window, device) * batches
    memory = peak_memory_bytes(device)

    images = [
        DefocusSeries(np.ones((3, n_volume, n_volume), np.float32), np.array([-50.0, 0.0, 50.0]), voxel, ENERGY, a)
        for a in (-20.0, 20.0)
    ]
    pw = JointParams(iterations=3, num_slices=slices, volume_shape=(n_volume,) * 3, tv_weight=0.1)
    pw_times, start = [], time.perf_counter()
    for _ in plane_wave_steps(TiltSeries(images, [-20.0, 20.0]), params=pw, device=device):
        _sync(device)
        now = time.perf_counter()
        pw_times.append(now - start)
        start = now
    result = {
        "case": {
            "volume": n_volume,
            "scan": [scan, scan],
            "detector": [window, window],
            "slices": slices,
            "modes": modes,
            "batch_size": batch,
            "tilts": 2,
            "voxel_size_A": voxel,
        },
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seconds_per_tilt_iteration": per_tilt,
        "fft_floor_seconds_per_tilt_iteration": floor,
        "fft_floor_ratio": per_tilt / floor,
        "peak_memory_bytes": memory,
        "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process max RSS",
        "plane_wave_seconds_per_iteration_2_tilts_3_defoci": float(np.median(pw_times[1:])),
        "quick": args.quick,
    }
    out = Path(__file__).parent / "results" / "joint.json"
    out.parent.mkdir(exist_ok=True)
    if out.exists() and "missing_wedge" in json.loads(out.read_text()):
        result["missing_wedge"] = json.loads(out.read_text())["missing_wedge"]
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


MISSING_WEDGE = dict(specimen="pt_o", scan=12, step=1.0, tilts=9, start="sequential")


def missing_wedge():
    """The missing-wedge comparison at benchmark size; adds ``"missing_wedge"`` to results/joint.json."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "joint"))
    from missing_wedge_case import run_case

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    case = run_case(**MISSING_WEDGE)
    case.pop("volumes")
    case["end_to_end_vs_sequential_nrmse"] = case["end_to_end"]["nrmse"] / case["sequential"]["nrmse"]
    case["end_to_end_vs_sequential_tv_nrmse"] = case["end_to_end"]["nrmse"] / case["sequential_tv"]["nrmse"]
    case["os_load_average"] = os.getloadavg()[0]  # the seconds are wall time on a possibly shared machine
    out = Path(__file__).parent / "results" / "joint.json"
    result = json.loads(out.read_text()) if out.exists() else {}
    result["missing_wedge"] = case
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(case, indent=2))


if __name__ == "__main__":
    main()
