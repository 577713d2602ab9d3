"""Foreign formats: numpy 4D-STEM, py4DSTEM / EMD 1.0, rosettasciio detectors, MRC, TIFF,
extended XYZ, CSV and tilt series from folders."""

from __future__ import annotations

import builtins
import json

import h5py
import mrcfile
import numpy as np
import pytest
import tifffile

from napari_ptychotomo import load, save
from napari_ptychotomo.data import Atoms, ScanData, TiltSeries, Volume
from napari_ptychotomo.io import PtychoFormatError, load_tilt_series
from napari_ptychotomo.optics import wavelength

CAL = {"energy_eV": 300e3, "semiangle_mrad": 25.0, "detector_sampling_mrad": 1.0}


@pytest.fixture
def cube(rng):
    return rng.poisson(4.0, (3, 4, 16, 16)).astype(np.float32)


# ------------------------------------------------------------------------ numpy 4D-STEM
def test_npy_with_keyword_calibration_is_a_lazy_scan(tmp_path, cube):
    np.save(tmp_path / "scan.npy", cube)
    scan = load(tmp_path / "scan.npy", scan_step=0.4, tilt_deg=12.0, **CAL)
    assert isinstance(scan, ScanData) and isinstance(scan.intensities, np.memmap)
    assert scan.calibration.energy_eV == 300e3 and scan.tilt_deg == 12.0
    np.testing.assert_array_equal(scan.patterns([5]), cube.reshape(12, 16, 16)[[5]])
    assert scan.positions_angstrom()[5].tolist() == [0.4, 0.4]


def test_npy_calibration_from_json_sidecar_and_keywords_override(tmp_path, cube):
    np.save(tmp_path / "scan.npy", cube)
    (tmp_path / "scan.json").write_text(json.dumps({**CAL, "scan_step": 0.5, "defocus": 100.0}))
    scan = load(tmp_path / "scan.npy", defocus=-20.0)
    assert scan.calibration.scan_step == 0.5 and scan.calibration.defocus == -20.0


def test_npy_scan_round_trips_with_its_sidecar(tmp_path, cube):
    original = load_from_array(tmp_path, cube)
    save(original, tmp_path / "copy.npy")
    again = load(tmp_path / "copy.npy")
    np.testing.assert_array_equal(np.asarray(again.intensities), cube)
    assert again.calibration == original.calibration and again.tilt_deg == original.tilt_deg


def load_from_array(tmp_path, cube):
    np.save(tmp_path / "orig.npy", cube)
    return load(tmp_path / "orig.npy", scan_step=0.3, tilt_deg=-7.5, **CAL)


def test_npz_with_positions(tmp_path, rng):
    patterns = rng.random((6, 8, 8), dtype=np.float32)
    positions = rng.random((6, 2)) * 3
    np.savez(tmp_path / "scan.npz", intensities=patterns, positions=positions)
    scan = load(tmp_path / "scan.npz", **CAL)
    np.testing.assert_array_equal(scan.positions, positions)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.full((2, 2, 8, 8), np.nan, np.float32), "NaN"),
        (-np.ones((2, 2, 8, 8), np.float32), "negative counts"),
        (np.ones((8, 8), np.float32), r"shape \(8, 8\)"),
    ],
)
def test_bad_npy_content_names_the_file_and_problem(tmp_path, bad, message):
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(PtychoFormatError, match=rf"bad\.npy.*{message}"):
        load(tmp_path / "bad.npy", scan_step=0.4, **CAL)


def test_missing_calibration_says_which_values_and_how(tmp_path, cube):
    np.save(tmp_path / "scan.npy", cube)
    with pytest.raises(
        PtychoFormatError, match="missing calibration: semiangle_mrad, detector_sampling_mrad.*scan.json"
    ):
        load(tmp_path / "scan.npy", energy_eV=300e3)


def test_truncated_npy_is_reported(tmp_path, cube):
    np.save(tmp_path / "scan.npy", cube)
    content = (tmp_path / "scan.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(content[: len(content) // 2])
    with pytest.raises(PtychoFormatError, match="cut.npy"):
        load(tmp_path / "cut.npy", **CAL)


# ------------------------------------------------------------------------ EMD / py4DSTEM
def _write_emd(path, cube, *, style):
    """A minimal EMD datacube: EMD 1.0 (dim1.., group type 1) or emdfile (dim0.., 'array')."""
    with h5py.File(path, "w") as fh:
        fh.attrs["version_major"], fh.attrs["version_minor"] = 1, 0
        root = fh.create_group("4DSTEM_experiment" if style == "1.0" else "root")
        root.attrs["emd_group_type"] = "root" if style != "1.0" else 2
        group = root.create_group("datacube")
        group.attrs["emd_group_type"] = 1 if style == "1.0" else "array"
        group.create_dataset("data", data=cube)
        first = 1 if style == "1.0" else 0
        dims = [
            (np.arange(cube.shape[0]) * 0.05, "nm"),
            (np.arange(cube.shape[1]) * 0.05, "nm"),
            (np.arange(cube.shape[2]) * 0.02, "A^-1"),
            (np.arange(cube.shape[3]) * 0.02, "A^-1"),
        ]
        for axis, (values, units) in enumerate(dims):
            dim = group.create_dataset(f"dim{axis + first}", data=values[:2] if style != "1.0" else values)
            dim.attrs["name"], dim.attrs["units"] = f"axis{axis}", units


@pytest.mark.parametrize("style", ["1.0", "emdfile"])
def test_emd_datacube_reads_lazily_with_calibration_from_dims(tmp_path, cube, style):
    _write_emd(tmp_path / "cube.h5", cube, style=style)
    scan = load(tmp_path / "cube.h5", energy_eV=300e3, semiangle_mrad=20.0)
    assert scan.intensities.shape == cube.shape
    np.testing.assert_array_equal(np.asarray(scan.intensities), cube)
    assert scan.calibration.scan_step == pytest.approx(0.5)  # 0.05 nm
    expected_mrad = 0.02 * wavelength(300e3) * 1e3  # 0.02 Å⁻¹ at 300 kV
    assert scan.calibration.detector_sampling_mrad == pytest.approx(expected_mrad, rel=1e-12)


def test_plain_hdf5_is_neither_project_nor_emd(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as fh:
        fh["data"] = np.zeros((2, 2, 8, 8))
    with pytest.raises(PtychoFormatError, match="neither a napari-ptychotomo project"):
        load(tmp_path / "x.h5")


# ------------------------------------------------------------------------ rosettasciio
def test_detector_format_via_rosettasciio_blockfile(tmp_path, rng):
    pytest.importorskip("rsciio")
    from rsciio.blockfile import file_writer

    data = rng.integers(0, 200, (3, 4, 16, 16)).astype(np.uint8)
    axes = [
        {"name": n, "size": s, "scale": sc, "offset": 0.0, "units": u, "navigate": nav, "index_in_array": i}
        for i, (n, s, sc, u, nav) in enumerate(
            [
                ("y", 3, 0.05, "nm", True),
                ("x", 4, 0.05, "nm", True),
                ("dy", 16, 0.01, "cm", False),
                ("dx", 16, 0.01, "cm", False),
            ]
        )
    ]
    signal = {"data": data, "axes": axes, "metadata": {}, "original_metadata": {}, "attributes": {"_lazy": False}}
    file_writer(str(tmp_path / "scan.blo"), signal, show_progressbar=False)
    scan = load(tmp_path / "scan.blo", **CAL)
    np.testing.assert_array_equal(np.asarray(scan.intensities), data)
    assert scan.calibration.scan_step == pytest.approx(0.5)


def test_missing_rosettasciio_gives_an_install_hint(tmp_path, monkeypatch):
    (tmp_path / "scan.mib").write_bytes(b"\0" * 64)
    real_import = builtins.__import__

    def no_rsciio(name, *args, **kwargs):
        if name.startswith("rsciio"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rsciio)
    with pytest.raises(PtychoFormatError, match="pip install rosettasciio"):
        load(tmp_path / "scan.mib", **CAL)


# ------------------------------------------------------------------------ volumes
@pytest.fixture
def volume(rng):
    return Volume(
        rng.random((4, 5, 6)).astype(np.float32), voxel_size=0.37, origin=np.array([1.0, -2.0, 3.5]), units="V"
    )


def test_mrc_volume_keeps_voxel_size_origin_and_values(tmp_path, volume):
    save(volume, tmp_path / "v.mrc")
    with mrcfile.open(tmp_path / "v.mrc") as mrc:  # readable by the reference library
        assert mrc.voxel_size.x == pytest.approx(0.37) and mrc.is_volume()
        assert mrc.header.origin.x == pytest.approx(3.5)
    back = load(tmp_path / "v.mrc")
    assert isinstance(back, Volume) and back.units == "V"
    np.testing.assert_array_equal(back.data, volume.data)
    assert back.voxel_size == pytest.approx(0.37, rel=1e-6)
    np.testing.assert_allclose(back.origin, volume.origin)


def test_mrc_image_stack_loads_as_array(tmp_path, rng):
    stack = rng.random((5, 6, 7)).astype(np.float32)
    save(stack, tmp_path / "tilts.mrc", voxel_size=0.5)
    back = load(tmp_path / "tilts.mrc")
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, stack)


def test_tiff_volume_keeps_scale_for_imagej(tmp_path, volume):
    save(volume, tmp_path / "v.tif")
    with tifffile.TiffFile(tmp_path / "v.tif") as tif:
        assert tif.is_imagej and tif.imagej_metadata["spacing"] == pytest.approx(0.37)
        assert tif.imagej_metadata["unit"] == "angstrom"
    back = load(tmp_path / "v.tif")
    np.testing.assert_array_equal(back.data, volume.data)
    assert back.voxel_size == 0.37 and back.units == "V"
    np.testing.assert_array_equal(back.origin, volume.origin)


def test_tiff_stack_and_complex_volume(tmp_path, rng, volume):
    stack = rng.integers(0, 60000, (3, 4, 5)).astype(np.uint16)
    save(stack, tmp_path / "s.tiff")
    np.testing.assert_array_equal(load(tmp_path / "s.tiff"), stack)
    complex_volume = Volume(volume.data.astype(np.complex64), 1.0)
    with pytest.raises(PtychoFormatError, match="complex"):
        save(complex_volume, tmp_path / "c.tif")


def test_corrupt_mrc_is_reported(tmp_path):
    (tmp_path / "junk.mrc").write_bytes(b"\x01" * 2000)
    with pytest.raises(PtychoFormatError, match="junk.mrc"):
        load(tmp_path / "junk.mrc")


# ------------------------------------------------------------------------ atoms
@pytest.fixture
def atoms(rng):
    return Atoms(
        positions=rng.random((6, 3)) * 20,
        species=np.array([0, 1, 2, 1, 0, 2]),
        intensities=rng.random(6),
        widths=rng.random(6) * 0.3,
        names=["O", "Ti", "Sr"],
    )


def test_extended_xyz_round_trips_exactly(tmp_path, atoms):
    save(atoms, tmp_path / "a.xyz", cell=(30.0, 30.0, 30.0))
    lines = (tmp_path / "a.xyz").read_text().splitlines()
    assert lines[0] == "6"
    assert 'Lattice="30.0 0.0 0.0 0.0 30.0 0.0 0.0 0.0 30.0"' in lines[1]
    assert "Properties=species:S:1:pos:R:3:class_index:I:1:intensity:R:1:width:R:1" in lines[1]
    z, y, x = atoms.positions[0]
    assert lines[2].split()[:4] == ["O", repr(float(x)), repr(float(y)), repr(float(z))]  # x y z order
    back = load(tmp_path / "a.xyz")
    np.testing.assert_array_equal(back.positions, atoms.positions)
    np.testing.assert_array_equal(back.species, atoms.species)
    np.testing.assert_array_equal(back.widths, atoms.widths)
    assert back.names == atoms.names


def test_extended_xyz_is_read_by_ase(tmp_path, atoms):
    ase_io = pytest.importorskip("ase.io")
    save(atoms, tmp_path / "a.xyz")
    frame = ase_io.read(tmp_path / "a.xyz")
    assert frame.get_chemical_symbols() == ["O", "Ti", "Sr", "Ti", "O", "Sr"]
    np.testing.assert_allclose(frame.positions, atoms.positions[:, ::-1])


def test_csv_round_trips(tmp_path, atoms):
    save(atoms, tmp_path / "a.csv")
    assert (tmp_path / "a.csv").read_text().splitlines()[
        0
    ] == "symbol,class_index,z_angstrom,y_angstrom,x_angstrom,intensity,width"
    back = load(tmp_path / "a.csv")
    np.testing.assert_array_equal(back.positions, atoms.positions)
    np.testing.assert_array_equal(back.intensities, atoms.intensities)
    assert back.names == atoms.names


@pytest.mark.parametrize("text", ["hello world\n", "", "x,y,z\n"])
def test_csv_without_the_position_columns_is_refused_even_without_rows(tmp_path, text):
    (tmp_path / "b.csv").write_text(text)
    with pytest.raises(PtychoFormatError, match="b.csv: not an atoms CSV.*z_angstrom"):
        load(tmp_path / "b.csv")


def test_header_only_csv_is_no_atoms(tmp_path):
    save(Atoms(np.zeros((0, 3)), np.zeros(0, int)), tmp_path / "a.csv")
    assert len(load(tmp_path / "a.csv")) == 0


def test_unnamed_classes_are_dummy_atoms(tmp_path):
    atoms = Atoms(np.zeros((2, 3)), np.array([0, 1]))
    save(atoms, tmp_path / "x.xyz")
    assert (tmp_path / "x.xyz").read_text().splitlines()[2].startswith("X ")
    assert load(tmp_path / "x.xyz").names is None


def test_broken_xyz_is_reported(tmp_path):
    (tmp_path / "b.xyz").write_text("3\nProperties=species:S:1:pos:R:3\nO 0 0 0\n")
    with pytest.raises(PtychoFormatError, match="b.xyz.*expected 3 atom lines"):
        load(tmp_path / "b.xyz")


# ------------------------------------------------------------------------ tilt series
def _folder_of_scans(folder, rng, n=3):
    folder.mkdir()
    for k in range(n):  # names sort naturally: scan_2 before scan_10
        np.save(folder / f"scan_{[2, 10, 11][k]}.npy", np.full((2, 2, 8, 8), k + 1, np.float32))
    return folder


def test_tilt_series_from_folder_and_angle_file(tmp_path, rng):
    folder = _folder_of_scans(tmp_path / "series", rng)
    (folder / "angles.txt").write_text("# tilt in degrees\n-40\n0\n40\n")
    series = load(folder, scan_step=0.5, **CAL)
    assert isinstance(series, TiltSeries) and len(series) == 3
    np.testing.assert_array_equal(series.angles_deg, [-40.0, 0.0, 40.0])
    assert [float(np.asarray(s.intensities).mean()) for s in series.scans] == [1.0, 2.0, 3.0]
    assert series.scans[2].tilt_deg == 40.0


def test_tilt_series_from_a_list_of_files_with_angles(tmp_path, rng):
    folder = _folder_of_scans(tmp_path / "series", rng)
    files = [folder / "scan_11.npy", folder / "scan_2.npy"]
    series = load_tilt_series(files, angles=[10.0, -10.0], scan_step=0.5, **CAL)
    assert float(np.asarray(series.scans[0].intensities).mean()) == 3.0


def test_tilt_angles_in_radians_are_warned_of(tmp_path, rng):
    folder = _folder_of_scans(tmp_path / "series", rng)
    (folder / "angles.txt").write_text("-0.698\n0\n0.698\n")  # ±40° in radians
    with pytest.warns(UserWarning, match=r"angles_deg spans only -0.698° to 0.698°: were they given in radians"):
        load(folder, scan_step=0.5, **CAL)


def test_tilt_count_must_match_angles(tmp_path, rng):
    folder = _folder_of_scans(tmp_path / "series", rng)
    with pytest.raises(PtychoFormatError, match=r"series.*3 data file\(s\) but 2 tilt angle"):
        load_tilt_series(folder, angles=[0.0, 10.0], scan_step=0.5, **CAL)


# ------------------------------------------------------------------------ dispatch
def test_unsupported_extension_lists_the_supported_ones(tmp_path):
    (tmp_path / "data.xlsx").write_bytes(b"")
    with pytest.raises(PtychoFormatError, match=r"data\.xlsx.*supported: \.ptycho\.h5.*\.mrc"):
        load(tmp_path / "data.xlsx")
    with pytest.raises(PtychoFormatError, match=r"cannot write '\.png'.*\.tif"):
        save(np.zeros((2, 2)), tmp_path / "x.png")
    with pytest.raises(PtychoFormatError, match="Volume or an image stack"):
        save(Atoms(np.zeros((1, 3)), np.zeros(1, int)), tmp_path / "x.mrc")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(PtychoFormatError, match="nothing.ptycho.h5: file not found"):
        load(tmp_path / "nothing.ptycho.h5")


def test_mrc_keeps_non_ascii_units_through_an_ascii_label(tmp_path):
    from napari_ptychotomo import Volume, load, save

    volume = Volume(np.ones((4, 4, 4), np.float32), 0.3, units="rad per Å")
    assert load(save(volume, tmp_path / "v.mrc")).units == "rad per Å"
