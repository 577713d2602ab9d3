"""A writer killed mid-write never damages the previous file or earlier results."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
from io_cases import assert_identical, make_project

from napari_ptychotomo import load, save
from napari_ptychotomo.data import Volume
from napari_ptychotomo.io import append_result, sidecar_path

# An array-like whose bulk reads (slices, as the writer copies slabs) take a minute, while
# the sampled reads of validation (index lists) and np.asarray stay fast.
SLOW_ARRAY = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from io_cases import make_project
    from napari_ptychotomo import save
    from napari_ptychotomo.data import ScanData, Volume
    from napari_ptychotomo.io import append_result

    class SlowArray:
        def __init__(self, shape, dtype=np.float32):
            self.shape, self.dtype = shape, np.dtype(dtype)
        def __getitem__(self, index):
            if isinstance(index, slice):
                print("writing", flush=True)
                time.sleep(60)
            return np.ones(self.shape, self.dtype)[index]
        def __array__(self, dtype=None, copy=None):
            return np.ones(self.shape, self.dtype if dtype is None else dtype)
""")


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_and_kill(script, folder):
    """Start ``script``; SIGKILL it once it is writing its temporary file."""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "writing", proc.stderr.read()
        temps = [p for p in folder.iterdir() if p.name.endswith(".tmp")]
        assert temps, "the writer should be writing a temporary file next to the target"
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    return temps


def test_killed_save_leaves_the_previous_project_intact(tmp_path):
    project = make_project()
    path = save(project, tmp_path / "study.ptycho.h5")
    before = _digest(path)
    script = SLOW_ARRAY.format(tests=os.path.dirname(__file__)) + textwrap.dedent(f"""
        project = make_project()
        scan = project.series.scans[1]
        project.series.scans[1] = ScanData(SlowArray((200, 16, 12)), scan.calibration,
                                           positions=np.zeros((200, 2)), tilt_deg=30.0)
        save(project, {str(path)!r})
    """)
    _run_and_kill(script, tmp_path)
    assert _digest(path) == before
    assert_identical(project, load(path))


def test_killed_append_keeps_raw_data_and_earlier_results(tmp_path):
    project = make_project()
    path = save(project, tmp_path / "study.ptycho.h5")
    earlier = Volume(np.arange(8, dtype=np.float32).reshape(2, 2, 2), 0.5)
    append_result(path, earlier, name="earlier")
    main_before, side_before = _digest(path), _digest(sidecar_path(path))
    script = SLOW_ARRAY.format(tests=os.path.dirname(__file__)) + textwrap.dedent(f"""
        append_result({str(path)!r}, Volume(SlowArray((64, 8, 8)), 1.0), name="killed")
    """)
    _run_and_kill(script, tmp_path)
    assert _digest(path) == main_before
    assert _digest(sidecar_path(path)) == side_before
    loaded = load(path)
    assert list(loaded.volumes) == ["linear", "earlier"]
    assert_identical(earlier, loaded.volumes["earlier"])
    assert_identical(project.series, loaded.series)


def test_two_processes_appending_at_once_lose_no_result(tmp_path):
    """Each append reads the sidecar and renames a copy with its result into place; two
    writers at once (a second run on the same project) take turns instead of dropping
    each other's results."""
    path = save(make_project(), tmp_path / "study.ptycho.h5")
    go = tmp_path / "go"
    script = textwrap.dedent("""
        import os, sys, time
        import numpy as np
        from napari_ptychotomo.data import Volume
        from napari_ptychotomo.io import append_result
        path, tag, go = sys.argv[1:]
        while not os.path.exists(go):
            time.sleep(0.01)
        for i in range(12):
            append_result(path, Volume(np.full((16, 32, 32), i, np.float32), 0.5), name=f"{tag}{i}")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), tag, str(go)]) for tag in "ab"]
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    names = set(load(path).volumes)
    assert {f"{tag}{i}" for tag in "ab" for i in range(12)} <= names
