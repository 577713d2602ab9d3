"""Cases of the io tests: a full example Project, a defocus series and exact comparison.

A module of its own name (not ``conftest``), so test files import it unambiguously whichever
test folders run together."""

from __future__ import annotations

import dataclasses

import numpy as np

from napari_ptychotomo.data import (
    Alignment,
    Atoms,
    Calibration,
    DefocusSeries,
    MSPResult,
    Project,
    Resolution,
    ScanData,
    TiltSeries,
    Volume,
)
from napari_ptychotomo.io import LazyDataset


def assert_identical(a, b, where="obj"):
    """Bit-exact equality: same types (lazy arrays count as arrays), dtypes and values."""
    if isinstance(a, LazyDataset) or isinstance(b, LazyDataset):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        assert a_arr.dtype == b_arr.dtype, where
        assert a_arr.shape == b_arr.shape, where
        assert a_arr.tobytes() == b_arr.tobytes(), where
        return
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert type(k) is type(next(x for x in b if x == k)), f"{where}: key type {k!r}"
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), (
            f"{where}: {a.dtype}{np.shape(a)} vs {b.dtype}{np.shape(b)}"
        )
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), f"{where}: values differ"
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def make_project(seed: int = 0) -> Project:
    """A small Project exercising every object, dtype and optional field."""
    rng = np.random.default_rng(seed)
    cal = Calibration(
        energy_eV=300e3,
        semiangle_mrad=25.0,
        detector_sampling_mrad=1.0,
        defocus=150.0,
        scan_step=0.4,
        aberrations={"C30": 1.2e4, "phi12": 0.3},
        scan_rotation_deg=2.5,
    )
    scan4d = ScanData(
        rng.poisson(5, (3, 4, 16, 16)).astype(np.uint16),
        cal,
        tilt_deg=-30.0,
        truth={
            "mistilt_mrad": np.array([4.0, 0.0]),
            "thickness": 30.0,
            "name": "SrTiO3",
            "n_slices": 3,
            "ok": True,
            "none": None,
            "weights": [0.5, 0.25],
            "nested": {"a": np.float32(1.5)},
        },
    )
    scan3d = ScanData(
        rng.random((12, 16, 12), dtype=np.float32),
        cal,
        positions=rng.random((12, 2)) * 5,
        tilt_deg=30.0,
        scan_shape=(3, 4),
    )
    series = TiltSeries([scan4d, scan3d], np.array([-30.0, 30.0]), truth={"volume_shape": (4, 5, 6)})
    msp = MSPResult(
        object=(rng.random((2, 8, 8)) + 1j * rng.random((2, 8, 8))).astype(np.complex64),
        probe=rng.random((2, 16, 16)).astype(np.complex64),
        positions=rng.random((12, 2)),
        tilt_mrad=np.array([1.0, -2.0]),
        slice_thickness=5.0,
        pixel_size=0.3,
        energy_eV=300e3,
        tilt_map=rng.random((12, 2)),
        loss_history=[1.0, 0.5, 0.25],
        tilt_deg=30.0,
        scan_shape=(3, 4),
        provenance={"iterations": 10, "seed": 1},
    )
    volume = Volume(
        rng.random((4, 5, 6)).astype(np.float32),
        0.3,
        origin=np.array([1.0, 2.0, 3.0]),
        halves=(rng.random((4, 5, 6)).astype(np.float32), rng.random((4, 5, 6)).astype(np.float32)),
        units="V",
        provenance={"step": "linear", "angles": [-30.0, 30.0]},
    )
    resolution = Resolution(
        frequency=np.linspace(0, 1, 6),
        fsc=rng.random(6),
        crossings={"half_bit": 2.5, "0.143": float("nan")},
        thresholds={"half_bit": rng.random(6)},
        shell_counts=np.arange(6),
        directional={"z": {"fsc": rng.random(6), "crossings": {"half_bit": 3.0}}},
    )
    atoms = Atoms(
        rng.random((5, 3)) * 10,
        np.array([0, 1, 1, 0, 2]),
        intensities=rng.random(5),
        widths=rng.random(5),
        names=["O", "Ti", "Sr"],
    )
    return Project(
        series=series,
        msp={1: msp},
        alignment=Alignment.from_angles([-30.0, 30.0]),
        volumes={"linear": volume},
        resolution={"linear": resolution},
        atoms={"traced": atoms},
        provenance={"created_by": "test", "version": 1},
    )


def make_defocus_series(seed: int = 0) -> DefocusSeries:
    rng = np.random.default_rng(seed)
    return DefocusSeries(
        rng.random((3, 8, 8), dtype=np.float32),
        np.array([0.0, 50.0, 100.0]),
        pixel_size=0.2,
        energy_eV=300e3,
        tilt_deg=10.0,
    )
