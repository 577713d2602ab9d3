"""A 10 GB tilt series opens lazily: under 1 s and under 200 MB of memory.

The file is built without compressing 10 GB: one constant diffraction pattern is
compressed once and its compressed chunk bytes are written to every chunk position of a
source dataset (direct chunk writes); saving the tilt series then copies those chunks as
they are. The timing and memory of opening are measured in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np

from napari_ptychotomo import save
from napari_ptychotomo.data import Calibration, ScanData, TiltSeries
from napari_ptychotomo.io.h5tree import COMPRESSION
from napari_ptychotomo.io.native_schema import intensity_chunks

SCAN = (50, 50, 512, 512)  # float32: 2.5 GiB per scan, 1 MiB per pattern
N_TILTS = 4


def _constant_source(path):
    """A (50, 50, 512, 512) float32 dataset of constant counts, written chunk by chunk."""
    chunks = intensity_chunks(SCAN, 4)
    assert chunks == (1, 1, 512, 512)
    fh = h5py.File(path, "w", libver=("v110", "v110"))
    one = fh.create_dataset("one", shape=chunks, dtype=np.float32, chunks=chunks, fletcher32=True, **COMPRESSION)
    one[...] = 3.0
    fh.flush()  # the compressed chunk must be on disk before reading it raw
    mask, payload = one.id.read_direct_chunk((0, 0, 0, 0))
    data = fh.create_dataset("data", shape=SCAN, dtype=np.float32, chunks=chunks, fletcher32=True, **COMPRESSION)
    for y in range(SCAN[0]):
        for x in range(SCAN[1]):
            data.id.write_direct_chunk((y, x, 0, 0), payload, mask)
    return fh, data


def test_ten_gb_series_opens_in_under_a_second_and_200_mb(tmp_path):
    start = time.perf_counter()
    fh, source = _constant_source(tmp_path / "source.h5")
    cal = Calibration(energy_eV=300e3, semiangle_mrad=25.0, detector_sampling_mrad=0.5, scan_step=0.5)
    angles = np.linspace(-60, 60, N_TILTS)
    series = TiltSeries([ScanData(source, cal, tilt_deg=a) for a in angles], angles)
    path = save(series, tmp_path / "big.ptycho.h5")
    fh.close()
    built = time.perf_counter() - start
    size = path.stat().st_size
    logical = N_TILTS * np.prod(SCAN) * 4
    assert logical >= 10e9 and size < 100 * 2**20

    probe = textwrap.dedent(f"""
        import json, time
        t0 = time.perf_counter()
        from napari_ptychotomo import load
        t1 = time.perf_counter()
        series = load({str(path)!r})
        t2 = time.perf_counter()
        pattern = series.scans[2].patterns([1234])
        status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
        kib = lambda key: int(status[key].split()[0])
        print(json.dumps({{"open_s": t2 - t1, "peak_mib": kib("VmHWM") / 1024,
                          "rss_mib": kib("VmRSS") / 1024, "value": float(pattern.mean()),
                          "shape": list(series.scans[0].intensities.shape),
                          "n": len(series)}}))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"built in {built:.1f} s, file {size / 2**20:.1f} MiB, {report}")
    assert report["n"] == N_TILTS and report["shape"] == list(SCAN)
    assert report["value"] == 3.0
    assert report["open_s"] < 1.0
    assert report["peak_mib"] < 200
