"""Reader and writers as pure functions (no viewer): files → layer tuples → files."""

import json

import numpy as np
import pytest

from napari_ptychotomo import load, save
from napari_ptychotomo._napari.reader import DEFAULT_CALIBRATION, napari_get_reader, read_path
from napari_ptychotomo._napari.writer import write_image, write_points
from napari_ptychotomo.data import Atoms, MSPResult, Project, TiltSeries, Volume


def by_name(layers):
    return {kw["name"]: (data, kw, kind) for data, kw, kind in layers}


def test_reader_claims_only_its_files(tmp_path):
    np.save(tmp_path / "image.npy", np.zeros((8, 8)))
    np.save(tmp_path / "stem.npy", np.zeros((2, 2, 8, 8)))
    (tmp_path / "notes.txt").write_text("hello")
    assert napari_get_reader(str(tmp_path / "image.npy")) is None  # 2D: napari's own reader
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    assert napari_get_reader(str(tmp_path / "stem.npy")) is read_path
    assert napari_get_reader([str(tmp_path / "stem.npy"), str(tmp_path / "x.mrc")]) is read_path


def test_project_file_opens_as_every_result(tmp_path, tiny_scan, tiny_msp):
    volume = Volume(data=np.arange(27, dtype=np.float32).reshape(3, 3, 3), voxel_size=0.7)
    path = tmp_path / "study.ptycho.h5"
    save(
        Project(
            series=TiltSeries(scans=[tiny_scan, tiny_scan], angles_deg=[-5.0, 5.0]),
            msp={0: tiny_msp},
            volumes={"linear": volume},
        ),
        path,
    )
    layers = by_name(napari_get_reader(str(path))(str(path)))
    assert {"Virtual bright field", "MSP phase [tilt 0]", "Volume (linear)"} <= set(layers)
    bright, kw, _ = layers["Virtual bright field"]
    assert bright.shape == (2, 6, 5) and kw["scale"] == (1.0, 0.5, 0.5)
    np.testing.assert_array_equal(layers["Volume (linear)"][0], volume.data)
    assert layers["Volume (linear)"][1]["scale"] == (0.7, 0.7, 0.7)
    assert layers["MSP phase [tilt 0]"][0].shape == (3, 32, 32)


def test_npy_scan_uses_its_json_sidecar(tmp_path, tiny_scan):
    path = tmp_path / "scan.npy"
    np.save(path, np.asarray(tiny_scan.intensities))
    (tmp_path / "scan.json").write_text(
        json.dumps({"energy_eV": 200e3, "semiangle_mrad": 20.0, "detector_sampling_mrad": 1.5, "scan_step": 0.8})
    )
    layers = by_name(read_path(str(path)))
    assert layers["Virtual bright field"][0].shape == (6, 5)
    assert layers["Virtual bright field"][1]["scale"] == (0.8, 0.8)
    meta = layers["Virtual bright field"][1]["metadata"]
    assert meta["detector_sampling_mrad"] == 1.5 and meta["mean_diffraction"].shape == (16, 16)
    assert meta["result"].calibration.energy_eV == 200e3


def test_npy_scan_without_calibration_opens_with_defaults_and_a_warning(tmp_path, tiny_scan):
    path = tmp_path / "raw.npy"
    np.save(path, np.asarray(tiny_scan.intensities))
    with pytest.warns(UserWarning, match="placeholders"):
        layers = by_name(read_path(str(path)))
    dk = DEFAULT_CALIBRATION["detector_sampling_mrad"]
    assert layers["Virtual bright field"][1]["metadata"]["detector_sampling_mrad"] == dk


def test_mrc_volume_and_tilt_stack_open_with_their_pixel_size(tmp_path):
    volume = Volume(data=np.random.default_rng(0).random((4, 6, 8), dtype=np.float32), voxel_size=0.25)
    save(volume, tmp_path / "vol.mrc")
    ((data, kw, kind),) = read_path(str(tmp_path / "vol.mrc"))
    assert kw["name"] == "Volume (vol)" and kw["scale"] == pytest.approx((0.25,) * 3)
    np.testing.assert_array_equal(data, volume.data)
    save(np.ones((5, 6, 8), np.float32), tmp_path / "tilts.mrc", voxel_size=0.5)
    ((stack, kw, _),) = read_path(str(tmp_path / "tilts.mrc"))
    assert stack.shape == (5, 6, 8) and kw["axis_labels"] == ("tilt", "y", "x")
    assert kw["scale"] == pytest.approx((1.0, 0.5, 0.5))


@pytest.mark.parametrize("suffix", [".mrc", ".tif", ".ptycho.h5"])
def test_image_writer_round_trips_a_volume_layer(tmp_path, suffix):
    volume = Volume(
        data=np.random.default_rng(1).random((3, 4, 5), dtype=np.float32),
        voxel_size=0.6,
        origin=np.array([0.0, 1.2, 2.4]),
    )
    meta = {
        "name": "Volume (linear)",
        "scale": (0.6,) * 3,
        "translate": (0.0, 1.2, 2.4),
        "metadata": {"result": volume, "kind": "volume", "volume_name": "linear"},
    }
    (written,) = write_image(str(tmp_path / f"out{suffix}"), volume.data, meta)
    back = load(written)
    back = back.volumes["linear"] if isinstance(back, Project) else back
    assert isinstance(back, Volume) and back.voxel_size == pytest.approx(0.6)
    np.testing.assert_array_equal(np.asarray(back.data), volume.data)
    np.testing.assert_allclose(back.origin, volume.origin, atol=1e-6)


def test_image_writer_builds_a_volume_from_a_plain_layer(tmp_path):
    data = np.random.default_rng(2).random((4, 4, 4))  # float64, no metadata
    (written,) = write_image(str(tmp_path / "plain.mrc"), data, {"name": "x", "scale": (0.3,) * 3})
    back = load(written)
    assert back.voxel_size == pytest.approx(0.3) and back.data.dtype == np.float32
    np.testing.assert_allclose(back.data, data, rtol=1e-6)


def test_image_writer_saves_an_msp_result_whole_into_a_project(tmp_path, tiny_msp):
    meta = {
        "name": "MSP phase [tilt 2]",
        "scale": (20.0, 0.3, 0.3),
        "metadata": {"result": tiny_msp, "kind": "msp", "tilt_index": 2},
    }
    (written,) = write_image(str(tmp_path / "msp.ptycho.h5"), np.zeros((3, 32, 32)), meta)
    back = load(written)
    back = next(iter(back.msp.values())) if isinstance(back, Project) else back
    assert isinstance(back, MSPResult)
    np.testing.assert_array_equal(back.object, tiny_msp.object)


@pytest.mark.parametrize("suffix", [".xyz", ".csv"])
def test_points_writer_saves_atoms_with_species(tmp_path, suffix):
    atoms = Atoms(
        positions=np.array([[1.0, 2, 3], [4, 5, 6]]),
        species=np.array([0, 1]),
        intensities=np.array([1.5, 7.0]),
        names=["O", "Pt"],
    )
    meta = {"name": "Atoms (traced)", "metadata": {"result": atoms, "kind": "atoms"}}
    (written,) = write_points(str(tmp_path / f"atoms{suffix}"), atoms.positions, meta)
    back = load(written)
    np.testing.assert_allclose(back.positions, atoms.positions)
    assert back.symbols() == ["O", "Pt"]


def test_points_writer_builds_atoms_from_plain_points_and_features(tmp_path):
    meta = {"name": "clicked", "features": {"species": np.array([1, 0, 1])}}
    points = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    (written,) = write_points(str(tmp_path / "clicked.csv"), points, meta)
    back = load(written)
    np.testing.assert_allclose(back.positions[:, 0], 0.0)
    np.testing.assert_allclose(back.positions[:, 1:], points)
    np.testing.assert_array_equal(back.species, [1, 0, 1])


def test_project_file_opens_with_only_its_latest_volume_and_atoms_visible(tmp_path, tiny_scan, tiny_msp):
    from napari_ptychotomo.data import Atoms

    blob = np.ones((4, 4, 4), np.float32)
    save(
        Project(
            series=TiltSeries(scans=[tiny_scan, tiny_scan], angles_deg=[-5.0, 5.0]),
            msp={0: tiny_msp},
            volumes={"linear": Volume(blob, 0.5), "end-to-end": Volume(blob, 0.5)},
            atoms={"end-to-end": Atoms(positions=np.zeros((1, 3)), species=np.zeros(1, int))},
        ),
        tmp_path / "p.ptycho.h5",
    )
    layers = napari_get_reader(str(tmp_path / "p.ptycho.h5"))(str(tmp_path / "p.ptycho.h5"))
    visible = {kw["name"] for _data, kw, _kind in layers if kw.get("visible", True)}
    assert visible == {"Volume (end-to-end)", "Atoms (end-to-end)"}
    assert len(layers) > 5  # the rest is there, hidden
