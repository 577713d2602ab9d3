"""`ptychotomo demo` (what `make demo` runs) produces every result headless."""

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_the_whole_chain_and_writes_an_overview(tmp_path):
    exe = Path(sys.executable).with_name("ptychotomo")
    done = subprocess.run([str(exe), "demo", "--fast", "--no-viewer", "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "overview" in done.stdout
    from napari_ptychotomo import load

    project = load(tmp_path / "demo.ptycho.h5")
    assert len(project.msp) == len(project.series)
    assert {"linear", "end-to-end"} <= set(project.volumes)
    assert project.volumes["end-to-end"].halves is not None
    assert "end-to-end" in project.resolution
    truth = len(project.series.truth["atoms"]["numbers"])
    assert 0.5 * truth < len(project.atoms["linear"]) < 2 * truth
    for name in ("overview.png", "volume-linear.mrc", "volume-end-to-end.mrc", "atoms-linear.xyz"):
        assert (tmp_path / name).stat().st_size > 0
