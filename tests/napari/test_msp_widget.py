"""The "Multislice ptychography" widget on a tiny simulated scan in a real viewer."""

import numpy as np
import pytest

from napari_ptychotomo.data import MSPResult, TiltSeries


def make_widget(viewer, data, synchronous=True, iterations=2):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.msp import MSPWidget

    show(data, viewer)
    widget = MSPWidget(viewer, synchronous=synchronous)
    widget.iterations.value = iterations
    widget.num_slices.value = 2
    widget.slice_thickness.value = 4.0
    widget.device.value = "cpu"
    return widget


@pytest.mark.gui
def test_msp_widget_runs_and_shows_result_layers_in_angstrom(viewer, not_blank, small_simulated_scan):
    widget = make_widget(viewer, small_simulated_scan)
    assert widget.dataset.value == "Virtual bright field"
    widget.runner.run_button.clicked.emit()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    phase = viewer.layers["MSP phase [tilt 0]"]
    result = phase.metadata["result"]
    assert isinstance(result, MSPResult) and len(result.loss_history) == 2
    assert phase.data.shape == result.object.shape and phase.data.shape[0] == 2
    assert tuple(phase.scale) == pytest.approx((result.slice_thickness, result.pixel_size, result.pixel_size))
    assert "MSP probe [tilt 0]" in viewer.layers and "MSP positions [tilt 0]" in viewer.layers
    assert "θ = (" in widget.fitted.value
    summed = viewer.layers["MSP summed phase [tilt 0]"]  # live while running, then the result's
    np.testing.assert_allclose(summed.data, result.phase(), rtol=1e-5, atol=1e-6)
    assert summed.metadata["result"] is result and tuple(summed.scale) == pytest.approx((result.pixel_size,) * 2)
    (panel,) = widget.loss_plot.panels  # the loss curve of the tilt, as the engine reports it
    iterations, losses = panel.curves["tilt 0"]
    np.testing.assert_allclose(losses, result.loss_history, rtol=1e-6)
    assert list(iterations) == [1, 2] and widget.loss_plot.drawn_lines() == 1

    count = len(viewer.layers)
    widget.runner.run()  # re-running replaces the layers
    assert len(viewer.layers) == count
    for layer in viewer.layers:
        layer.visible = layer.name == "MSP phase [tilt 0]"
    not_blank(viewer)


@pytest.mark.gui
def test_msp_widget_all_tilts_with_stop_keeps_finished_tilts(viewer, small_simulated_scan):
    series = TiltSeries(scans=[small_simulated_scan] * 3, angles_deg=[-20.0, 0.0, 20.0])
    widget = make_widget(viewer, series, iterations=1)
    widget.all_tilts.value = True

    def stop_when_tilt_1_is_done(progress):
        widget._show_progress(progress)
        if "result" in (progress.preview or {}) and progress.preview["tilt_index"] == 1:
            widget.runner.stop()

    widget.runner._on_progress = stop_when_tilt_1_is_done
    widget.runner.run()
    assert "stopped" in widget.runner.status.value
    assert sorted(widget.finished) == [0, 1]
    assert "MSP phase [tilt 1]" in viewer.layers and "MSP phase [tilt 2]" not in viewer.layers
    assert widget.runner.progress.max == 3


def _paused(steps, seconds):
    """Relay a generator's steps, sleeping after each; returns its value."""
    import time

    while True:
        try:
            progress = next(steps)
        except StopIteration as stop:
            return stop.value
        yield progress
        time.sleep(seconds)


@pytest.mark.gui
def test_msp_widget_docks_from_the_manifest_and_runs_in_a_thread(viewer, qtbot, small_simulated_scan):
    from napari_ptychotomo import show

    show(small_simulated_scan, viewer)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-ptychotomo", "Multislice ptychography")
    widget.iterations.value, widget.num_slices.value, widget.device.value = 20, 2, "cpu"
    show_progress = widget.runner._on_progress

    def press_stop_on_first_step(progress):
        show_progress(progress)
        widget.runner.stop()

    widget.runner._on_progress = press_stop_on_first_step
    start = widget.runner._start
    # the tiny run could finish before the GUI thread handles its first progress signal:
    # the worker pauses after each step so that Stop arrives during the run
    widget.runner._start = lambda: _paused(start(), seconds=0.2)
    widget.runner.run()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=120000)
    assert "stopped" in widget.runner.status.value and widget.runner.last.step < 20
    preview = viewer.layers["MSP phase [tilt 0]"]
    assert preview.data.shape[0] == 2 and np.all(np.isfinite(preview.data))


@pytest.mark.gui
def test_msp_widget_passes_tilt_map_window_z_smoothness_defocus_and_steps_to_the_engine(viewer, small_simulated_scan):
    widget = make_widget(viewer, small_simulated_scan, iterations=1)
    assert not widget.tilt_map_window.enabled  # only meaningful with a tilt map
    widget.tilt_map.value = True
    assert widget.tilt_map_window.enabled
    assert widget.advanced.native.isHidden()  # the learning rates are folded away
    widget.show_advanced.value = True
    assert not widget.advanced.native.isHidden()
    widget.tilt_map_window.value = 5.0
    widget.z_smoothness.value = 0.05
    widget.defocus.value = "120 Å"
    widget.object_step.value = 30.0
    widget.tilt_step.value = 0.5
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    result = widget.finished[0]
    params = result.provenance["params"]
    assert params["tilt_map"] and params["tilt_map_window"] == 5.0 and params["z_smoothness"] == 0.05
    assert params["defocus"] == 120.0
    assert result.provenance["defocus_start"] == 120.0 and result.provenance["defocus_source"] == "given"
    assert params["rates"]["object"] == {"step": 30.0, "start": 0}
    assert params["rates"]["tilt"] == {"step": 0.5, "start": 2}
    assert result.tilt_map is not None and result.tilt_map.shape == (36, 2)
    # one iteration = 3 Adam updates (batches of 16 of 36 positions), each moving a value by
    # at most about one step: measured 87.6 V·Å at step 30 (29.0 at the default 10 V·Å)
    largest = float(np.abs(result.object.real).max())
    assert 60.0 < largest < 95.0, largest

    widget.defocus.value = "calibration"
    widget.object_step.value = 0.0  # object not learned: it stays at its start, zero
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    result = widget.finished[0]
    assert result.provenance["params"]["defocus"] is None
    assert result.provenance["defocus_source"] == "calibration"
    assert result.provenance["defocus_start"] == pytest.approx(small_simulated_scan.calibration.defocus)
    assert float(np.abs(result.object).max()) == 0.0


@pytest.mark.gui
@pytest.mark.parametrize("text", ["deep", "nan", ""])
def test_msp_widget_reports_a_bad_start_defocus_in_the_status_line(viewer, small_simulated_scan, text):
    widget = make_widget(viewer, small_simulated_scan, iterations=1)
    count = len(viewer.layers)
    widget.defocus.value = text
    widget.runner.run_button.clicked.emit()  # no exception escapes the button
    status = widget.runner.status.value
    assert status.startswith("cannot start:") and "start defocus" in status and "Å" in status, status
    assert isinstance(widget.runner.error, ValueError)
    assert len(viewer.layers) == count and not widget.finished


@pytest.mark.gui
def test_msp_widget_passes_the_slice_period_and_refuses_one_that_does_not_divide_the_slices(
    viewer, small_simulated_scan
):
    widget = make_widget(viewer, small_simulated_scan)
    widget.slice_period.value = 3  # of 2 slices
    widget.runner.run()
    assert "slice_period = 3 does not divide num_slices = 2" in widget.runner.status.value
    widget.slice_period.value = 1
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    result = widget.finished[0]
    assert result.provenance["params"]["slice_period"] == 1 and "tied_stage" in result.provenance


@pytest.mark.gui
def test_msp_widget_defaults_are_the_engines_and_every_start_defocus_mode_is_accepted(viewer, small_simulated_scan):
    from napari_ptychotomo._napari.widgets.msp import parse_defocus
    from napari_ptychotomo.ptycho import MSPParams

    widget = make_widget(viewer, small_simulated_scan)
    built = widget.params(small_simulated_scan)
    slices = int(widget.num_slices.value)
    engine = MSPParams.from_calibration(
        small_simulated_scan.calibration, num_slices=slices, thickness=float(widget.slice_thickness.value) * slices
    )
    assert built.defocus == engine.defocus == "auto"
    assert built.z_smoothness == engine.z_smoothness and built.tilt_map_window == engine.tilt_map_window
    assert built.slice_period == engine.slice_period == 0
    # object 2 V × slice thickness from iteration 0 (follows the thickness box), tilt 0.2 mrad from 2, …
    assert built.rates == engine.rates
    assert widget.object_step.value == pytest.approx(2.0 * widget.slice_thickness.value)
    expected = {"auto": "auto", "Estimate": "estimate", "calibration": None, "-80": -80.0, "150A": 150.0}
    for text, value in expected.items():
        widget.defocus.value = text
        assert parse_defocus(text) == value
        assert widget.params(small_simulated_scan).defocus == value


@pytest.mark.gui
def test_one_depth_setting_gives_one_parameter_object_from_widget_toml_and_python(viewer, small_simulated_scan):
    """Two slices of 8 Å, written three ways, are the same MSPParams (object step 2 V × 8 Å)."""
    import tomllib

    from napari_ptychotomo.pipeline.config import validate_config
    from napari_ptychotomo.pipeline.steps import msp_params
    from napari_ptychotomo.ptycho import MSPParams

    calibration = small_simulated_scan.calibration
    widget = make_widget(viewer, small_simulated_scan, iterations=MSPParams().iterations)
    widget.num_slices.value, widget.slice_thickness.value = 2, 8.0
    from_widget = widget.params(small_simulated_scan)

    config = validate_config(
        tomllib.loads(
            '[run]\nproject = "p.ptycho.h5"\n[input]\nsimulate = "default"\n[msp]\nnum_slices = 2\n'
            "slice_thickness = 8.0\n"
        )
    )
    from_toml = msp_params(calibration, config["msp"])
    from_python = MSPParams.from_calibration(calibration, num_slices=2, thickness=16.0)

    assert from_python.rate("object").step == 16.0
    assert from_widget == from_toml == from_python
    with pytest.raises(ValueError, match="disagree"):
        MSPParams.from_calibration(calibration, num_slices=2, thickness=16.0, slice_thickness=5.0)


@pytest.mark.gui
def test_msp_widget_takes_the_settings_the_nanoparticle_sample_suggests(viewer, small_simulated_scan):
    """The thin particle cannot fix its tilt or thickness (sample_data.NANOPARTICLE_MSP):
    choosing the sample sets the fields it suggests, once; later edits stay when layers
    come and go, and a dataset without suggestions changes nothing."""
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.sample_data import NANOPARTICLE_MSP
    from napari_ptychotomo._napari.widgets.msp import MSPWidget

    show(small_simulated_scan, viewer)
    widget = MSPWidget(viewer, synchronous=True)
    first = widget.dataset.value
    defaults = (widget.num_slices.value, widget.learn_tilt.value)
    assert "suggested" not in widget.runner.status.value
    viewer.open_sample("napari-ptychotomo", "nanoparticle_series")
    assert widget.dataset.value == first and (widget.num_slices.value, widget.learn_tilt.value) == defaults
    sample = next(layer.name for layer in viewer.layers if layer.metadata.get("msp_settings"))
    widget.dataset.value = sample
    for name, value in NANOPARTICLE_MSP.items():
        assert getattr(widget, name).value == value, name
    assert widget.object_step.value == pytest.approx(2.0 * NANOPARTICLE_MSP["slice_thickness"])
    assert f"suggested by {sample!r}" in widget.runner.status.value
    widget.num_slices.value = 3
    viewer.add_image(np.zeros((4, 4)), name="other")
    assert widget.num_slices.value == 3


@pytest.mark.gui
def test_msp_previews_keep_the_running_scan_when_the_dataset_is_changed_or_removed(viewer, small_simulated_scan):
    from dataclasses import replace

    from napari_ptychotomo import show

    widget = make_widget(viewer, small_simulated_scan, iterations=2)
    viewer.layers["Virtual bright field"].name = "running"
    finer = replace(
        small_simulated_scan, calibration=replace(small_simulated_scan.calibration, detector_sampling_mrad=5.0)
    )
    show(finer, viewer)[0].name = "finer"
    widget.dataset.reset_choices()
    widget.dataset.value = "running"
    show_progress, scales = widget.runner._on_progress, []

    def change_then_remove_the_dataset(progress):
        if progress.step == 1:
            widget.dataset.value = "finer"  # another pixel size
        else:
            viewer.layers.remove("running")
        show_progress(progress)
        if "result" not in (progress.preview or {}):
            scales.append(tuple(viewer.layers["MSP phase [tilt 0]"].scale))

    widget.runner._on_progress = change_then_remove_the_dataset
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    result = viewer.layers["MSP phase [tilt 0]"].metadata["result"]
    assert len(scales) == 2 and all(s[1:] == pytest.approx((result.pixel_size,) * 2) for s in scales), scales
