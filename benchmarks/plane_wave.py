"""Plane-wave (HRTEM) tomography benchmark: seconds per iteration against the engine's own
FFT floor, with the time split into its parts. Writes benchmarks/results/plane_wave.json
(one entry per case and device).

Cases: ``issue`` is the size of the HRTEM case users run (128² images of 0.25 Å, a 128-voxel
deep box, 16 slices, 3 defoci, 31 tilts, aperture + Cs + focal spread); ``small`` is 64²,
64 deep, 16 slices, 3 defoci, 8 tilts (quick on a CPU).

The FFT floor of one iteration is the time of the FFTs the model does, as one batched
``fft2`` of that many images of the same size: per tilt and direction (forward, backward)
2 per slice for the transmission's band limit, 2 per slice but the last for the
propagations, 1 for the exit wave's spectrum and 1 per defocus for the images. The parts:
the volume's rotation (forward + backward, all tilts) and the multislice + imaging
(forward + backward, from given slices), each timed alone; and the iteration without
the proximal TV step (TV 0.1 V is the timed default, as in the issue's runs).

Run: ``python benchmarks/plane_wave.py [--case small|issue] [--device cpu|cuda] [--iterations 4]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from napari_ptychotomo.data import DefocusSeries, TiltSeries
from napari_ptychotomo.engine import resolve_device
from napari_ptychotomo.joint import JointParams, plane_wave_steps
from napari_ptychotomo.joint.forward import series_transfer, tilt_slices
from napari_ptychotomo.physics import exit_wave, fresnel_propagator, interaction_constant, transmission, wavelength

ENERGY = 300e3
CASES = {
    "small": dict(n=64, depth=64, slices=16, defoci=3, tilts=8, pixel=0.25),
    "issue": dict(n=128, depth=128, slices=16, defoci=3, tilts=31, pixel=0.25),
}
OPTICS = dict(aperture_mrad=19.0, aberrations={"C30": 2e5}, focal_spread=30.0)


def series_of(case) -> TiltSeries:
    """Timing only: flat images (the cost does not depend on their content)."""
    angles = np.linspace(-90, 90, case["tilts"], endpoint=False)
    defoci = np.linspace(-60.0, 60.0, case["defoci"])
    rng = np.random.default_rng(0)
    stacks = [
        DefocusSeries(
            (1 + 0.05 * rng.standard_normal((case["defoci"], case["n"], case["n"]))).astype(np.float32),
            defoci,
            case["pixel"],
            ENERGY,
            float(a),
            **OPTICS,
        )
        for a in angles
    ]
    return TiltSeries(stacks, angles)


def fft_count(case) -> int:
    per_direction = 2 * case["slices"] + 2 * (case["slices"] - 1) + 1 + case["defoci"]
    return 2 * per_direction * case["tilts"]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device, repeats=3) -> float:
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def fft_floor(case, device) -> float:
    images = torch.randn(fft_count(case), case["n"], case["n"], dtype=torch.complex64, device=device)
    return _time(lambda: torch.fft.fft2(images), device)


def parts(case, device) -> dict[str, float]:
    """Seconds per iteration of the rotation + binning and of the multislice + imaging."""
    n, tilts = case["n"], case["tilts"]
    shape = (case["depth"], n, n)
    volume = (torch.rand(shape, device=device) * 10).to(torch.complex64).requires_grad_(True)
    euler = torch.zeros(tilts, 3, device=device)
    euler[:, 1] = torch.linspace(-np.pi / 2, np.pi / 2, tilts, device=device)
    lam, sigma = float(wavelength(ENERGY)), float(interaction_constant(ENERGY))
    pixel = case["pixel"]

    def rotation():
        volume.grad = None
        tilt_slices(volume, euler, case["slices"], pixel, stage_axis_matrix=True).real.sum().backward()

    slices = torch.rand(tilts, case["slices"], n, n, device=device).requires_grad_(True)
    prop = fresnel_propagator((n, n), pixel, lam, shape[0] / case["slices"] * pixel, device=device)
    stack = series_of(case).scans[0]
    transfer = series_transfer(stack, (n, n), pixel, shape[0] * pixel, device=device).expand(tilts, -1, -1, -1)

    def multislice():
        slices.grad = None
        trans = transmission(slices, sigma).transpose(0, 1)
        wave = exit_wave(trans[:-1], torch.ones_like(trans[0]), prop) * trans[-1]
        images = torch.fft.ifft2((torch.fft.fft2(wave) * prop)[:, None] * transfer)
        (images.real**2 + images.imag**2).sum().backward()

    return {"rotation_seconds": _time(rotation, device), "multislice_imaging_seconds": _time(multislice, device)}


def iteration_seconds(case, device, iterations, tv_weight=0.1) -> float:
    params = JointParams(
        iterations=iterations,
        num_slices=case["slices"],
        tv_weight=tv_weight,
        volume_shape=(case["depth"], case["n"], case["n"]),
    )
    times, start = [], time.perf_counter()
    for _ in plane_wave_steps(series_of(case), params=params, device=device):
        _sync(device)
        now = time.perf_counter()
        times.append(now - start)
        start = now
    return float(np.median(times[1:])) if len(times) > 1 else float(times[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="small")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iterations", type=int, default=4)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    case = CASES[args.case]
    per_iteration = iteration_seconds(case, device, args.iterations)
    data_term = iteration_seconds(case, device, args.iterations, tv_weight=0.0)
    floor = fft_floor(case, device)
    split = parts(case, device)
    result = {
        "case": {**case, "optics": OPTICS},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "seconds_per_iteration": per_iteration,
        "ffts_per_iteration": fft_count(case),
        "fft_floor_seconds": floor,
        "fft_floor_ratio": per_iteration / floor,
        "seconds_per_iteration_without_tv": data_term,
        "fft_floor_ratio_without_tv": data_term / floor,
        **split,
        "rotation_share": split["rotation_seconds"] / per_iteration,
    }
    out = Path(__file__).parent / "results" / "plane_wave.json"
    out.parent.mkdir(exist_ok=True)
    stored = json.loads(out.read_text()) if out.exists() else {}
    stored[f"{args.case} on {result['device']}"] = result
    out.write_text(json.dumps(stored, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
