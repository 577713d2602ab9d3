"""4D-STEM tilt series with their ground truth: the specimen rotated to each tilt and scanned by
:func:`.stem.simulate_scan`; the tilt geometry comes from :mod:`.series_geometry`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from ..data import ScanData, TiltSeries
from ..engine import resolve_device
from ..threads import cpu_threads
from .series_geometry import rotated, tilt_geometry, truth_volume
from .specimens import Specimen, fcc_nanoparticle
from .stem import simulate_scan

__all__ = ["simulate_tilt_series", "default_sample"]


def simulate_tilt_series(
    specimen: Specimen,
    angles_deg: Any,
    *,
    euler_error_deg: float = 0.0,
    tilt_axis_error_deg: float = 0.0,
    shift_std: float = 0.0,
    voxel_size: float | None = None,
    seed: int = 0,
    workers: int | None = None,
    **scan_options: Any,
) -> TiltSeries:
    """A 4D-STEM tilt series: at tilt k the atoms move to R_k·r about the specimen centre
    (R = R_z(ψ) R_y(θ) R_x(φ), θ = the nominal tilt plus errors), then shift by a random
    (y, x) of std ``shift_std`` Å, and are scanned by :func:`simulate_scan` (same options).

    On a CPU the tilts are simulated ``workers`` at a time in threads, each with
    ``num_threads`` torch threads (default 1; ``workers`` defaults to torch's thread count
    divided by that, so the cores work on separate tilts rather than synchronising on
    small operations). The result does not depend on ``workers``: each tilt has its own
    seed. With ``oversampling="auto"`` each tilt searches its own sampling (a tilted view
    of a crystal may need a different one); ``truth["oversampling"]`` of each scan says.

    ``truth``: euler_deg (n, 3) as (φ, θ, ψ), shifts (n, 2) Å, volume (the unrotated
    potential, :class:`Volume` in V with voxel ``voxel_size``, default the object pixel;
    complex with ``absorption``), atoms (positions (z, y, x) in the volume frame, numbers).
    """
    rng = np.random.default_rng(seed)
    angles, euler, shifts, depth = tilt_geometry(
        specimen, angles_deg, euler_error_deg, tilt_axis_error_deg, shift_std, rng
    )
    dev = resolve_device(scan_options.get("device", "cpu"))
    threads = scan_options.get("num_threads", 1)
    if workers is None:
        workers = max(1, torch.get_num_threads() // threads) if dev.type == "cpu" and threads else 1
    if int(workers) < 1:
        raise ValueError(f"workers = {workers!r}; expected a positive number of threads")
    workers = min(int(workers), len(angles))

    def scan(k: int) -> ScanData:
        options = dict(
            scan_options, seed=seed + 1000 * (k + 1), tilt_deg=float(angles[k]), num_threads=None
        )  # set once below: torch's thread count is global
        return simulate_scan(rotated(specimen, euler[k], shifts[k], depth), **options)

    with cpu_threads(threads, dev):
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                scans = list(pool.map(scan, range(len(angles))))
        else:
            scans = [scan(k) for k in range(len(angles))]
        pixel = scans[0].truth["pixel_size"][0]
        volume = truth_volume(
            specimen,
            voxel_size or pixel,
            scan_options.get("parameterisation", "lobato"),
            scan_options.get("absorption", 0.0),
        )
    truth = {
        "euler_deg": euler,
        "shifts": shifts,
        "volume": volume,
        "atoms": {"positions": specimen.positions.copy(), "numbers": specimen.numbers.copy()},
    }
    return TiltSeries(scans=scans, angles_deg=angles, truth=truth)


def default_sample(seed: int = 0) -> TiltSeries:
    """A small, quick 4D-STEM tilt series: a ~1.4 nm Pt cuboctahedron, 7 tilts over ±60°,
    16×16 scan at 1 Å (the scan covers the particle), 80 Å underfocus for overlapping probe
    discs, 15 mrad, 32×32 detector at 300 keV, 2 slices, dose 1e6 e/Å², 0.5 Å random shifts
    per tilt. The recipe of the sequential-tomography test, which recovers the volume at
    r ≈ 0.94."""
    particle = fcc_nanoparticle("Pt", size=14.0, shape="cuboctahedron", vacuum=2.0)
    return simulate_tilt_series(
        particle,
        np.linspace(-60, 60, 7),
        shift_std=0.5,
        seed=seed,
        scan_shape=(16, 16),
        scan_step=1.0,
        defocus=80.0,
        semiangle_mrad=15.0,
        detector_shape=(32, 32),
        num_slices=2,
        dose=1e6,
    )
