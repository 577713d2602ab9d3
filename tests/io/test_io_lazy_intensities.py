"""A project whose intensities declare more than the machine's memory opens lazily: the
4D data are not read by ``load()``, single patterns are read on demand, and only a whole
read is refused (naming the file, the dataset and its size)."""

import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from napari_ptychotomo import save
from napari_ptychotomo.data import Calibration, ScanData, TiltSeries
from napari_ptychotomo.io.h5tree import COMPRESSION

DECLARED = (512, 512, 256, 256)  # float32: 64 GiB, of which two patterns are written


@pytest.fixture
def huge_project(tmp_path):
    cal = Calibration(energy_eV=300e3, semiangle_mrad=25.0, detector_sampling_mrad=0.5, scan_step=0.5)
    scan = ScanData(np.ones((2, 2, 8, 8), np.float32), cal, tilt_deg=0.0)
    path = save(TiltSeries([scan], [0.0]), tmp_path / "huge.ptycho.h5")
    with h5py.File(path, "r+") as fh:
        group = fh["series/scans/0"]
        del group["intensities"]
        data = group.create_dataset(
            "intensities", shape=DECLARED, dtype=np.float32, chunks=(1, 1, 256, 256), fletcher32=True, **COMPRESSION
        )
        data.attrs["units"] = "counts"
        data[3, 4] = 2.0
        data[500, 7] = 5.0
        group.attrs["scan_shape"] = np.array(DECLARED[:2])
    assert path.stat().st_size < 1 << 20
    return path


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="Linux /proc only")
def test_load_does_not_read_the_intensities_until_used(huge_project):
    probe = textwrap.dedent(f"""
        import json
        import numpy as np
        from napari_ptychotomo import load
        from napari_ptychotomo.io import PtychoFormatError

        def kib(key):
            return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key + ":"))

        open("/proc/self/clear_refs", "w").write("5")  # peak := current
        before = kib("VmRSS")
        series = load({str(huge_project)!r})
        grew = kib("VmHWM") - before
        scan = series.scans[0]
        pattern = scan.patterns([3 * 512 + 4, 500 * 512 + 7])
        try:
            np.asarray(scan.intensities)
            refused = ""
        except PtychoFormatError as exc:
            refused = str(exc)
        print(json.dumps({{"grew_kib": grew, "type": type(scan.intensities).__name__,
                          "shape": list(scan.intensities.shape),
                          "means": [float(p.mean()) for p in pattern], "refused": refused}}))
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["type"] == "LazyDataset" and report["shape"] == list(DECLARED)
    assert report["grew_kib"] < 64 << 10, report  # 64 MiB: the sampled patterns, not 64 GiB
    assert report["means"] == [2.0, 5.0]
    assert "huge.ptycho.h5" in report["refused"] and "intensities" in report["refused"]
    assert "512×512×256×256 float32 (64.0 GiB)" in report["refused"]
