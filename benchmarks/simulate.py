"""Time the simulator on the issue's case and write benchmarks/results/simulate.json.

A 15-tilt 4D-STEM series of a ~2 nm Pt particle: 24×24 scan, 64×64 detector, 6 slices,
300 keV, 25 mrad, dose 1e5 e/Å², with its ground-truth volume (issue 2: under 60 s on 2
cores). Wall time depends on what else runs on the machine, so the CPU time of this process
and the load average are recorded too. Run: python benchmarks/simulate.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from napari_ptychotomo.simulate import fcc_nanoparticle, simulate_tilt_series


def main() -> None:
    particle = fcc_nanoparticle("Pt", size=20.0, shape="cuboctahedron", vacuum=2.0)
    load_before = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    series = simulate_tilt_series(
        particle, np.linspace(-70, 70, 15), shift_std=0.5, seed=0, scan_shape=(24, 24),
        scan_step=0.4, detector_shape=(64, 64), num_slices=6, dose=1e5,
    )
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    result = {
        "case": "15 tilts, Pt cuboctahedron 2 nm, 24x24 scan, 64x64 detector, 6 slices",
        "atoms": len(particle), "seconds": round(seconds, 2),
        "seconds_per_tilt": round(seconds / len(series), 3),
        "cpu_seconds": round(cpu_seconds, 2),
        "load_average_1min_before": round(load_before, 2),
        "volume_shape": list(series.truth["volume"].shape),
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "simulator": "tilts in parallel threads, 1 torch thread each (simulate.threads)",
        "machine": platform.machine(), "torch": torch.__version__,
    }
    out = Path(__file__).parent / "results" / "simulate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
