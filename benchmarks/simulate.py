"""Time the 4D-STEM simulator and write benchmarks/results/simulate.json.

The fixed case: a 15-tilt series of a ~2 nm Pt cuboctahedron (147 atoms), 24×24 scan of
0.4 Å, 64×64 detector (±2 semi-angles), 6 slices, 300 keV, 25 mrad, dose 1e5 e/Å², with its
ground-truth volume, three ways: on the detector's own grid (``oversampling=1``, the
simulator before it simulated finely), at the detector's least oversampling
(``"detector"``: 3 for a square detector) and at the default (``"auto"``: refined from
there until the patterns stop changing, each tilt searching on its own). Per setting: wall
and CPU seconds of the series, the grid sizes, the FFTs per pattern, the oversampling each
tilt took, and where the time of one scan goes (the simulator's steps timed one by one,
tilt 0 alone; for "auto" the search is the difference to the same scan at the f it chose).

A second case is the heaviest we test: 82 Å of Au [001] at 200 keV (tests/data's abTEM
reference, its 4 corner positions), where the search goes to f = 27 and keeps 18.

Wall time depends on what else runs on the machine, so the CPU time of this process and
the load average are recorded too. Run: python benchmarks/simulate.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from napari_ptychotomo.simulate import Specimen, fcc_nanoparticle, simulate_scan, simulate_tilt_series, stem

OPTIONS = dict(scan_shape=(24, 24), scan_step=0.4, detector_shape=(64, 64), num_slices=6, dose=1e5)
ANGLES = np.linspace(-70, 70, 15)
STEPS = {  # the simulator's steps, as stem.py calls them
    "potential (structure factors, fine grid)": "_field_potential",
    "transmission exp(iσV) + antialias": "transmission",
    "probe": "make_probe",
    "multislice (forward_intensities)": "forward_intensities",
    "crop / bin to the detector": "crop_and_bin",
    "truth potential on the detector grid": "average_to_coarse_pixels",
}


def _time_steps(particle, oversampling) -> dict[str, float]:
    """Seconds spent in each step of one scan (tilt 0), by wrapping stem's functions."""
    spent = dict.fromkeys(STEPS, 0.0)
    originals = {name: getattr(stem, name) for name in STEPS.values()}

    def timed(label, function):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start

        return run

    try:
        for label, name in STEPS.items():
            setattr(stem, name, timed(label, originals[name]))
        start = time.perf_counter()
        scan = simulate_scan(particle, oversampling=oversampling, **OPTIONS)
        total = time.perf_counter() - start
    finally:
        for name, function in originals.items():
            setattr(stem, name, function)
    spent["other"] = total - sum(spent.values())
    return {
        "seconds": round(total, 3),
        "steps_seconds": {k: round(v, 3) for k, v in spent.items()},
        "truth": scan.truth,
    }


def _gold() -> dict:
    """The default simulator on 82 Å of Au (tests/data/abtem_detector_reference.h5, its 4
    corner positions, untilted): seconds, the chosen f, the search, and the search's cost."""
    import h5py

    reference = Path(__file__).parents[1] / "tests" / "data" / "abtem_detector_reference.h5"
    with h5py.File(reference, "r") as ref:
        a = dict(ref.attrs)
        atoms = ref["truth/atom_positions_zyx_A"][()].astype(np.float64)
        numbers = ref["truth/atomic_numbers"][()]
    cell = float(a["cell_xy_A"])
    shifts = [(0.0, iy * cell, ix * cell) for iy in (-1, 0, 1) for ix in (-1, 0, 1)]
    gold = Specimen(
        np.concatenate([atoms + s for s in shifts]) + [0.0, 1.5 * cell, 1.5 * cell],
        np.tile(numbers, 9),
        [float(a["thickness_A"]), 3 * cell, 3 * cell],
    )
    options = dict(
        energy_eV=float(a["energy_eV"]),
        semiangle_mrad=float(a["semiangle_mrad"]),
        defocus=float(a["defocus_A"]),
        scan_shape=(2, 2),
        scan_step=7 * float(a["scan_step_A"]),
        detector_shape=(64, 64),
        detector_sampling_mrad=float(a["detector_sampling_mrad"]),
        num_slices=None,
        slice_thickness=float(a["slice_thickness_A"]),
    )
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    scan = simulate_scan(gold, **options)
    seconds = time.perf_counter() - start
    f = scan.truth["oversampling"]
    start = time.perf_counter()
    simulate_scan(gold, oversampling=f, **options)
    fixed = time.perf_counter() - start
    return {
        "case": "Au [001] 81.6 Å, 200 keV, 20 mrad, 64x64 detector of 1.0245 mrad, 4 positions, 40 slices",
        "seconds": round(seconds, 2),
        "oversampling": f,
        "oversampling_search": [[k, round(d, 5)] for k, d in scan.truth["oversampling_search"]],
        "seconds_at_that_oversampling": round(fixed, 2),
        "search_seconds": round(seconds - fixed, 2),
        "window_pixels": f * 64,
        "intensity_kept_mean": round(float(np.mean(scan.truth["intensity_kept"])), 4),
        "load_average_1min_before": round(load_before, 2),
    }


def main() -> None:
    particle = fcc_nanoparticle("Pt", size=20.0, shape="cuboctahedron", vacuum=2.0)
    runs = {}
    for oversampling in (1, "detector", "auto"):
        load_before = os.getloadavg()[0]
        start, cpu_start = time.perf_counter(), time.process_time()
        series = simulate_tilt_series(particle, ANGLES, shift_std=0.5, seed=0, oversampling=oversampling, **OPTIONS)
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        one = _time_steps(particle, oversampling)
        truth = one.pop("truth")
        f, b = truth["oversampling"], truth["detector_binning"]
        if oversampling == "auto":
            one["search_seconds"] = round(one["seconds"] - _time_steps(particle, f)["seconds"], 3)
        window = [f * b * n for n in OPTIONS["detector_shape"]]
        runs[str(oversampling)] = {
            "oversampling": f,
            "detector_binning": b,
            "seconds": round(seconds, 2),
            "seconds_per_tilt": round(seconds / len(series), 3),
            "cpu_seconds": round(cpu_seconds, 2),
            "load_average_1min_before": round(load_before, 2),
            "simulation_pixel_A": round(truth["simulation_pixel_size"][0], 5),
            "detector_pixel_A": round(truth["pixel_size"][0], 5),
            "window_pixels": window,
            "field_pixels": list(truth["simulation_potential"].shape[1:]),
            "detector_field_pixels": list(truth["potential"].shape[1:]),
            # probe shift (fft + ifft), then 2 per slice less the one the fused pass saves
            "ffts_per_pattern": 2 * OPTIONS["num_slices"] + 1,
            "fft_size": window,
            "intensity_kept_mean": round(float(np.mean(truth["intensity_kept"])), 4),
            "oversampling_per_tilt": [scan.truth["oversampling"] for scan in series.scans],
            "one_scan": one,
        }
    result = {
        "case": "15 tilts, Pt cuboctahedron 2 nm, 24x24 scan, 64x64 detector, 6 slices, 300 keV, 25 mrad",
        "atoms": len(particle),
        "volume_shape": list(series.truth["volume"].shape),
        "runs": runs,
        "slowdown_default_vs_detector_grid": round(runs["auto"]["seconds"] / runs["1"]["seconds"], 1),
        "slowdown_default_vs_detector_least": round(runs["auto"]["seconds"] / runs["detector"]["seconds"], 1),
        "gold": _gold(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "simulator": "tilts in parallel threads, 1 torch thread each (napari_ptychotomo.threads)",
        "machine": platform.machine(),
        "torch": torch.__version__,
    }
    out = Path(__file__).parent / "results" / "simulate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
