"""A plane-wave series' optics travel through the native file, with their units."""

from __future__ import annotations

import dataclasses
import json

import h5py
import pytest
from io_cases import assert_identical, make_defocus_series

from napari_ptychotomo import load, save
from napari_ptychotomo.data import TiltSeries
from napari_ptychotomo.io import PtychoFormatError

OPTICS = dict(
    aperture_mrad=19.0,
    aberrations={"C30": 1.2e5, "C12": 25.0, "phi12": 0.7},
    focal_spread=35.0,
    illumination_semiangle_mrad=0.3,
    defocus_reference="exit",
)


def test_optics_round_trip_bit_exact_with_units(tmp_path):
    series = TiltSeries([dataclasses.replace(make_defocus_series(k), **OPTICS) for k in range(2)], [-10.0, 10.0])
    path = save(series, tmp_path / "hrtem.ptycho.h5")
    loaded = load(path)
    assert_identical(series, loaded)
    assert loaded.scans[1].aberrations == OPTICS["aberrations"]
    with h5py.File(path, "r") as fh:
        units = json.loads(fh["series/scans/0"].attrs["field_units"])
    assert units["aperture_mrad"] == "mrad" and units["focal_spread"].startswith("angstrom")
    assert units["illumination_semiangle_mrad"].startswith("mrad")


def test_no_aperture_round_trips_as_none(tmp_path):
    stack = dataclasses.replace(make_defocus_series(), aperture_mrad=None, defocus_reference="centre")
    loaded = load(save(stack, tmp_path / "open.ptycho.h5"))
    assert loaded.aperture_mrad is None and loaded.defocus_reference == "centre"


def test_a_file_without_the_optics_fields_reads_as_the_exit_surface_convention(tmp_path):
    """Files from before the optics existed: no aperture, no envelopes, defocus from the
    exit surface (the only convention then)."""
    path = save(make_defocus_series(), tmp_path / "old.ptycho.h5")
    with h5py.File(path, "r+") as fh:
        group = fh["series/scans/0"]
        members = json.loads(group.attrs["members"])
        for name in (
            "aperture_mrad",
            "aberrations",
            "focal_spread",
            "illumination_semiangle_mrad",
            "defocus_reference",
        ):
            if name in group:
                del group[name]
            group.attrs.pop(name, None)
        group.attrs["members"] = json.dumps(
            _drop(
                members,
                {"aperture_mrad", "aberrations", "focal_spread", "illumination_semiangle_mrad", "defocus_reference"},
            )
        )
    loaded = load(path)
    assert loaded.defocus_reference == "exit" and loaded.aperture_mrad is None
    assert loaded.aberrations == {} and loaded.focal_spread == 0.0


def _drop(members, names):
    if isinstance(members, list):
        return [
            m
            for m in members
            if not (isinstance(m, (list, tuple)) and m and m[0] in names)
            and not (isinstance(m, dict) and m.get("name") in names)
        ]
    return {k: v for k, v in members.items() if k not in names}


def test_saving_bad_optics_names_the_field(tmp_path):
    stack = dataclasses.replace(make_defocus_series(), aperture_mrad=-5.0)
    with pytest.raises(PtychoFormatError, match="aperture_mrad"):
        save(stack, tmp_path / "bad.ptycho.h5")
