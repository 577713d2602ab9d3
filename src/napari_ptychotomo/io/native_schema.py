"""How each data object of :mod:`..data` is laid out in a ``.ptycho.h5`` file.

A data object is one HDF5 group with the text attribute ``ptycho_type`` (the class name),
``members`` (field order and tags, see :mod:`.h5tree`) and ``field_units`` (JSON map
field -> unit); each dataclass field is a member of the group: arrays are datasets with their own
``units`` attribute, scalars and strings are attributes, nested objects and dicts are
subgroups. 4D-STEM intensities are chunked per diffraction pattern (or per batch of
patterns for small detectors, about 1 MiB a chunk) and read back lazily.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import h5py
import numpy as np

from ..data import (
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
from .guards import check_fits
from .h5tree import get_text, read_members, set_text, write_dataset, write_members
from .lazy import LazyDataset

__all__ = ["FORMAT_VERSION", "DATA_CLASSES", "UNITS", "intensity_chunks", "Codec"]

FORMAT_VERSION = "1.0"

DATA_CLASSES = {
    cls.__name__: cls
    for cls in (
        Calibration,
        ScanData,
        DefocusSeries,
        TiltSeries,
        MSPResult,
        Alignment,
        Volume,
        Resolution,
        Atoms,
        Project,
    )
}

#: unit of each field, written to the ``units`` attributes (ASCII spellings)
UNITS: dict[str, dict[str, str]] = {
    "Calibration": {
        "energy_eV": "eV",
        "semiangle_mrad": "mrad",
        "detector_sampling_mrad": "mrad/pixel",
        "defocus": "angstrom",
        "scan_step": "angstrom",
        "scan_rotation_deg": "deg",
        "aberrations": "angstrom (Cnm), rad (phinm)",
    },
    "ScanData": {"intensities": "counts", "positions": "angstrom", "tilt_deg": "deg", "scan_shape": "pixels"},
    "DefocusSeries": {
        "images": "1 (unit incident beam)",
        "defocus": "angstrom",
        "pixel_size": "angstrom",
        "energy_eV": "eV",
        "tilt_deg": "deg",
        "aperture_mrad": "mrad",
        "aberrations": "angstrom (Cnm), rad (phinm)",
        "focal_spread": "angstrom (standard deviation)",
        "illumination_semiangle_mrad": "mrad (1/e half-width)",
        "defocus_reference": "centre | exit",
    },
    "TiltSeries": {"angles_deg": "deg"},
    "MSPResult": {
        "object": "V*angstrom",
        "probe": "1 (complex amplitude)",
        "positions": "angstrom",
        "tilt_mrad": "mrad",
        "slice_thickness": "angstrom",
        "pixel_size": "angstrom",
        "energy_eV": "eV",
        "tilt_map": "mrad",
        "tilt_deg": "deg",
        "loss_history": "1",
        "scan_shape": "pixels",
    },
    "Alignment": {"euler_deg": "deg", "shifts": "angstrom"},
    "Volume": {"voxel_size": "angstrom", "origin": "angstrom"},
    "Resolution": {
        "frequency": "1/angstrom",
        "fsc": "1",
        "crossings": "angstrom",
        "thresholds": "1",
        "shell_counts": "voxels",
    },
    "Atoms": {"positions": "angstrom", "widths": "angstrom", "intensities": "a.u.", "species": "class index"},
}


def intensity_chunks(shape: tuple[int, ...], itemsize: int, target: int = 1 << 20) -> Any:
    """HDF5 chunk shape for 4D-STEM intensities: whole patterns, about ``target`` bytes.

    One chunk holds one pattern, or a short run of patterns along the fast scan axis when
    a pattern is smaller than ``target``, so reading any batch of positions touches only
    the chunks of those patterns.
    """
    if len(shape) < 3:
        return True
    ky, kx = int(shape[-2]), int(shape[-1])
    per = max(1, target // max(1, ky * kx * itemsize))
    if len(shape) == 4:
        return (1, max(1, min(per, int(shape[1]))), ky, kx)
    return (max(1, min(per, int(shape[0]))), ky, kx)


def _is_array_like(value: Any) -> bool:
    return (
        not isinstance(value, (np.ndarray, np.generic))
        and hasattr(value, "shape")
        and hasattr(value, "dtype")
        and hasattr(value, "__getitem__")
        and len(value.shape) > 0
        and 0 not in tuple(value.shape)
    )


class Codec:
    """Writes and reads data objects; holds the options of one file operation.

    Parameters
    ----------
    compression : h5py dataset options (``compression``, ``compression_opts``, ``shuffle``);
        ``None`` uses gzip level 4 with shuffle.
    lazy : read 4D-STEM intensities as :class:`LazyDataset` (True) or into memory.
    """

    def __init__(self, compression: dict[str, Any] | None = None, lazy: bool = True) -> None:
        self.compression = compression
        self.lazy = lazy

    # writing ---------------------------------------------------------------------------
    def write_object(self, group: h5py.Group, obj: Any) -> None:
        """Write the fields of data object ``obj`` as members of ``group``."""
        cls = type(obj).__name__
        set_text(group, "ptycho_type", cls)
        units = dict(UNITS.get(cls, {}))
        if isinstance(obj, Volume):
            units["data"] = units["halves"] = str(obj.units)
        items = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]

        def special(g: h5py.Group, name: str, value: Any) -> str | None:
            if g == group and isinstance(obj, ScanData) and name == "intensities":
                shape = tuple(value.shape)
                chunks = intensity_chunks(shape, np.dtype(value.dtype).itemsize)
                src = value.dataset if isinstance(value, LazyDataset) else value
                write_dataset(g, name, src, units="counts", chunks=chunks, compression=self.compression)
                return "lazy"
            return self._special_write(g, name, value)

        write_members(group, items, units=units, special=special)

    def _special_write(self, g: h5py.Group, name: str, value: Any) -> str | None:
        if dataclasses.is_dataclass(value) and DATA_CLASSES.get(type(value).__name__) is type(value):
            self.write_object(g.create_group(name, track_order=True), value)
            return f"obj:{type(value).__name__}"
        if _is_array_like(value):
            src = value.dataset if isinstance(value, LazyDataset) else value
            write_dataset(g, name, src, compression=self.compression)
            return "ndarray"
        if isinstance(value, np.ndarray) and value.ndim and value.size:
            write_dataset(g, name, value, compression=self.compression)
            return "ndarray"
        return None

    def write_members(self, group: h5py.Group, items: Any) -> None:
        """Write plain ``(key, value)`` pairs (dicts of data objects and so on)."""
        write_members(group, items, special=self._special_write)

    # reading ---------------------------------------------------------------------------
    def read_object(self, group: h5py.Group, expected: str | None = None) -> Any:
        """Rebuild the data object stored in ``group``."""
        cls_name = get_text(group, "ptycho_type")
        cls = DATA_CLASSES.get(cls_name or "")
        if cls is None or (expected is not None and cls_name != expected):
            raise TypeError(f"group {group.name} holds {cls_name!r}; expected {expected or 'a data object'}")
        values = dict(read_members(group, special=self._special_read))
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            warnings.warn(f"{group.name}: ignoring unknown field(s) {sorted(unknown)} (written by a newer version?)")
        if cls is DefocusSeries:
            # files from before the field existed meant the exit surface
            values.setdefault("defocus_reference", "exit")
        return cls(**{k: v for k, v in values.items() if k in names})

    def read_members(self, group: h5py.Group) -> list[tuple[Any, Any]]:
        return read_members(group, special=self._special_read)

    def _special_read(self, g: h5py.Group, name: str, tag: str) -> tuple[bool, Any]:
        if tag.startswith("obj:"):
            return True, self.read_object(g[name], expected=tag[4:])
        if tag == "lazy":
            dset = g[name]
            if not isinstance(dset, h5py.Dataset) or len(dset.shape) not in (3, 4):
                raise TypeError(f"{g.name}/{name}: expected a 3D or 4D intensity dataset")
            if self.lazy:
                return True, LazyDataset(g.file, dset.name)
            check_fits(g.file.filename, dset.name, dset.shape, dset.dtype)
            return True, dset[()]
        return False, None
