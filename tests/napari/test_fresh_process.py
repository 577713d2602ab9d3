"""The MSP widget in a fresh Python process, as a user starts it: napari and its OpenGL
canvas first, then the plugin's widget from the manifest, then a threaded run.

A fresh process, because an earlier test (or ``tests/conftest.py``) may already have
imported what the widget imports, which hides a crash that depends on import order: with
the default (CUDA) torch wheel, the first optimiser step imports triton, and importing
triton after Mesa's llvmpipe has loaded its LLVM crashed the process (exit 139).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import faulthandler, sys, time
    faulthandler.enable()
    import napari

    assert "torch" not in sys.modules, "napari imported torch before the viewer"
    viewer = napari.Viewer(show=True)  # the OpenGL context exists from here on
    viewer.screenshot(canvas_only=True, flash=False)

    from napari_ptychotomo import show
    from napari_ptychotomo.simulate import simulate_scan, srtio3_slab

    scan = simulate_scan(srtio3_slab((2, 2, 2)), scan_shape=(6, 6), scan_step=0.5,
                         detector_shape=(24, 24), num_slices=2, mistilt_mrad=(4.0, 0.0),
                         dose=1e5, seed=0)
    show(scan, viewer)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-ptychotomo", "Multislice ptychography")
    widget.iterations.value, widget.num_slices.value, widget.device.value = 2, 2, "cpu"
    widget.runner.run()  # in a thread_worker, as a click on Run
    app = napari.qt.get_qapp()
    deadline = time.monotonic() + 240
    while widget.runner.running and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    status = widget.runner.status.value
    print("status:", status)
    print("triton imported:", "triton" in sys.modules)
    assert status.startswith("done"), status
    assert "MSP phase [tilt 0]" in viewer.layers
    viewer.close()
""")


@pytest.mark.gui
def test_msp_widget_runs_in_a_fresh_process_after_the_viewer_exists():
    env = dict(os.environ, PTYCHOTOMO_PROGRESS="0")
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=400, env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"exit code {done.returncode}:\n{output[-4000:]}"
    assert "status: done" in done.stdout, output[-4000:]
