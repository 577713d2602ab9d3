"""Hostile files: wrong shapes, types and units, unreadable or oversized files, damaged
sidecars. Each is refused (or opened with a warning) by a message naming the file and the
field, never by a bare error from deep inside."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import mrcfile
import numpy as np
import pytest

from napari_ptychotomo import load, save
from napari_ptychotomo._napari.reader import napari_get_reader, read_path
from napari_ptychotomo.data import Calibration, Project, ScanData, TiltSeries, Volume
from napari_ptychotomo.io import PtychoFormatError, append_result, guards, sidecar_path

CAL = Calibration(energy_eV=300e3, semiangle_mrad=25.0, detector_sampling_mrad=1.0, scan_step=0.5)


def _save_unchecked(monkeypatch, obj, path):
    """Save ``obj`` skipping validation, as a damaged or foreign writer would."""
    with monkeypatch.context() as m:
        for cls in (ScanData, Calibration, Volume):
            m.setattr(cls, "validate", lambda self, *a, **k: self)
        return save(obj, path)


def _scan3d(n=16, scan_shape=None, dtype=np.float32, cal=CAL):
    rng = np.random.default_rng(0)
    data = rng.poisson(4, (n, 8, 8)).astype(dtype)
    return ScanData(data, cal, positions=rng.random((n, 2)) * 4, scan_shape=scan_shape)


# ------------------------------------------------------------------ 1. scan_shape
@pytest.mark.parametrize(
    "scan_shape, message",
    [
        ((7, 7), r"scan_shape = \(7, 7\) describes 49 positions but intensities hold 16"),
        ((-4, 4), r"scan_shape = \(-4, 4\); expected \(Ny, Nx\), two positive integers"),
    ],
)
def test_scan_shape_not_describing_the_patterns_is_refused_naming_file_and_field(
    tmp_path, monkeypatch, scan_shape, message
):
    path = _save_unchecked(monkeypatch, _scan3d(scan_shape=scan_shape), tmp_path / "s.ptycho.h5")
    with pytest.raises(PtychoFormatError, match=rf"s\.ptycho\.h5: .*{message}"):
        load(path)
    with pytest.raises(PtychoFormatError, match=rf"s\.ptycho\.h5: .*{message}"):
        read_path(str(path))
    with pytest.raises(ValueError, match=message):
        _scan3d(scan_shape=scan_shape).validate()


def test_scan_shape_of_a_4d_scan_must_be_its_raster():
    scan = ScanData(np.ones((2, 3, 8, 8), np.float32), CAL, scan_shape=(3, 2))
    with pytest.raises(ValueError, match=r"scan_shape = \(3, 2\) but intensities have shape"):
        scan.validate()


# ------------------------------------------------------------------ 2. sidecar fields
@pytest.mark.parametrize(
    "field, value, message",
    [
        ("positions", "abc", r"field 'positions': 'abc' is not a list of \[y, x\] pairs"),
        ("positions", [[0, 1], [2]], r"field 'positions': .* \(ragged, or holds non-numbers\)"),
        ("positions", [[0, 1]] * 3, r"field 'positions': 3 positions for 4 diffraction patterns"),
        ("tilt_deg", "ten", r"field 'tilt_deg': 'ten' is not a number; expected a number in degrees"),
        ("tilt_deg", {"value": 10}, r"field 'tilt_deg': \{'value': 10\} is not a number"),
        ("tilt_deg", 120.0, r"field 'tilt_deg': 120.0 is out of range"),
        ("aberrations", {"C30": "big"}, r"field 'aberrations.C30': 'big' is not a finite number"),
        ("aberrations", {"Cs": 1e4}, r"field 'aberrations.Cs': is not an aberration"),
        ("aberrations", [1, 2], r"field 'aberrations': \[1, 2\] is not a mapping"),
        ("enrgy_eV", 300e3, r"field 'enrgy_eV' is not a calibration name; did you mean 'energy_eV'\?"),
        ("energy_eV", 300, r"field 'energy_eV': 300 is out of range; expected ≥ 1000"),
        ("energy_eV", "300 keV", r"field 'energy_eV': '300 keV' is not a number"),
        ("semiangle_mrad", True, r"field 'semiangle_mrad': True is not a number"),
        ("scan_step", -0.5, r"field 'scan_step': -0.5 is out of range; expected > 0"),
    ],
)
def test_sidecar_fields_are_checked_naming_the_sidecar_and_the_field(tmp_path, field, value, message):
    np.save(tmp_path / "scan.npy", np.ones((2, 2, 8, 8), np.float32))
    values = {"energy_eV": 300e3, "semiangle_mrad": 25.0, "detector_sampling_mrad": 1.0, "scan_step": 0.5, field: value}
    (tmp_path / "scan.json").write_text(json.dumps(values))
    with pytest.raises(PtychoFormatError, match=rf"scan\.json: {message}"):
        load(tmp_path / "scan.npy")
    with pytest.raises(PtychoFormatError, match=rf"scan\.json: {message}"):
        read_path(str(tmp_path / "scan.npy"))


def test_keyword_calibration_is_checked_like_the_sidecar(tmp_path):
    np.save(tmp_path / "scan.npy", np.ones((2, 2, 8, 8), np.float32))
    with pytest.raises(PtychoFormatError, match=r"scan\.npy: keyword 'semiangle_mrad': 'wide'"):
        load(tmp_path / "scan.npy", energy_eV=300e3, semiangle_mrad="wide", detector_sampling_mrad=1.0, scan_step=0.5)


# ------------------------------------------------------------------ 3. empty .npy
def test_empty_npy_is_refused_naming_the_file_by_the_reader_hook_and_load(tmp_path):
    path = tmp_path / "empty.npy"
    path.write_bytes(b"")
    reader = napari_get_reader(str(path))
    assert reader is read_path  # claimed, so our reader (not napari's) says what is wrong
    with pytest.raises(PtychoFormatError, match=r"empty\.npy: file is empty \(0 bytes\)"):
        reader(str(path))
    with pytest.raises(PtychoFormatError, match=r"empty\.npy: file is empty"):
        load(path, **{"energy_eV": 300e3, "semiangle_mrad": 25.0, "detector_sampling_mrad": 1.0})


@pytest.mark.parametrize("name", ["scan.npy", "scan.npz"])
def test_another_format_named_npy_is_refused_without_numpys_pickle_advice(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # a PNG renamed
    with pytest.raises(
        PtychoFormatError, match=r"scan\.np[yz]: not a numpy \.np[yz] file: it starts with b'\\x89P"
    ) as info:
        load(path, energy_eV=300e3, semiangle_mrad=25.0, detector_sampling_mrad=1.0)
    assert "pickle" not in str(info.value)


# ------------------------------------------------------------------ 4. types in native files
@pytest.mark.parametrize("dtype, name", [(np.complex64, "complex64"), (np.bool_, "bool")])
def test_complex_or_bool_intensities_in_a_project_are_refused(tmp_path, monkeypatch, dtype, name):
    path = _save_unchecked(monkeypatch, _scan3d(dtype=dtype), tmp_path / "k.ptycho.h5")
    with pytest.raises(PtychoFormatError, match=rf"k\.ptycho\.h5: .*intensities have dtype {name}"):
        load(path)


def test_empty_volume_in_a_project_is_refused(tmp_path, monkeypatch):
    path = _save_unchecked(monkeypatch, Volume(np.zeros((0, 0, 0), np.float32), 0.5), tmp_path / "v.ptycho.h5")
    with pytest.raises(PtychoFormatError, match=r"v\.ptycho\.h5: .*data has shape \(0, 0, 0\)"):
        load(path)


def test_energy_stored_as_text_in_a_project_is_refused(tmp_path, monkeypatch):
    cal = Calibration(energy_eV="300000", semiangle_mrad=25.0, detector_sampling_mrad=1.0)
    path = _save_unchecked(monkeypatch, _scan3d(cal=cal), tmp_path / "e.ptycho.h5")
    with pytest.raises(
        PtychoFormatError,
        match=r"e\.ptycho\.h5: .*energy_eV = '300000' \(str\); "
        "expected a number in eV",
    ):
        load(path)


def _sampled_away_nan(tmp_path, n=200):
    """A project whose only NaN lies in a pattern that opening does not sample."""
    scan = _scan3d(n=n)
    sampled = set(np.linspace(0, n - 1, 64).astype(int)) | set(np.linspace(0, n - 1, 8).astype(int))
    hidden = next(i for i in range(n) if i not in sampled)
    scan.intensities[hidden, 3, 3] = np.nan
    return save(scan, tmp_path / "nan.ptycho.h5"), hidden


def test_unsampled_nan_is_reported_by_info_refused_when_read_and_by_the_reader(tmp_path, capsys):
    from napari_ptychotomo.cli import main

    path, hidden = _sampled_away_nan(tmp_path)
    scan = load(path)  # opening samples the patterns: this one is not among them
    with pytest.raises(
        ValueError,
        match=rf"nan\.ptycho\.h5: intensities: pattern\(s\) \[{hidden}\] "
        "hold NaN",
    ):
        scan.patterns([hidden])
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: counts checked for NaN / inf / negative values on 64 sampled patterns" in out
    assert main(["info", "--full", str(path)]) == 3
    assert "nan.ptycho.h5" in capsys.readouterr().err
    with pytest.raises(PtychoFormatError, match=r"nan\.ptycho\.h5: .*hold NaN or infinite counts"):
        read_path(str(path))


def test_nan_in_a_sampled_npy_pattern_names_the_file_once(tmp_path):
    intensities = np.ones((4, 4, 8, 8), np.float32)
    intensities[0, 0, 3, 3] = np.nan
    np.save(tmp_path / "nan.npy", intensities)
    with pytest.raises(PtychoFormatError) as info:
        load(tmp_path / "nan.npy", energy_eV=300e3, semiangle_mrad=25.0, detector_sampling_mrad=1.0, scan_step=0.5)
    assert str(info.value).count("nan.npy") == 1
    assert str(info.value) == f"{tmp_path / 'nan.npy'}: {info.value.reason}"
    assert info.value.reason.startswith("intensities: pattern(s) [0] hold NaN")


# ------------------------------------------------------------------ 5. MRC values
def _mrc(path, data, voxel):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.set_volume()
        mrc.voxel_size = voxel
    return path


def test_all_nan_mrc_is_refused(tmp_path):
    path = _mrc(tmp_path / "nan.mrc", np.full((4, 4, 4), np.nan, np.float32), 0.5)
    with pytest.raises(PtychoFormatError, match=r"nan\.mrc: data holds 64 NaN or infinite value"):
        load(path)
    with pytest.raises(PtychoFormatError, match=r"nan\.mrc: data holds 64 NaN"):
        read_path(str(path))


def test_negative_mrc_voxel_size_is_refused(tmp_path):
    path = _mrc(tmp_path / "neg.mrc", np.ones((4, 4, 4), np.float32), -0.5)
    with pytest.raises(PtychoFormatError, match=r"neg\.mrc: header voxel size is -0\.5 Å"):
        load(path)


# ------------------------------------------------------------------ 6. declared sizes
def test_small_file_declaring_a_huge_volume_is_refused_before_allocating(tmp_path, monkeypatch):
    path = save(Volume(np.ones((2, 2, 2), np.float32), 0.5), tmp_path / "huge.ptycho.h5")
    with h5py.File(path, "r+") as fh:
        found = []
        fh.visititems(lambda name, obj: found.append(name) if name.endswith("/data") else None)
        name = found[0]
        del fh[name]  # never written: no chunk stored, the file stays small
        fh.create_dataset(
            name,
            shape=(1200, 1200, 1200),
            dtype=np.float32,
            chunks=(1, 1200, 1200),
            compression="gzip",
            fletcher32=True,
        )
    assert path.stat().st_size < 64 << 10
    monkeypatch.setattr(guards, "available_memory", lambda: 2 << 30)
    with pytest.raises(
        PtychoFormatError,
        match=r"huge\.ptycho\.h5: .*data: declares 1200×1200×1200 "
        r"float32 \(6\.4 GiB\), more than the 2\.0 GiB of memory available",
    ):
        load(path)


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="Linux only")
def test_available_memory_is_the_smallest_known_limit():
    free = guards.available_memory()
    assert 0 < free < 1 << 62
    with open("/proc/meminfo") as fh:
        meminfo = dict(line.split(":", 1) for line in fh)
    assert free <= int(meminfo["MemAvailable"].split()[0]) * 1024


# ------------------------------------------------------------------ 7. permissions
def test_unreadable_file_says_permission_denied(tmp_path, monkeypatch):
    path = save(_scan3d(), tmp_path / "locked.ptycho.h5")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(guards.os, "open", denied)
    with pytest.raises(PtychoFormatError, match=r"locked\.ptycho\.h5: permission denied"):
        load(path)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads every file whatever its permissions"
)
def test_unreadable_file_says_permission_denied_for_real(tmp_path):
    path = save(_scan3d(), tmp_path / "locked.ptycho.h5")
    path.chmod(0)
    try:
        with pytest.raises(PtychoFormatError, match=r"locked\.ptycho\.h5: permission denied"):
            load(path)
    finally:
        path.chmod(0o644)


# ------------------------------------------------------------------ 8. damaged results sidecar
def test_damaged_results_sidecar_opens_the_raw_data_with_a_warning(tmp_path):
    scan = _scan3d()
    path = save(Project(series=TiltSeries([scan], [0.0])), tmp_path / "p.ptycho.h5")
    append_result(path, Volume(np.ones((2, 2, 2), np.float32), 0.5), name="later")
    side = sidecar_path(path)
    content = bytearray(side.read_bytes())
    side.write_bytes(bytes(content[:200]))  # cut short
    with pytest.warns(UserWarning, match=r"p\.ptycho-results\.h5: results sidecar is damaged"):
        project = load(path)
    np.testing.assert_array_equal(np.asarray(project.series.scans[0].intensities), scan.intensities)
    assert project.volumes == {}
    with pytest.raises(PtychoFormatError, match=r"p\.ptycho-results\.h5: .*move it away"):
        append_result(path, Volume(np.ones((2, 2, 2), np.float32), 0.5), name="more")


# ------------------------------------------------------------------ 9. stale temporary files
def test_next_save_removes_temporary_files_of_killed_saves_only(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)  # this process has exited
    target = tmp_path / "t.ptycho.h5"
    stale = tmp_path / f".t.ptycho.h5.{dead}.0123abcd.tmp"
    live = tmp_path / f".t.ptycho.h5.{os.getppid()}.89abcdef.tmp"  # a running writer
    other = tmp_path / f".u.ptycho.h5.{dead}.0123abcd.tmp"  # another file's
    for p in (stale, live, other):
        p.write_bytes(b"x" * 1000)
    with pytest.warns(
        UserWarning,
        match=rf"{stale.name}: removed the temporary file \(1000 bytes\) "
        rf"of an earlier save of t\.ptycho\.h5 that did not finish \(process {dead}",
    ):
        save(_scan3d(), target)
    assert not stale.exists() and live.exists() and other.exists()


# ------------------------------------------------------------------ 10. npy + json pairs
def test_npy_pair_saved_together_loads(tmp_path):
    path = save(_scan3d(), tmp_path / "pair.npy")
    assert "array" in json.loads((tmp_path / "pair.json").read_text())
    loaded = load(path)
    np.testing.assert_array_equal(np.asarray(loaded.intensities), _scan3d().intensities)


def test_npy_replaced_beside_its_old_sidecar_is_refused(tmp_path):
    path = save(_scan3d(), tmp_path / "pair.npy")
    np.save(path, np.zeros((16, 8, 8), np.float32))
    with pytest.raises(
        PtychoFormatError,
        match=r"pair\.json: field 'array': this calibration was "
        r"written for a different pair\.npy",
    ):
        load(path)


def test_save_killed_between_the_two_renames_leaves_a_refused_pair(tmp_path, monkeypatch):
    path = save(_scan3d(), tmp_path / "pair.npy")
    real = os.replace
    calls = []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the sidecar is in place, the array not yet
        return real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(KeyboardInterrupt):
        save(_scan3d(n=12), path)
    monkeypatch.setattr(os, "replace", real)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(PtychoFormatError, match=r"pair\.json: field 'array'.*interrupted"):
        load(path)


def test_structure_is_checked_even_without_value_checks(tmp_path, monkeypatch):
    path = _save_unchecked(monkeypatch, _scan3d(scan_shape=(7, 7)), tmp_path / "n.ptycho.h5")
    with pytest.raises(PtychoFormatError, match=r"n\.ptycho\.h5: .*scan 0: scan_shape = \(7, 7\)"):
        load(path, validate="none")


def test_reading_lazy_intensities_whole_is_checked_against_memory(tmp_path, monkeypatch):
    scan = load(save(_scan3d(), tmp_path / "m.ptycho.h5"))
    monkeypatch.setattr(guards, "available_memory", lambda: 1000)
    assert scan.patterns([0, 1]).shape == (2, 8, 8)  # batches are read as before
    with pytest.raises(
        PtychoFormatError,
        match=r"m\.ptycho\.h5: .*intensities: declares 16×8×8 "
        r"float32 \(4\.0 KiB\), more than the 1000 bytes of memory available",
    ):
        np.asarray(scan.intensities)
