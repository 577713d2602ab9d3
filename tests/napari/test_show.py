"""show() puts results into a real viewer as scaled layers and replaces them on re-show."""

import numpy as np
import pytest

from napari_ptychotomo.data import Atoms, Project, TiltSeries, Volume


@pytest.mark.gui
def test_show_project_adds_named_scaled_layers_and_reshow_replaces(viewer, not_blank, tiny_scan, tiny_msp):
    from napari_ptychotomo import show

    zz, yy, xx = np.mgrid[:8, :8, :8]
    volume = Volume(
        data=np.exp(-((zz - 4) ** 2 + (yy - 4) ** 2 + (xx - 4) ** 2) / 4.0).astype(np.float32), voxel_size=0.5
    )
    project = Project(
        series=TiltSeries(scans=[tiny_scan, tiny_scan], angles_deg=[-10.0, 10.0]),
        msp={1: tiny_msp},
        volumes={"linear": volume},
        atoms={"linear": Atoms(positions=np.array([[2.0, 2.0, 2.0]]), species=np.array([1]))},
    )
    layers = show(project, viewer)
    names = [layer.name for layer in viewer.layers]
    assert {
        "Virtual bright field",
        "MSP phase [tilt 1]",
        "MSP probe [tilt 1]",
        "MSP tilt map θx [tilt 1]",
        "MSP positions [tilt 1]",
        "Volume (linear)",
        "Atoms (linear)",
    } <= set(names)
    assert len(layers) == len(viewer.layers)
    assert tuple(viewer.layers["Volume (linear)"].scale) == (0.5, 0.5, 0.5)
    assert viewer.layers["Virtual bright field"].data.shape == (2, 6, 5)
    assert viewer.layers["MSP phase [tilt 1]"].metadata["result"] is tiny_msp

    volume.data = 2 * volume.data
    show(project, viewer)
    assert [layer.name for layer in viewer.layers] == names  # replaced, not piled up
    assert viewer.layers["Volume (linear)"].data.max() == pytest.approx(2.0)

    for layer in viewer.layers:
        layer.visible = layer.name == "MSP phase [tilt 1]"
    not_blank(viewer)
