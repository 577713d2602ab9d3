"""Denoise / Align / Linear tomography widgets on a tiny analytic tilt series."""

import numpy as np
import pytest

from napari_ptychotomo.data import Alignment, Volume
from napari_ptychotomo._napari.tomo_widgets import parse_angles


def test_angles_parse_from_lists_and_ranges():
    np.testing.assert_allclose(parse_angles("-60:60:5"), [-60, -30, 0, 30, 60])
    np.testing.assert_allclose(parse_angles("-10, 0; 10"), [-10, 0, 10])
    with pytest.raises(ValueError, match="start:stop:count"):
        parse_angles("minus sixty")


def add_stack(viewer, blob_projections, noise=0.0):
    stack, angles = blob_projections
    data = stack + noise * np.random.default_rng(0).normal(size=stack.shape).astype(np.float32)
    return viewer.add_image(data, name="phases", scale=(1.0, 0.5, 0.5),
                            metadata={"angles_deg": angles})


@pytest.mark.gui
def test_denoise_widget_lowers_the_error_against_the_clean_stack(viewer, blob_projections):
    from napari_ptychotomo._napari.tomo_widgets import DenoiseWidget

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
    from napari_ptychotomo._napari.tomo_widgets import LinearTomographyWidget

    add_stack(viewer, blob_projections)
    widget = LinearTomographyWidget(viewer, synchronous=True)
    widget.iterations.value, widget.device.value = 40, "cpu"
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    layer = viewer.layers["Volume (linear)"]
    volume = layer.metadata["result"]
    assert isinstance(volume, Volume) and tuple(layer.scale) == (0.5, 0.5, 0.5)
    assert isinstance(layer.metadata["alignment"], Alignment)
    # the brightest voxel lies within 1.5 px of one of the blobs (x, y, z) from the centre
    nz, ny, nx = volume.shape
    z, y, x = np.unravel_index(np.argmax(volume.data), volume.shape)
    found = np.array([x - (nx - 1) / 2, y - (ny - 1) / 2, z - (nz - 1) / 2])
    blobs = np.array([[0.0, 3.0, -4.0], [5.0, -4.0, 2.0], [-4.0, 0.0, 4.0]])
    assert np.min(np.linalg.norm(blobs - found, axis=1)) < 1.5
    viewer.layers["phases"].visible = False
    not_blank(viewer)


@pytest.mark.gui
def test_align_widget_gives_alignment_volume_and_aligned_stack(viewer, blob_projections):
    from napari_ptychotomo._napari.tomo_widgets import AlignWidget

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
