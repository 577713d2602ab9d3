"""End-to-end and plane-wave tomography widgets on tiny noise-free series."""

import numpy as np
import pytest

from napari_ptychotomo._napari.layers import scan_layers
from napari_ptychotomo._napari.previews import orthogonal_mosaic
from napari_ptychotomo.data import Alignment, Volume
from napari_ptychotomo.engine import Progress


def test_orthogonal_mosaic_places_the_three_central_planes():
    nz, ny, nx = 3, 4, 5
    slices = {"yx": np.full((ny, nx), 1.0), "zx": np.full((nz, nx), 2.0), "zy": np.arange(nz * ny).reshape(nz, ny)}
    mosaic = orthogonal_mosaic(slices, gap=1)
    assert mosaic.shape == (ny + 1 + nz, nx + 1 + nz)
    assert np.all(mosaic[:ny, :nx] == 1.0) and np.all(mosaic[ny + 1 :, :nx] == 2.0)
    np.testing.assert_array_equal(mosaic[:ny, nx + 1 :], slices["zy"].T)  # y down, z across
    assert mosaic[-1, -1] == 0.0  # the empty corner holds the smallest value
    with pytest.raises(ValueError, match="expected"):
        orthogonal_mosaic({"yx": np.zeros((4, 5)), "zx": np.zeros((3, 4)), "zy": np.zeros((3, 4))})


def test_plane_wave_series_opens_as_one_tilt_defocus_layer(tiny_hrtem_series):
    ((data, kwargs, kind),) = scan_layers(tiny_hrtem_series)
    assert kind == "image" and data.shape == (4, 2, 16, 16)
    assert kwargs["axis_labels"] == ("tilt", "defocus", "y", "x") and kwargs["scale"] == (1.0, 1.0, 0.5, 0.5)
    assert kwargs["metadata"]["result"] is tiny_hrtem_series


def centre_offset_of_maximum(volume):
    """(z, y, x) Å of the brightest voxel of Re V from the volume centre."""
    index = np.unravel_index(np.argmax(np.real(volume.data)), volume.shape)
    return (np.array(index) - (np.array(volume.shape) - 1) / 2) * volume.voxel_size


@pytest.mark.gui
def test_end_to_end_widget_fits_the_series_from_viewer_layers(viewer, not_blank, tiny_stem_series):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.end_to_end import NOMINAL, EndToEndWidget

    show(tiny_stem_series, viewer)
    # an alignment left by an earlier step in a layer's metadata is offered as the start
    viewer.add_image(
        np.zeros((3, 4, 4)), name="phases", metadata={"alignment": Alignment.from_angles([-30.0, 0.0, 30.0])}
    )
    widget = EndToEndWidget(viewer, synchronous=True)
    assert widget.dataset.value == "Virtual bright field"
    assert list(widget.alignment_from.choices) == ["phases", NOMINAL]
    widget.iterations.value, widget.device.value, widget.volume_step.value = 3, "cpu", 1.0
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    layer = viewer.layers["Volume (end-to-end)"]
    joint = layer.metadata["joint"]
    assert tuple(layer.scale) == pytest.approx((0.5,) * 3) and isinstance(layer.metadata["result"], Volume)
    assert "Volume (end-to-end, absorption)" in viewer.layers
    assert layer.metadata["alignment"] is joint.alignment
    passes = np.nanmean(joint.loss_per_tilt, axis=1)
    assert passes[-1] < 0.2 * passes[0], passes  # the data are fitted (measured: 0.05)
    # the two atoms lie 0.8-1.1 Å from the volume centre: so does the brightest voxel
    assert np.linalg.norm(centre_offset_of_maximum(joint.volume)) < 1.5
    live = viewer.layers["Volume (end-to-end, live)"]
    assert live.data.shape == (24 + 2 + 24, 24 + 2 + 24) and not live.visible
    assert widget.loss_plot.panels[0].xlabel == "tilt (°)"
    np.testing.assert_allclose(widget.loss_plot.panels[0].curves["per tilt"][0], [-30, 0, 30])
    assert widget.loss_plot.drawn_lines() == 2
    for other in viewer.layers:
        other.visible = other is layer
    not_blank(viewer)


def run_and_stop_at(widget, step: int) -> None:
    """Run ``widget`` synchronously and press Stop once its engine has yielded ``step``."""
    relay = widget.runner._on_progress

    def stop(progress: Progress):
        relay(progress)
        if progress.step == step:
            widget.runner.stop()

    widget.runner._on_progress = stop
    widget.runner.run()


@pytest.mark.gui
def test_end_to_end_stop_keeps_the_last_good_volume(viewer, tiny_stem_series):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.end_to_end import EndToEndWidget

    show(tiny_stem_series, viewer)
    widget = EndToEndWidget(viewer, synchronous=True)
    widget.iterations.value, widget.device.value = 5, "cpu"
    run_and_stop_at(widget, 2)
    assert "stopped at step 2/15; partial result kept" in widget.runner.status.value
    layer = viewer.layers["Volume (end-to-end)"]
    volume = layer.metadata["result"]
    assert tuple(layer.scale) == pytest.approx((0.5,) * 3)  # Å
    assert volume.provenance["partial"] is True and volume.provenance["stopped_at"] == "2/15"
    assert (volume.provenance["pass"], volume.provenance["tilt"]) == (1, 2)
    assert volume.shape == (24, 24, 24) and np.real(volume.data).max() > 0
    # the volume the engine put into step 2's Progress, not read from the engine's locals
    np.testing.assert_array_equal(volume.data, widget.runner.last.preview["volume"].data)
    # the partial volume is offered as the start of the next run
    assert "Volume (end-to-end)" in widget.start_volume.choices


@pytest.mark.gui
def test_end_to_end_starts_from_a_linear_tomography_layer(viewer, tiny_stem_series):
    """The Linear tomography widget's volume (phase per Å, its own grid) as the start: the
    engine gets it in V on its own grid, not rad/Å taken for V (1500× too small)."""
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.end_to_end import ZERO_VOLUME, EndToEndWidget
    from napari_ptychotomo.physics import interaction_constant

    show(tiny_stem_series, viewer)
    phase = np.zeros((20, 20, 20), np.float32)
    phase[9:11, 9:11, 9:11] = 0.3  # rad/Å
    show(Volume(phase, 0.5, units="projection unit per Å"), viewer)
    widget = EndToEndWidget(viewer, synchronous=True)
    assert widget.volume_step.value == 5.0  # from a zero volume
    widget.start_volume.value = "Volume (linear)"
    assert widget.volume_step.value == 1.0  # follows the start until set by hand
    widget.iterations.value, widget.device.value, widget.volume_step.value = 1, "cpu", 0.01
    widget.start_volume.value = ZERO_VOLUME
    assert widget.volume_step.value == 0.01
    widget.start_volume.value = "Volume (linear)"
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    result = viewer.layers["Volume (end-to-end)"].metadata["result"]
    assert result.shape == (24, 24, 24)  # the engine's grid
    start_volts = 0.3 / float(interaction_constant(300e3))  # ~460 V
    assert np.real(result.data).max() == pytest.approx(start_volts, rel=0.02)
    assert np.real(result.data)[11:13, 11:13, 11:13].min() > 0.9 * start_volts  # centred


@pytest.mark.gui
def test_plane_wave_widget_reconstructs_the_tilt_defocus_series(viewer, tiny_hrtem_series):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.plane_wave import PlaneWaveWidget

    show(tiny_hrtem_series, viewer)
    widget = PlaneWaveWidget(viewer, synchronous=True)
    assert widget.dataset.value == "Defocus images"
    widget.iterations.value, widget.tv_weight.value, widget.device.value = 8, 0.0, "cpu"
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    layer = viewer.layers["Volume (plane-wave)"]
    joint = layer.metadata["joint"]
    assert tuple(layer.scale) == pytest.approx((0.5,) * 3) and joint.volume.shape == (16, 16, 16)
    assert joint.loss_history[-1] < 0.5 * joint.loss_history[0], joint.loss_history
    assert np.linalg.norm(centre_offset_of_maximum(joint.volume)) < 1.5
    assert len(widget.loss_plot.panels[0].curves["per tilt"][1]) == 4


@pytest.mark.gui
def test_joint_widget_explains_a_missing_series(viewer):
    from napari_ptychotomo._napari.widgets.end_to_end import EndToEndWidget

    widget = EndToEndWidget(viewer, synchronous=True)
    widget.runner.run()
    assert widget.runner.status.value.startswith("cannot start: no 4D-STEM tilt series")


@pytest.mark.gui
def test_threaded_end_to_end_stop_keeps_the_volume_read_in_the_worker(viewer, qtbot, tiny_stem_series):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.end_to_end import EndToEndWidget

    show(tiny_stem_series, viewer)
    widget = EndToEndWidget(viewer)
    # far more passes than can finish before the Stop lands, however busy the machine
    widget.iterations.value, widget.device.value = widget.iterations.max, "cpu"
    widget.runner.run()
    qtbot.waitUntil(lambda: widget.runner.last is not None, timeout=60000)
    widget.runner.stop_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60000)
    assert "partial result kept" in widget.runner.status.value, widget.runner.status.value
    volume = viewer.layers["Volume (end-to-end)"].metadata["result"]
    assert volume.provenance["partial"] and volume.shape == (24, 24, 24)
    assert widget.runner.last.step < widget.runner.last.total  # stopped, not finished


@pytest.mark.gui
def test_half_data_volumes_go_straight_into_the_fsc_widget(viewer, tiny_hrtem_series):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.fsc import ResolutionWidget
    from napari_ptychotomo._napari.widgets.plane_wave import PlaneWaveWidget

    show(tiny_hrtem_series, viewer)
    widget = PlaneWaveWidget(viewer, synchronous=True)
    widget.iterations.value, widget.tv_weight.value, widget.device.value = 4, 0.0, "cpu"
    widget.half_data.value = True
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    volume = viewer.layers["Volume (plane-wave)"].metadata["result"]
    assert volume.halves is not None and volume.halves[0].shape == (16, 16, 16)
    fsc = ResolutionWidget(viewer, synchronous=True)
    fsc.volume1.value, fsc.use_halves.value, fsc.directional.value = "Volume (plane-wave)", True, False
    fsc.runner.run()
    assert fsc.runner.status.value.startswith("done"), fsc.runner.status.value
    resolution = viewer.layers["Volume (plane-wave)"].metadata["resolution"]
    assert resolution.fsc[1] > 0.5  # two halves of the same noise-free data agree at low frequency


@pytest.mark.gui
def test_plane_wave_stop_keeps_the_current_volume(viewer, tiny_hrtem_series):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.plane_wave import PlaneWaveWidget

    show(tiny_hrtem_series, viewer)
    widget = PlaneWaveWidget(viewer, synchronous=True)
    widget.iterations.value, widget.device.value = 10, "cpu"
    run_and_stop_at(widget, 3)
    assert "stopped at step 3/10; partial result kept" in widget.runner.status.value
    layer = viewer.layers["Volume (plane-wave)"]
    volume = layer.metadata["result"]
    assert tuple(layer.scale) == pytest.approx((0.5,) * 3)  # Å
    assert volume.provenance["partial"] is True and volume.provenance["iteration"] == 3
    assert volume.provenance["stopped_at"] == "3/10" and np.real(volume.data).max() > 0
