"""Every writer, interrupted between writing its temporary file and renaming it into place,
leaves the previous file as it was and no temporary file behind."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from napari_ptychotomo import load, save
from napari_ptychotomo.data import Atoms, Calibration, ScanData, Volume
from napari_ptychotomo.io import PtychoFormatError, append_result, sidecar_path

CAL = Calibration(energy_eV=300e3, semiangle_mrad=25.0, detector_sampling_mrad=1.0, scan_step=0.5)


def _volume(value):
    return Volume(np.full((3, 4, 5), value, np.float32), 0.5)


def _atoms(value):
    return Atoms(np.full((3, 3), value), np.array([0, 1, 0]))


WRITES = {
    "project": ("p.ptycho.h5", lambda v: ScanData(np.full((4, 8, 8), v, np.float32), CAL, positions=np.zeros((4, 2)))),
    "mrc": ("v.mrc", _volume),
    "tiff": ("v.tif", _volume),
    "npy array": ("a.npy", lambda v: np.full((2, 8, 8), v, np.float32)),
    "xyz": ("a.xyz", _atoms),
    "csv": ("a.csv", _atoms),
}


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _interrupt_renames(monkeypatch):
    def interrupted(src, dst):
        raise KeyboardInterrupt("killed before the rename")

    monkeypatch.setattr(os, "replace", interrupted)


@pytest.mark.parametrize("kind", sorted(WRITES))
def test_write_into_a_missing_folder_names_the_file_and_the_folder_not_a_temporary(tmp_path, kind):
    name, make = WRITES[kind]
    path = tmp_path / "missing" / name
    with pytest.raises(PtychoFormatError, match="the folder .*missing' does not exist") as info:
        save(make(1.0), path)
    assert str(info.value).startswith(str(path)) and ".tmp" not in str(info.value)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("kind", sorted(WRITES))
def test_interrupted_write_keeps_the_previous_file_and_no_temporary(tmp_path, monkeypatch, kind):
    name, make = WRITES[kind]
    path = save(make(1.0), tmp_path / name)
    before = sorted(p.name for p in tmp_path.iterdir())
    digest = _digest(path)
    with monkeypatch.context() as m:
        _interrupt_renames(m)
        with pytest.raises(KeyboardInterrupt):
            save(make(2.0), path)
    assert _digest(path) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_interrupted_append_keeps_the_previous_results(tmp_path, monkeypatch):
    path = save(WRITES["project"][1](1.0), tmp_path / "p.ptycho.h5")
    append_result(path, _volume(1.0), name="first")
    digests = _digest(path), _digest(sidecar_path(path))
    with monkeypatch.context() as m:
        _interrupt_renames(m)
        with pytest.raises(KeyboardInterrupt):
            append_result(path, _volume(2.0), name="second")
    assert (_digest(path), _digest(sidecar_path(path))) == digests
    assert list(load(path, as_project=True).volumes) == ["first"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_interrupted_scan_npy_save_keeps_the_previous_pair(tmp_path, monkeypatch):
    scan = WRITES["project"][1](1.0)
    path = save(scan, tmp_path / "s.npy")
    digests = _digest(path), _digest(tmp_path / "s.json")
    with monkeypatch.context() as m:
        _interrupt_renames(m)
        with pytest.raises(KeyboardInterrupt):
            save(WRITES["project"][1](2.0), path)
    assert (_digest(path), _digest(tmp_path / "s.json")) == digests
    np.testing.assert_array_equal(np.asarray(load(path).intensities), scan.intensities)
