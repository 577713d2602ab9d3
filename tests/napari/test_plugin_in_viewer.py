"""The plugin's reader, writers and sample data through a real napari viewer."""

import json

import numpy as np
import pytest

from napari_ptychotomo import load, save
from napari_ptychotomo.data import Volume

PLUGIN = "napari-ptychotomo"


def blob_volume(n=16, voxel=0.5):
    zz, yy, xx = np.mgrid[:n, :n, :n] - n / 2
    return Volume(data=np.exp(-(zz**2 + yy**2 + xx**2) / 8.0).astype(np.float32), voxel_size=voxel)


@pytest.mark.gui
def test_open_npy_scan_and_mrc_volume_with_the_plugin(viewer, not_blank, tmp_path, tiny_scan):
    np.save(tmp_path / "scan.npy", np.asarray(tiny_scan.intensities))
    (tmp_path / "scan.json").write_text(
        json.dumps({"energy_eV": 300e3, "semiangle_mrad": 20.0, "detector_sampling_mrad": 2.5, "scan_step": 0.5})
    )
    save(blob_volume(), tmp_path / "blob.mrc")
    viewer.open(str(tmp_path / "scan.npy"), plugin=PLUGIN)
    viewer.open(str(tmp_path / "blob.mrc"), plugin=PLUGIN)
    # the mean pattern (mrad) stays out of the Å world, in the bright field's metadata
    assert [layer.name for layer in viewer.layers] == ["Virtual bright field", "Volume (blob)"]
    assert viewer.layers["Virtual bright field"].metadata["mean_diffraction"].shape == (16, 16)
    assert viewer.layers["Virtual bright field"].data.shape == (6, 5)
    assert tuple(viewer.layers["Volume (blob)"].scale) == pytest.approx((0.5, 0.5, 0.5))
    not_blank(viewer)


@pytest.mark.gui
def test_open_project_file_with_the_plugin(viewer, not_blank, tmp_path, tiny_msp):
    from napari_ptychotomo.data import Project

    path = tmp_path / "study.ptycho.h5"
    save(Project(msp={0: tiny_msp}, volumes={"linear": blob_volume()}), path)
    viewer.open(str(path), plugin=PLUGIN)
    names = [layer.name for layer in viewer.layers]
    assert {"MSP phase [tilt 0]", "MSP probe [tilt 0]", "MSP tilt map θx [tilt 0]", "Volume (linear)"} <= set(names)
    assert tuple(viewer.layers["MSP phase [tilt 0]"].scale) == pytest.approx((20.0, 0.3, 0.3))
    for layer in viewer.layers:
        layer.visible = layer.name == "MSP tilt map θx [tilt 0]"
    not_blank(viewer)


@pytest.mark.gui
def test_save_layers_through_the_plugin_writers(viewer, tmp_path):
    from napari_ptychotomo import show
    from napari_ptychotomo.data import Atoms

    show(blob_volume(), viewer, name="linear")
    show(Atoms(positions=np.array([[1.0, 2.0, 3.0]]), species=np.array([0]), names=["Pt"]), viewer, name="traced")
    viewer.layers["Volume (linear)"].save(str(tmp_path / "v.mrc"), plugin=PLUGIN)
    viewer.layers["Atoms (traced)"].save(str(tmp_path / "a.xyz"), plugin=PLUGIN)
    assert load(tmp_path / "v.mrc").voxel_size == pytest.approx(0.5)
    assert load(tmp_path / "a.xyz").symbols() == ["Pt"]


@pytest.mark.gui
@pytest.mark.parametrize(
    "key, expected",
    [
        ("srtio3_scan", {"Virtual bright field": (12, 12)}),
        ("nanoparticle_series", {"Virtual bright field": (5, 10, 10)}),
        ("core_shell_potential", {"Volume (truth)": None, "Atoms (truth)": None}),
        ("hrtem_series", {"Defocus images": (12, 3, 94, 94)}),
    ],
)
def test_sample_data_opens_as_scaled_layers(viewer, not_blank, key, expected):
    viewer.open_sample(PLUGIN, key)
    for name, shape in expected.items():
        layer = viewer.layers[name]
        if shape is not None:
            assert layer.data.shape == shape
        assert all(s > 0 for s in layer.scale)
    assert viewer.layers[list(expected)[0]].metadata["result"] is not None
    for layer in viewer.layers:
        layer.visible = layer.name == list(expected)[0]
    not_blank(viewer)


def manifest_widgets():
    from pathlib import Path

    import yaml

    import napari_ptychotomo

    manifest = Path(napari_ptychotomo.__file__).parent / "napari.yaml"
    return [w["display_name"] for w in yaml.safe_load(manifest.read_text())["contributions"]["widgets"]]


@pytest.mark.gui
def test_every_manifest_widget_docks_in_a_viewer(viewer):
    names = manifest_widgets()
    assert {"End-to-end ptycho-tomography", "Plane-wave tomography", "Inspect"} <= set(names)
    for name in names:
        dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        assert dock is not None and widget is not None, name
