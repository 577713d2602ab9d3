"""Property: every reader returns a valid object or raises PtychoFormatError naming the
file; no other exception escapes, whatever the file holds.

Readers covered: the native ``load()`` of a project whose attributes were replaced by
arbitrary values, ``.npy`` arrays of any dtype and shape with arbitrary JSON sidecars,
damaged ``.npy`` and MRC bytes, each through ``load()`` and through the napari reader
function (called directly; no viewer). Budgets are fixed and derandomised, so the test is
a reproducible specification, not a search that varies between runs.
"""

from __future__ import annotations

import json
import warnings

import h5py
import mrcfile
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_ptychotomo import load, save
from napari_ptychotomo._napari.reader import napari_get_reader, read_path
from napari_ptychotomo.data import Calibration, Project, ScanData, TiltSeries, Volume
from napari_ptychotomo.io import PtychoFormatError

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAMES = [
    "energy_eV",
    "semiangle_mrad",
    "detector_sampling_mrad",
    "defocus",
    "scan_step",
    "aberrations",
    "scan_rotation_deg",
    "tilt_deg",
    "positions",
    "array",
    "enrgy_eV",
    "C30",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


def _only_our_error(read, *names):
    """Call ``read()``; an exception must be PtychoFormatError naming one of ``names``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return read()
        except PtychoFormatError as exc:
            assert any(name in str(exc) for name in names), str(exc)
            return None


def _valid_sidecar():
    return {"energy_eV": 300e3, "semiangle_mrad": 25.0, "detector_sampling_mrad": 1.0, "scan_step": 0.5}


@FUZZ
@given(
    dtype=st.sampled_from(["float32", "float64", "int16", "uint8", "complex64", "bool"]),
    shape=st.lists(st.integers(0, 9), min_size=0, max_size=4),
    fill=st.sampled_from([1.0, 0.0, -1.0, np.nan, np.inf]),
    edits=st.dictionaries(st.sampled_from(NAMES), json_values, max_size=3),
    drop=st.lists(st.sampled_from(["energy_eV", "scan_step"]), max_size=2),
)
def test_npy_with_any_sidecar_gives_a_scan_or_our_error(tmp_path, dtype, shape, fill, edits, drop):
    path = tmp_path / "scan.npy"
    data = np.ones(shape, dtype)
    if data.size and dtype.startswith(("float", "complex")):
        data.flat[data.size // 2] = fill
    np.save(path, data)
    sidecar = {k: v for k, v in _valid_sidecar().items() if k not in drop}
    sidecar.update(edits)
    (tmp_path / "scan.json").write_text(json.dumps(sidecar))
    scan = _only_our_error(lambda: load(path), "scan.npy", "scan.json")
    if scan is not None:
        assert isinstance(scan, ScanData)
        scan.validate()
    layers = _only_our_error(lambda: read_path(str(path)), "scan.npy", "scan.json")
    assert layers is None or all(len(layer) == 3 for layer in layers)


@pytest.fixture(scope="module")
def npy_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("npy") / "good.npy"
    np.save(path, np.arange(2 * 2 * 8 * 8, dtype=np.float32).reshape(2, 2, 8, 8))
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_damaged_npy_bytes_give_a_scan_or_our_error(tmp_path, npy_bytes, data):
    content = bytearray(npy_bytes)
    cut = data.draw(st.integers(0, len(content)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, 127), st.integers(1, 255)), max_size=4))
    for offset, mask in flips:
        content[offset] ^= mask
    path = tmp_path / "raw.npy"
    path.write_bytes(bytes(content[:cut]))
    (tmp_path / "raw.json").write_text(json.dumps(_valid_sidecar()))
    assert napari_get_reader(str(path)) in (read_path, None)  # the hook itself never raises
    _only_our_error(lambda: load(path), "raw.npy", "raw.json")
    _only_our_error(lambda: read_path(str(path)), "raw.npy", "raw.json")


@pytest.fixture(scope="module")
def project_file(tmp_path_factory):
    rng = np.random.default_rng(3)
    cal = Calibration(
        energy_eV=200e3, semiangle_mrad=20.0, detector_sampling_mrad=1.2, scan_step=0.5, aberrations={"C30": 1e4}
    )
    scan = ScanData(
        rng.poisson(3, (12, 8, 8)).astype(np.float32),
        cal,
        positions=rng.random((12, 2)),
        tilt_deg=5.0,
        scan_shape=(3, 4),
    )
    project = Project(
        series=TiltSeries([scan], [5.0]), volumes={"v": Volume(rng.random((3, 4, 5)).astype(np.float32), 0.5)}
    )
    path = save(project, tmp_path_factory.mktemp("native") / "valid.ptycho.h5")
    attributes = []
    with h5py.File(path, "r") as fh:

        def collect(name, obj):
            for key in obj.attrs:
                if key not in ("members", "ptycho_type", "field_units", "format_version"):
                    attributes.append((name, key))

        fh.visititems(collect)
    return path.read_bytes(), sorted(attributes)


attribute_values = (
    st.integers(-5, 10**9)
    | st.floats()
    | st.text(max_size=6).map(lambda t: np.bytes_(t.encode()))
    | st.booleans().map(np.bool_)
    | st.lists(st.integers(-3, 20), min_size=0, max_size=4).map(np.array)
    | st.just(np.array([1 + 2j]))
)


@FUZZ
@given(data=st.data())
def test_project_with_replaced_attributes_gives_a_project_or_our_error(tmp_path, project_file, data):
    content, attributes = project_file
    path = tmp_path / "edited.ptycho.h5"
    path.write_bytes(content)
    edits = data.draw(st.lists(st.tuples(st.sampled_from(attributes), attribute_values), min_size=1, max_size=3))
    with h5py.File(path, "r+") as fh:
        for (member, key), value in edits:
            fh[member].attrs[key] = value
    project = _only_our_error(lambda: load(path, as_project=True), "edited.ptycho.h5")
    if project is not None:
        project.validate()
    _only_our_error(lambda: read_path(str(path)), "edited.ptycho.h5")


@pytest.fixture(scope="module")
def mrc_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("mrc") / "good.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.arange(60, dtype=np.float32).reshape(3, 4, 5))
        mrc.set_volume()
        mrc.voxel_size = 0.5
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_damaged_mrc_header_gives_a_volume_or_our_error(tmp_path, mrc_bytes, data):
    content = bytearray(mrc_bytes)
    flips = data.draw(st.lists(st.tuples(st.integers(0, 1023), st.integers(1, 255)), min_size=1, max_size=4))
    for offset, mask in flips:
        content[offset] ^= mask
    path = tmp_path / "edited.mrc"
    path.write_bytes(bytes(content))
    volume = _only_our_error(lambda: load(path), "edited.mrc")
    if isinstance(volume, Volume):
        volume.validate()
    _only_our_error(lambda: read_path(str(path)), "edited.mrc")
