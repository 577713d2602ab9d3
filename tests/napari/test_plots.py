"""Live plots: matplotlib lines when available, the same curves and a summary line without."""

import numpy as np

from napari_ptychotomo._napari.plots import LivePlot, Panel


def test_plot_draws_one_line_per_curve_and_keeps_the_curves(qtbot):
    plot = LivePlot()
    panels = [
        Panel("tilt (°)", "shift (Å)", {"y": ([-1, 0, 1], [0.1, 0.0, -0.1]), "x": ([-1, 0, 1], [1, 2, 3])}),
        Panel("step", "loss", {"loss": ([1, 2], [1.0, 0.0])}, log_y=True),
    ]  # 0 is not drawn on a log axis
    plot.show(panels, "RMS shift 0.1 Å")
    assert plot.figure is not None and plot.drawn_lines() == 3
    assert plot.summary.value == "RMS shift 0.1 Å" and plot.panels[0].curves["x"][1] == [1, 2, 3]
    plot.show(panels[1:])  # redrawing replaces
    assert plot.drawn_lines() == 1


def test_text_fallback_shows_the_summary_and_keeps_the_curves(qtbot):
    plot = LivePlot(text_only=True)
    plot.show([Panel("iteration", "loss", {"tilt 0": (np.arange(3), np.ones(3))})], "loss 1")
    assert plot.figure is None and plot.drawn_lines() == 0
    assert plot.summary.value == "loss 1" and "tilt 0" in plot.panels[0].curves
    plot.show_images({"yx": (np.zeros((2, 2)), (0, 1, 1, 0), "x", "y")}, "voxel (0, 0, 0)")
    assert set(plot.images) == {"yx"} and plot.summary.value == "voxel (0, 0, 0)"
