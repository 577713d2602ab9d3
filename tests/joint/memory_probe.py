"""Peak host memory of one engine run against the engine's own estimate.

Run as ``python memory_probe.py ENGINE SIZE``; prints JSON ``{"estimate": bytes,
"measured": bytes}``. ``measured`` is the peak resident size during the run less the
resident size just before it (the peak is reset through ``/proc/self/clear_refs`` where
the kernel allows it; else ``ru_maxrss``). A warm-up run on a small case first, so that
torch's one-off initialisation is not counted. Data are random: memory does not depend
on the values.
"""

from __future__ import annotations

import json
import resource
import sys

import numpy as np

ENERGY = 300e3


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _measure(run) -> int:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current resident size
        peak_key = "VmHWM"
    except OSError:
        peak_key = None
    before = _status("VmRSS")
    run()
    peak = _status(peak_key) if peak_key else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return peak - before


def _stem_scan(window: int, scan: int, tilt: float = 0.0, voxel: float = 0.5):
    from napari_ptychotomo.data import Calibration, ScanData
    from napari_ptychotomo.physics import wavelength

    sampling = 1.0 / (window * voxel) * float(wavelength(ENERGY)) * 1e3
    cal = Calibration(ENERGY, 15.0, sampling, scan_step=1.0, defocus=0.0)
    yy, xx = np.meshgrid(np.arange(scan) * 1.0, np.arange(scan) * 1.0, indexing="ij")
    rng = np.random.default_rng(0)
    patterns = rng.uniform(0.5, 1.5, (scan, scan, window, window)).astype(np.float32)
    return ScanData(patterns, cal, positions=np.stack([yy.ravel(), xx.ravel()], 1), tilt_deg=tilt)


def end_to_end(side: int) -> dict:
    from napari_ptychotomo.data import TiltSeries
    from napari_ptychotomo.joint import JointParams, reconstruct_joint
    from napari_ptychotomo.joint.memory import stem_bytes

    angles = [-30.0, 0.0, 30.0]
    series = TiltSeries([_stem_scan(32, 6, a) for a in angles], np.array(angles))

    def params(n):  # every regulariser on: the estimate covers the largest workspace
        return JointParams(
            iterations=1,
            num_slices=4,
            batch_size=16,
            volume_shape=(n, n, n),
            kz_beta=0.5,
            tv_weight=0.01,
            butterworth_cutoff=2.0,
            l1_imag=0.1,
        )

    reconstruct_joint(series, params=params(48), device="cpu")
    measured = _measure(lambda: reconstruct_joint(series, params=params(side), device="cpu"))
    fixed, per_position = stem_bytes((side,) * 3, 32, 1, 4)
    return {"estimate": fixed + 16 * per_position, "measured": measured}


def plane_wave(side: int) -> dict:
    from napari_ptychotomo.data import DefocusSeries, TiltSeries
    from napari_ptychotomo.joint import JointParams, reconstruct_plane_wave
    from napari_ptychotomo.joint.memory import plane_wave_bytes

    def series(n):
        rng = np.random.default_rng(0)
        angles = [-30.0, 0.0, 30.0]
        scans = [
            DefocusSeries(
                rng.uniform(0.5, 1.5, (3, n, n)).astype(np.float32), np.array([-50.0, 0.0, 50.0]), 0.5, ENERGY, a
            )
            for a in angles
        ]
        return TiltSeries(scans, np.array(angles))

    def params(n):
        return JointParams(
            iterations=1,
            num_slices=4,
            volume_shape=(n, n, n),
            tv_weight=0.01,
            butterworth_cutoff=2.0,
            l1_imag=0.1,
            learn_euler=True,
            learn_shifts=True,
        )

    reconstruct_plane_wave(series(32), params=params(32), device="cpu")
    data = series(side)
    measured = _measure(lambda: reconstruct_plane_wave(data, params=params(side), device="cpu"))
    fixed, per_tilt = plane_wave_bytes((side,) * 3, 4, 3)
    return {"estimate": fixed + per_tilt, "measured": measured}


def msp(window: int) -> dict:
    from napari_ptychotomo.physics.fused import pass_bytes_per_position
    from napari_ptychotomo.ptycho import MSPParams, reconstruct_msp
    from napari_ptychotomo.ptycho.state import fixed_memory, make_geometry, memory_per_pattern

    def params():
        return MSPParams(iterations=1, num_slices=8, num_modes=2, batch_size=64, defocus=0.0)

    reconstruct_msp(_stem_scan(32, 8), MSPParams(iterations=1, num_slices=2, defocus=0.0), device="cpu")
    scan = _stem_scan(window, 12)
    measured = _measure(lambda: reconstruct_msp(scan, params(), device="cpu"))
    geometry = make_geometry(scan, params())
    fixed = fixed_memory(params(), geometry, scan.num_positions)
    estimate = fixed + 64 * memory_per_pattern(params(), geometry.window)
    # the fused pass's own model alone, without MSP's margin (the model the end-to-end step uses)
    pixels = geometry.window[0] * geometry.window[1]
    shared = fixed + 64 * pass_bytes_per_position(pixels, params().num_modes, params().num_slices)
    return {"estimate": estimate, "estimate_pass_model": shared, "measured": measured}


if __name__ == "__main__":
    engine, size = sys.argv[1], int(sys.argv[2])
    print(json.dumps({"end_to_end": end_to_end, "plane_wave": plane_wave, "msp": msp}[engine](size)))
