"""The native .ptycho.h5 project file: exact round trips, layout, lazy reads, results."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import warnings

import h5py
import numpy as np
import pytest
from io_cases import assert_identical, make_defocus_series, make_project

from napari_ptychotomo import load, save
from napari_ptychotomo.data import Alignment, Atoms, Project, ScanData, TiltSeries, Volume
from napari_ptychotomo.io import (
    LazyDataset,
    PtychoFormatError,
    append_result,
    close,
    open_project,
    sidecar_path,
)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_project_round_trip_is_bit_exact(tmp_path, project):
    path = save(project, tmp_path / "study.ptycho.h5")
    loaded = load(path)
    assert isinstance(loaded, Project)
    assert_identical(project, loaded)


@pytest.mark.parametrize("pick", ["series", "scan", "defocus", "msp", "alignment", "volume", "resolution", "atoms"])
def test_every_single_object_round_trips_as_itself(tmp_path, project, pick):
    obj = {
        "series": project.series,
        "scan": project.series.scans[0],
        "defocus": make_defocus_series(),
        "msp": project.msp[1],
        "alignment": project.alignment,
        "volume": project.volumes["linear"],
        "resolution": project.resolution["linear"],
        "atoms": project.atoms["traced"],
    }[pick]
    path = save(obj, tmp_path / f"{pick}.ptycho.h5")
    assert_identical(obj, load(path))


def test_defocus_series_in_a_tilt_series_round_trips(tmp_path):
    series = TiltSeries([make_defocus_series(0), make_defocus_series(1)], [-10.0, 10.0])
    assert_identical(series, load(save(series, tmp_path / "hrtem.ptycho.h5")))


def test_file_is_versioned_self_describing_and_chunked_per_pattern(tmp_path, project):
    path = save(project, tmp_path / "study.ptycho.h5")
    with h5py.File(path, "r") as fh:
        assert fh.attrs["format_version"] == b"1.0"
        assert fh.attrs["root_object"] == b"Project"
        cal = fh["series/scans/0/calibration"]
        assert cal.attrs["energy_eV"] == 300e3
        units = json.loads(cal.attrs["field_units"])
        assert units["energy_eV"] == "eV" and units["semiangle_mrad"] == "mrad"
        assert units["defocus"] == "angstrom"
        intensities = fh["series/scans/0/intensities"]
        assert intensities.chunks == (1, 4, 16, 16)  # whole patterns per chunk
        assert intensities.compression == "gzip" and intensities.fletcher32
        assert intensities.attrs["units"] == b"counts"
        assert fh["series/scans/1/positions"].attrs["units"] == b"angstrom"
        assert fh["msp/1/object"].attrs["units"] == b"V*angstrom"
        assert fh["volumes/linear/data"].attrs["units"] == b"V"
        assert fh["volumes/linear/halves/1"].shape == (4, 5, 6)
        assert json.loads(fh["alignment"].attrs["field_units"])["euler_deg"] == "deg"
        assert fh["volumes/linear"].attrs["units"] == b"V"  # Volume.units, the value unit
        assert fh["volumes/linear/halves/0"].attrs["units"] == b"V"


def test_intensities_load_lazily_and_read_only_requested_patterns(tmp_path, project):
    path = save(project, tmp_path / "study.ptycho.h5")
    loaded = load(path)
    scan = loaded.series.scans[0]
    assert isinstance(scan.intensities, LazyDataset)
    assert scan.intensities.shape == (3, 4, 16, 16) and scan.scan_shape == (3, 4)
    expected = project.series.scans[0].intensities.reshape(12, 16, 16)
    np.testing.assert_array_equal(scan.patterns([7, 2]), expected[[7, 2]])
    flat = loaded.series.scans[1]
    np.testing.assert_array_equal(flat.patterns([5, 1]), project.series.scans[1].intensities[[5, 1]])
    close(loaded)
    with pytest.raises(PtychoFormatError, match="study.ptycho.h5"):
        scan.intensities[0]


def test_lazy_dataset_pickles_by_path(tmp_path, project):
    path = save(project, tmp_path / "study.ptycho.h5")
    with open_project(path) as loaded:
        copy = pickle.loads(pickle.dumps(loaded.series.scans[0].intensities))
        np.testing.assert_array_equal(copy[1, 2], project.series.scans[0].intensities[1, 2])
        copy.close()


def test_eager_load_closes_the_file(tmp_path, project):
    path = save(project, tmp_path / "study.ptycho.h5")
    loaded = load(path, lazy=False)
    assert isinstance(loaded.series.scans[0].intensities, np.ndarray)
    assert_identical(project, loaded)


def test_append_result_leaves_the_project_file_untouched(tmp_path, project):
    path = save(project, tmp_path / "study.ptycho.h5")
    before = _digest(path)
    extra = Volume(np.ones((2, 3, 4), np.float32), 0.5, units="rad")
    append_result(path, extra, name="end-to-end")
    save(Atoms(np.zeros((1, 3)), np.zeros(1, int)), path, name="refined")  # save() appends too
    append_result(path, Alignment(np.ones((2, 3)), np.zeros((2, 2))))
    assert _digest(path) == before  # raw data (and the whole file) not rewritten
    loaded = load(path)
    assert list(loaded.volumes) == ["linear", "end-to-end"]
    assert_identical(extra, loaded.volumes["end-to-end"])
    assert_identical(project.volumes["linear"], loaded.volumes["linear"])
    assert_identical(project.msp, loaded.msp)
    assert list(loaded.atoms) == ["traced", "refined"]
    np.testing.assert_array_equal(loaded.alignment.euler_deg, np.ones((2, 3)))
    assert_identical(project.series, loaded.series)


def test_append_replaces_a_result_of_the_same_name(tmp_path, project):
    path = save(project, tmp_path / "study.ptycho.h5")
    newer = Volume(np.full((2, 2, 2), 7.0, np.float32), 1.0)
    append_result(path, newer, name="linear")
    append_result(path, project.msp[1], name=4)
    loaded = load(path)
    assert list(loaded.volumes) == ["linear"]
    assert_identical(newer, loaded.volumes["linear"])
    assert sorted(loaded.msp) == [1, 4]


def test_saving_a_loaded_project_back_rewrites_only_results(tmp_path, project):
    path = save(project, tmp_path / "study.ptycho.h5")
    before = _digest(path)
    loaded = load(path)
    del loaded.volumes["linear"]
    loaded.volumes["other"] = Volume(np.zeros((2, 2, 2)), 1.0)
    save(loaded, path)
    assert _digest(path) == before
    again = load(path)
    assert list(again.volumes) == ["other"]
    # a changed calibration is a change of the raw data's description: full rewrite
    again.series.scans[0].calibration.defocus = 80.0
    save(again, path)
    assert _digest(path) != before and not sidecar_path(path).exists()
    final = load(path)
    assert final.series.scans[0].calibration.defocus == 80.0 and list(final.volumes) == ["other"]
    np.testing.assert_array_equal(np.asarray(final.series.scans[0].intensities), project.series.scans[0].intensities)


def test_a_stale_results_sidecar_is_ignored(tmp_path, project):
    path = save(project, tmp_path / "study.ptycho.h5")
    append_result(path, Volume(np.zeros((2, 2, 2)), 1.0), name="old")
    stale = sidecar_path(path).read_bytes()
    save(project, path)  # a new project file of the same name
    sidecar_path(path).write_bytes(stale)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load(path)
    assert "old" not in loaded.volumes
    assert any("older" in str(w.message) for w in caught)


def test_single_volume_file_becomes_a_project_when_results_are_added(tmp_path, project):
    path = save(project.volumes["linear"], tmp_path / "v.ptycho.h5")
    assert isinstance(load(path), Volume)
    append_result(path, Volume(np.zeros((2, 2, 2)), 1.0), name="second")
    loaded = load(path)
    assert isinstance(loaded, Project) and list(loaded.volumes) == ["volume", "second"]


def test_scan_with_lazy_intensities_from_another_project_saves_elsewhere(tmp_path, project):
    first = save(project, tmp_path / "a.ptycho.h5")
    scan = load(first).series.scans[0]
    second = save(scan, tmp_path / "b.ptycho.h5")
    assert_identical(project.series.scans[0], load(second))


def test_append_needs_an_existing_project_and_a_tilt_index(tmp_path, project):
    with pytest.raises(PtychoFormatError, match="save the project first"):
        append_result(tmp_path / "none.ptycho.h5", project.volumes["linear"], name="x")
    path = save(project, tmp_path / "study.ptycho.h5")
    with pytest.raises(TypeError, match="tilt index"):
        append_result(path, project.msp[1])
    with pytest.raises(TypeError, match="tilt index"):
        save(project.msp[1], path)  # into a project: which tilt is not guessed


def test_saving_a_result_again_where_it_was_saved_alone_overwrites_it(tmp_path, project):
    """A script re-run saves its result to the same file: the file holds the new result
    (and loads as that result), never a project of both, and no error."""
    path = tmp_path / "tilt0.ptycho.h5"
    first = project.msp[1]
    second = dataclasses.replace(first, tilt_mrad=first.tilt_mrad + 1.0, loss_history=[0.5])
    save(first, path)
    save(second, path)
    again = load(path)
    assert isinstance(again, type(second))
    assert_identical(second, again)
    volume = tmp_path / "volume.ptycho.h5"
    save(project.volumes["linear"], volume)
    newer = Volume(np.ones((2, 3, 4), np.float32), 0.5, units="rad")
    save(newer, volume)
    assert_identical(newer, load(volume))
    # a file of another kind, or one results were added to, is a project: appended to
    save(newer, path, name="extra")
    both = load(path, as_project=True)
    assert list(both.volumes) == ["extra"] and list(both.msp) == [0]
    # a file not written by this package is never overwritten
    foreign = tmp_path / "raw.ptycho.h5"  # named like ours, written by another program
    with h5py.File(foreign, "w") as fh:
        fh["data"] = np.zeros(3)
    with pytest.raises(PtychoFormatError, match="not a napari-ptychotomo project"):
        save(newer, foreign)
    with h5py.File(foreign, "r") as fh:
        assert list(fh) == ["data"]


def test_invalid_objects_are_refused_before_writing(tmp_path, project):
    bad = Volume(np.full((2, 2, 2), np.nan), 1.0)
    with pytest.raises(PtychoFormatError, match="NaN"):
        save(bad, tmp_path / "bad.ptycho.h5")
    assert not list(tmp_path.iterdir())


def test_scan_validation_on_load_warns_of_a_few_negative_counts_and_refuses_no_signal(tmp_path):
    cal = make_project().series.scans[0].calibration
    scan = ScanData(np.ones((2, 2, 8, 8), np.float32), cal)
    path = save(scan, tmp_path / "s.ptycho.h5")
    with h5py.File(path, "r+") as fh:  # damage the data behind the writer's back
        fh["series/scans/0/intensities"][0, 0, 0, 0] = -5.0
    with pytest.warns(UserWarning, match="scan 0: intensities: 1 of 64 sampled values are negative"):
        assert load(path).intensities.shape == (2, 2, 8, 8)
    with h5py.File(path, "r+") as fh:
        fh["series/scans/0/intensities"][...] = -1.0
    with pytest.raises(PtychoFormatError, match="negative counts"):
        load(path)
    assert load(path, validate="none").intensities.shape == (2, 2, 8, 8)


def test_the_file_stays_open_exactly_as_long_as_lazy_arrays_live(tmp_path, project):
    import gc

    def open_files():
        return h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)

    path = save(project, tmp_path / "study.ptycho.h5")
    baseline = open_files()
    loaded = load(path)
    gc.collect()
    assert open_files() == baseline + 1
    del loaded
    gc.collect()
    assert open_files() == baseline
    load(path, lazy=False)
    assert open_files() == baseline
