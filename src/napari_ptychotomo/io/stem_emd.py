"""py4DSTEM / EMD 1.0 HDF5 datacubes (Berkeley EMD, https://emdatasets.com/format/).

An EMD array group carries ``emd_group_type`` = 1 (EMD 1.0, py4DSTEM ≤ 0.12) or
``"array"`` (emdfile, py4DSTEM ≥ 0.14), a dataset ``data`` and one dim vector per axis
(``dim1..dimN``, or ``dim0..dimN-1`` in emdfile), each with ``name`` and ``units``
attributes; linear dims may be stored as their first two values. py4DSTEM also writes
``R_pixel_size`` / ``Q_pixel_size`` (+ units) under ``metadatabundle/calibration``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..data import ScanData
from ..optics import inverse_angstrom_to_mrad
from .errors import PtychoFormatError
from .lazy import LazyDataset, open_h5
from .scan_input import length_to_angstrom, make_scan

__all__ = ["is_emd", "find_datacubes", "load_emd"]


def _text(value: Any) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def is_emd(fh: h5py.File) -> bool:
    """True when the file has EMD markers (``emd_group_type`` or EMD version attributes)."""
    if "version_major" in fh.attrs or "emd_group_type" in fh.attrs:
        return True
    return any("emd_group_type" in obj.attrs for obj in fh.values() if isinstance(obj, h5py.Group))


def find_datacubes(fh: h5py.File) -> list[str]:
    """Paths of EMD array groups whose ``data`` is 4D (or 3D: flattened scans)."""
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group) and _text(obj.attrs.get("emd_group_type", "")) in ("1", "array"):
            data = obj.get("data")
            if isinstance(data, h5py.Dataset) and data.ndim == 4:
                found.append(obj.name)

    fh.visititems(visit)
    return found


def _dim_step(group: h5py.Group, axis: int) -> tuple[float | None, str]:
    for name in (f"dim{axis + 1}", f"dim{axis}") if "dim0" not in group else (f"dim{axis}",):
        dim = group.get(name)
        if isinstance(dim, h5py.Dataset) and dim.size >= 2:
            values = np.asarray(dim[:2], dtype=float)
            return float(values[1] - values[0]), _text(dim.attrs.get("units", ""))
    return None, ""


def _calibration_metadata(group: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for parent in (group, group.parent):
        cal = parent.get("metadatabundle/calibration") or parent.get("calibration")
        if isinstance(cal, h5py.Group):
            for key in cal:
                if isinstance(cal[key], h5py.Dataset) and cal[key].size == 1:
                    out[key] = cal[key][()]
            break
    return out


def load_emd(path: Any, *, dataset: str | None = None, validate: str = "sample", **kwargs: Any) -> ScanData:
    """Read the 4D datacube of a py4DSTEM / EMD 1.0 file as a lazy ScanData.

    ``dataset`` picks the array group when there are several. The scan step comes from the
    real-space dims (Å or nm); the detector sampling from mrad dims, or from Å⁻¹ dims and
    the beam energy; anything missing from ``kwargs`` or the ``<stem>.json`` sidecar.
    """
    fh = open_h5(path)
    try:
        cubes = find_datacubes(fh)
        if dataset is not None:
            cubes = [c for c in cubes if c.strip("/") == dataset.strip("/")]
        if not cubes:
            raise PtychoFormatError(
                path,
                "no 4D EMD datacube (a group with emd_group_type and a "
                "4D 'data' dataset)" + (f" named {dataset!r}" if dataset else ""),
            )
        if len(cubes) > 1:
            raise PtychoFormatError(path, f"several datacubes {cubes}; pick one with dataset=")
        group = fh[cubes[0]]
        values: dict[str, Any] = {}
        meta = _calibration_metadata(group)
        r_step, r_units = _dim_step(group, 0)
        if "R_pixel_size" in meta and length_to_angstrom(_text(meta.get("R_pixel_units", ""))):
            r_step, r_units = float(meta["R_pixel_size"]), _text(meta["R_pixel_units"])
        factor = length_to_angstrom(r_units)
        if r_step is not None and factor:
            values["scan_step"] = abs(r_step) * factor
        q_step, q_units = _dim_step(group, 2)
        if "Q_pixel_size" in meta and _text(meta.get("Q_pixel_units", "pixels")) != "pixels":
            q_step, q_units = float(meta["Q_pixel_size"]), _text(meta["Q_pixel_units"])
        energy = kwargs.get("energy_eV")
        if q_step is not None:
            units = q_units.strip().lower()
            if units == "mrad":
                values["detector_sampling_mrad"] = abs(q_step)
            elif units in ("a^-1", "1/a", "å^-1", "1/å", "a-1") and energy:
                values["detector_sampling_mrad"] = inverse_angstrom_to_mrad(abs(q_step), float(energy))
            elif units in ("nm^-1", "1/nm") and energy:
                values["detector_sampling_mrad"] = inverse_angstrom_to_mrad(abs(q_step) * 0.1, float(energy))
        data = LazyDataset(fh, group["data"].name)
    except PtychoFormatError:
        fh.close()
        raise
    except Exception as exc:
        fh.close()
        raise PtychoFormatError(path, f"damaged EMD file ({type(exc).__name__}: {exc})") from None
    return make_scan(Path(path), data, values, kwargs, validate)
