"""Damaged project files give PtychoFormatError, never another exception, crash or hang.

Random bytes of a small valid file are flipped, or the file is cut short; reading it (and
then every lazily read pattern) must either succeed or raise PtychoFormatError. All
metadata sits in checksummed HDF5 object headers and all bulk data carries Fletcher-32,
so damage is detected rather than misread.
"""

from __future__ import annotations

import faulthandler

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_ptychotomo import load, save
from napari_ptychotomo.data import (
    Atoms,
    Calibration,
    MSPResult,
    Project,
    ScanData,
    TiltSeries,
    Volume,
)
from napari_ptychotomo.io import PtychoFormatError, sidecar_path

FUZZ = settings(
    max_examples=25, deadline=5000, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory):
    rng = np.random.default_rng(1)
    cal = Calibration(
        energy_eV=200e3, semiangle_mrad=20.0, detector_sampling_mrad=1.2, scan_step=0.5, aberrations={"C30": 1e4}
    )
    scan = ScanData(
        rng.poisson(3, (2, 3, 8, 8)).astype(np.float32), cal, tilt_deg=5.0, truth={"thickness": 20.0, "label": "fuzz"}
    )
    msp = MSPResult(
        np.ones((1, 4, 4), np.complex64),
        np.ones((1, 8, 8), np.complex64),
        rng.random((6, 2)),
        np.zeros(2),
        2.0,
        0.5,
        200e3,
        loss_history=[1.0, 0.5],
    )
    project = Project(
        series=TiltSeries([scan], [5.0]),
        msp={0: msp},
        volumes={"v": Volume(rng.random((3, 4, 5)).astype(np.float32), 0.5)},
        atoms={"a": Atoms(rng.random((3, 3)), np.array([0, 1, 0]), names=["O", "Ti"])},
    )
    path = save(project, tmp_path_factory.mktemp("fuzz") / "valid.ptycho.h5")
    return path, path.read_bytes()


def _read_everything(path):
    faulthandler.dump_traceback_later(60, exit=True)  # a hang fails loudly instead
    try:
        try:
            project = load(path, as_project=True)
        except PtychoFormatError:
            return "refused"
        for scan in project.series.scans if project.series else []:
            try:
                np.asarray(scan.intensities)
            except PtychoFormatError:
                return "refused on read"
        return "read"
    finally:
        faulthandler.cancel_dump_traceback_later()


@FUZZ
@given(data=st.data())
def test_flipped_bytes_give_only_our_error(tmp_path, valid_file, data):
    source, content = valid_file
    damaged = bytearray(content)
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(content) - 1), st.integers(1, 255)), min_size=1, max_size=8)
    )
    for offset, mask in flips:
        damaged[offset] ^= mask
    path = tmp_path / "damaged.ptycho.h5"
    sidecar_path(path).unlink(missing_ok=True)
    path.write_bytes(bytes(damaged))
    _read_everything(path)  # any exception but PtychoFormatError fails the test


@FUZZ
@given(fraction=st.floats(0.0, 0.999))
def test_truncated_files_give_only_our_error(tmp_path, valid_file, fraction):
    source, content = valid_file
    path = tmp_path / "cut.ptycho.h5"
    path.write_bytes(content[: int(len(content) * fraction)])
    with pytest.raises(PtychoFormatError, match="cut.ptycho.h5"):
        load(path)


def test_a_non_hdf5_file_is_named_in_the_error(tmp_path):
    path = tmp_path / "notes.ptycho.h5"
    path.write_text("not hdf5")
    with pytest.raises(PtychoFormatError, match=r"notes\.ptycho\.h5.*not a readable HDF5"):
        load(path)
