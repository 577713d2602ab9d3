"""The "Inspect" widget: slice views, line profiles, spectra, tilt-map statistics."""

import numpy as np
import pytest

from napari_ptychotomo._napari.inspection import (
    line_profile,
    orthogonal_views,
    points_in_shape,
    region_statistics,
    world_to_index,
)
from napari_ptychotomo.data import Volume


def blob(shape=(12, 16, 20), centre=(5.0, 7.0, 12.0), sigma=1.5):
    """A Gaussian blob (voxel units) in a (z, y, x) volume."""
    grids = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    r2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
    return np.exp(-r2 / (2 * sigma**2)).astype(np.float32)


def test_world_point_maps_to_the_nearest_voxel_and_is_clipped():
    assert world_to_index((1.0, 2.6, 4.4), (0.5, 0.5, 0.5), (0.0, 1.0, 2.0), (10, 10, 10)) == (2, 3, 5)
    assert world_to_index((99.0, -5.0, 0.0), (1, 1, 1), (0, 0, 0), (4, 4, 4)) == (3, 0, 0)


def test_orthogonal_views_are_the_planes_through_the_voxel():
    data = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    views = orthogonal_views(data, (1, 2, 3))
    np.testing.assert_array_equal(views["yx"], data[1])
    np.testing.assert_array_equal(views["zx"], data[:, 2])
    np.testing.assert_array_equal(views["zy"], data[:, :, 3])


def test_line_profile_of_a_linear_ramp_is_linear_in_angstrom():
    x = np.arange(20) * 0.4 + 1.0  # world x in Å of each voxel (scale 0.4, translate 1)
    data = np.broadcast_to(3.0 * x, (5, 6, 20))  # value = 3 / Å · x
    distance, values = line_profile(data, (0.4, 0.4, 0.4), (0.0, 0.0, 1.0), (0.8, 1.0, 2.0), (0.8, 1.0, 6.0))
    assert distance[-1] == pytest.approx(4.0) and len(distance) >= 20
    np.testing.assert_allclose(values, 3.0 * (2.0 + distance), rtol=1e-6)
    _, outside = line_profile(data, (0.4,) * 3, (0, 0, 1.0), (0.8, 1.0, 7.0), (0.8, 1.0, 20.0))
    assert np.isnan(outside[-1])  # beyond the volume


def test_region_statistics_of_two_grains():
    positions = np.stack(np.meshgrid(np.arange(4.0), np.arange(4.0), indexing="ij"), -1).reshape(-1, 2)
    tilt_map = np.stack([np.where(positions[:, 1] < 2, 3.0, -3.0), np.full(16, 0.5)], 1)
    left = points_in_shape(positions, np.array([[-0.5, -0.5], [-0.5, 1.5], [3.5, 1.5], [3.5, -0.5]]), "rectangle")
    stats = region_statistics(tilt_map, left)
    assert stats["count"] == 8 and stats["theta_x"]["mean"] == 3.0 and stats["theta_x"]["std"] == 0.0
    assert stats["theta_y"]["median"] == 0.5
    ellipse = points_in_shape(positions, np.array([[0.5, 0.5], [0.5, 2.5], [2.5, 2.5], [2.5, 0.5]]), "ellipse")
    assert ellipse.sum() == 4  # the four points at distance 0.71 of the centre (1.5, 1.5)
    with pytest.raises(ValueError, match="no scan position"):
        region_statistics(tilt_map, np.zeros(16, bool))


@pytest.mark.gui
def test_inspect_volume_views_follow_cursor_profile_and_spectrum(viewer, qtbot):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.inspect import InspectWidget

    show(Volume(data=blob(), voxel_size=0.5, origin=np.array([0.0, 0.0, 1.0])), viewer, name="blob")
    widget = InspectWidget(viewer)
    assert widget.volume.value == "Volume (blob)"
    for x in (1.0, 3.0, 5.0, 7.0):  # a quick move along x: the views catch up with its end
        viewer.cursor.position = (2.5, 3.5, x)
    qtbot.waitUntil(lambda: widget.index == (5, 7, 12), timeout=2000)  # 2.5, 3.5, 7 Å
    assert set(widget.views.images) == {"yx at z = 2.5 Å", "zx at y = 3.5 Å", "zy at x = 7.0 Å"}
    assert "value 1" in widget.views.summary.value  # the blob's peak

    viewer.add_shapes([np.array([[2.5, 3.5, 2.0], [2.5, 3.5, 10.0]])], shape_type="line", name="line")
    widget.profile_from.value = "line"
    widget.profile_button.clicked.emit()
    assert widget.status.value == "", widget.status.value
    distance, values = widget.profile_plot.panels[0].curves["profile"]
    assert distance[-1] == pytest.approx(8.0)
    assert distance[np.nanargmax(values)] == pytest.approx(5.0, abs=0.3)  # x = 7 Å, 5 Å from the start
    assert np.nanmax(values) == pytest.approx(1.0, abs=0.02)

    widget.spectrum_button.clicked.emit()
    assert widget.status.value == "", widget.status.value
    curves = widget.spectrum_plot.panels[0].curves
    assert set(curves) == {"z", "y", "x"} and curves["x"][0].max() == pytest.approx(1.0, rel=0.05)
    assert widget.spectrum_plot.summary.value.startswith("last peak:")
    assert len(widget.spectrum_images.images) == 3


@pytest.mark.gui
def test_inspect_tilt_map_overlay_and_region_statistics(viewer, not_blank, tiny_msp):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.inspect import InspectWidget

    show(tiny_msp, viewer, name="2")
    widget = InspectWidget(viewer)
    assert widget.tilt_map.value == "MSP tilt map θx [tilt 2]"
    widget.overlay_button.clicked.emit()
    names = [layer.name for layer in viewer.layers]
    assert names[-2:] == ["MSP tilt map θx [tilt 2]", "MSP tilt map θy [tilt 2]"]
    assert "MSP summed phase [tilt 2]" in names and viewer.layers["MSP tilt map θx [tilt 2]"].opacity == 0.5
    # the grain on the left (x < 9.2 Å: scan columns 0 and 1) has θx = +3 mrad, θy = 0.5 mrad
    viewer.add_shapes(
        [np.array([[7.5, 7.5], [7.5, 9.0], [10.5, 9.0], [10.5, 7.5]])], shape_type="rectangle", name="grain"
    )
    widget.region.value = "grain"
    widget.stats_button.clicked.emit()
    assert widget.status.value == "", widget.status.value
    stats = widget.statistics
    assert stats["count"] == 8 and stats["theta_x"]["mean"] == pytest.approx(3.0)
    assert stats["theta_x"]["std"] == pytest.approx(0.0) and stats["theta_y"]["median"] == pytest.approx(0.5)
    assert "θx: mean 3.00, median 3.00, std 0.00 mrad" in widget.stats.value
    for layer in viewer.layers:
        layer.visible = layer.name in ("MSP summed phase [tilt 2]", "MSP tilt map θx [tilt 2]")
    not_blank(viewer)


@pytest.mark.gui
def test_inspect_explains_what_is_missing(viewer):
    from napari_ptychotomo._napari.widgets.inspect import InspectWidget

    widget = InspectWidget(viewer)
    widget.stats_button.clicked.emit()
    assert widget.status.value.startswith("no tilt map")
