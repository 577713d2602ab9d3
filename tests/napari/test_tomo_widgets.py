"""Denoise / Align / Linear tomography widgets on a tiny analytic tilt series."""

import numpy as np
import pytest

from napari_ptychotomo._napari.widgets._stack import parse_angles
from napari_ptychotomo.data import Alignment, Volume


def test_angles_parse_from_lists_and_ranges():
    np.testing.assert_allclose(parse_angles("-60:60:5"), [-60, -30, 0, 30, 60])
    np.testing.assert_allclose(parse_angles("-10, 0; 10"), [-10, 0, 10])
    with pytest.raises(ValueError, match="start:stop:count"):
        parse_angles("minus sixty")


def add_stack(viewer, blob_projections, noise=0.0):
    stack, angles = blob_projections
    data = stack + noise * np.random.default_rng(0).normal(size=stack.shape).astype(np.float32)
    return viewer.add_image(data, name="phases", scale=(1.0, 0.5, 0.5), metadata={"angles_deg": angles})


@pytest.mark.gui
def test_denoise_widget_lowers_the_error_against_the_clean_stack(viewer, blob_projections):
    from napari_ptychotomo._napari.widgets.denoise import DenoiseWidget

    add_stack(viewer, blob_projections, noise=0.1)
    widget = DenoiseWidget(viewer, synchronous=True)
    assert widget.angles.value.startswith("-60, -40")  # from the layer's metadata
    widget.method.value = "tv"
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    out = viewer.layers["phases (denoised)"]
    clean = blob_projections[0]
    before = np.sqrt(np.mean((viewer.layers["phases"].data - clean) ** 2))
    after = np.sqrt(np.mean((out.data - clean) ** 2))
    assert after < 0.7 * before and tuple(out.scale) == (1.0, 0.5, 0.5)


@pytest.mark.gui
def test_linear_tomography_widget_reconstructs_blobs_at_their_places(viewer, not_blank, blob_projections):
    from napari_ptychotomo._napari.widgets.linear import LinearTomographyWidget

    add_stack(viewer, blob_projections)
    widget = LinearTomographyWidget(viewer, synchronous=True)
    widget.iterations.value, widget.device.value = 40, "cpu"
    widget.mask_projections.value = True
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    layer = viewer.layers["Volume (linear)"]
    volume = layer.metadata["result"]
    steps, losses = widget.loss_plot.panels[0].curves["loss"]
    assert steps[-1] == 40 and losses[-1] < 0.1 * losses[0], losses  # the projections are fitted
    assert isinstance(volume, Volume) and tuple(layer.scale) == (0.5, 0.5, 0.5)
    assert isinstance(layer.metadata["alignment"], Alignment)
    # the brightest voxel lies within 1.5 px of one of the blobs (x, y, z) from the centre
    nz, ny, nx = volume.shape
    z, y, x = np.unravel_index(np.argmax(volume.data), volume.shape)
    found = np.array([x - (nx - 1) / 2, y - (ny - 1) / 2, z - (nz - 1) / 2])
    blobs = np.array([[0.0, 3.0, -4.0], [5.0, -4.0, 2.0], [-4.0, 0.0, 4.0]])
    assert np.min(np.linalg.norm(blobs - found, axis=1)) < 1.5
    # the support mask holds the blobs and little else; masking the projections keeps them
    mask_layer = viewer.layers["Support mask (linear)"]
    assert type(mask_layer).__name__ == "Labels" and tuple(mask_layer.scale) == (0.5, 0.5, 0.5)
    mask = mask_layer.data.astype(bool)
    assert mask[z, y, x] and 0.005 < mask.mean() < 0.3, mask.mean()
    stack = viewer.layers["phases"].data
    masked = viewer.layers["phases (masked)"].data
    assert masked.sum() > 0.9 * stack.sum() and np.all(masked <= stack + 1e-6)
    assert np.mean(masked == 0) > 0.2  # what no ray through the support sees is cleared
    viewer.layers["phases"].visible = False
    mask_layer.visible = False
    not_blank(viewer)


@pytest.mark.gui
def test_align_widget_gives_alignment_volume_and_aligned_stack(viewer, blob_projections):
    from napari_ptychotomo._napari.widgets.align import AlignWidget

    add_stack(viewer, blob_projections)
    widget = AlignWidget(viewer, synchronous=True)
    widget.outer_iterations.value, widget.final_iterations.value = 2, 10
    widget.device.value = "cpu"
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    alignment = viewer.layers["phases"].metadata["alignment"]
    assert isinstance(alignment, Alignment) and alignment.euler_deg.shape == (7, 3)
    assert viewer.layers["phases (aligned)"].data.shape == (7, 24, 24)
    assert viewer.layers["Volume (aligned)"].metadata["alignment"] is alignment
    assert "Alignment preview (central z slice)" in viewer.layers
    assert widget.runner.progress.value == widget.runner.progress.max
    shifts_panel, angles_panel = widget.shift_plot.panels  # the final alignment, per tilt
    np.testing.assert_allclose(shifts_panel.curves["x"][1], alignment.shifts[:, 1])
    np.testing.assert_allclose(
        angles_panel.curves["θ − nominal"][1], alignment.euler_deg[:, 1] - blob_projections[1], atol=1e-9
    )
    assert widget.shift_plot.drawn_lines() == 5 and "RMS shift" in widget.shift_plot.summary.value


@pytest.mark.gui
def test_projections_from_msp_stack_the_summed_phases_with_their_tilts(viewer, tiny_msp):
    from dataclasses import replace

    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.denoise import DenoiseWidget
    from napari_ptychotomo._napari.widgets.msp_projections import ProjectionsFromMSPWidget
    from napari_ptychotomo.tomo import projections_from_msp

    widget = ProjectionsFromMSPWidget(viewer, synchronous=True)
    assert widget.found.value.startswith("no MSP results")
    # scans centred on the objects, so the common field is nearly the whole object
    centred = tiny_msp.positions - tiny_msp.positions.mean(0) + 15.0 * tiny_msp.pixel_size
    results = {k: replace(tiny_msp, tilt_deg=angle, positions=centred) for k, angle in enumerate((-20.0, 0.0, 20.0))}
    for k in (2, 0, 1):  # in any order: the stack follows the tilt index
        show(results[k], viewer, name=str(k))
    assert widget.found.value == "MSP results for tilts [0, 1, 2]"
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    layer = viewer.layers["MSP projections"]
    stack, _angles, pixel = projections_from_msp(results)  # the widget relays the engine
    np.testing.assert_array_equal(layer.data, stack)
    assert layer.data.shape[1] >= 30 and tuple(layer.scale) == pytest.approx((1.0, pixel, pixel))
    np.testing.assert_allclose(layer.metadata["angles_deg"], [-20, 0, 20])
    denoise = DenoiseWidget(viewer, synchronous=True)
    denoise.stack.value = "MSP projections"
    assert denoise.angles.value == "-20, 0, 20"
