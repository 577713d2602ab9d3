"""Volumes and image stacks as MRC (mrcfile) and TIFF (tifffile).

MRC: voxel size in Å in the header (``voxel_size``), the origin in Å as (x, y, z) in the
header ``origin``, mode 2 (float32), 4 (complex64) or the integer modes; volumes have space
group 1, image stacks (tilt series of projections) space group 0. A label line
``napari-ptychotomo units=<unit>`` keeps the unit of the values.

TIFF: an ImageJ hyperstack (axes ZYX) with ``spacing`` and ``unit=angstrom``, the X/Y
resolution tags in pixels per Å, and keys ``ptycho_type`` (``Volume`` or ``ndarray``),
``voxel_size``, ``origin`` (z y x in Å) and ``units`` in the ImageJ description, so Fiji
shows the physical scale. ImageJ stores uint8, uint16 and float32; other real types are
written as float32 with a warning, complex volumes are refused.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Volume
from .errors import PtychoFormatError
from .guards import check_fits, require_readable
from .native_files import atomic_file
from .scan_input import length_to_angstrom

__all__ = ["save_mrc", "load_mrc", "save_tiff", "load_tiff"]

_MRC_TYPES = {np.dtype(t) for t in (np.float32, np.int8, np.int16, np.uint8, np.uint16, np.complex64, np.float16)}


def _as_volume_parts(obj: Any, path: Path, voxel_size: float | None) -> tuple[np.ndarray, float, np.ndarray, str, bool]:
    """(data, voxel size Å, origin (z, y, x) Å, value unit, is_volume) of what is saved."""
    if isinstance(obj, Volume):
        try:
            obj.validate()
        except ValueError as exc:
            raise PtychoFormatError(path, f"cannot save an invalid Volume: {exc}") from None
        return np.asarray(obj.data), float(obj.voxel_size), np.asarray(obj.origin, float), obj.units, True
    data = np.asarray(obj)
    if data.ndim not in (2, 3):
        raise PtychoFormatError(
            path, f"array has shape {data.shape}; expected an image (ny, nx) or a stack (n, ny, nx)"
        )
    return data, float(voxel_size or 1.0), np.zeros(3), "", False


def save_mrc(obj: Any, path: Any, *, voxel_size: float | None = None) -> Path:
    """Write a Volume (space group 1) or an image stack ndarray (space group 0) to MRC."""
    import mrcfile

    path = Path(path)
    data, voxel, origin, units, is_volume = _as_volume_parts(obj, path, voxel_size)
    if data.dtype not in _MRC_TYPES:
        target = np.complex64 if np.iscomplexobj(data) else np.float32
        warnings.warn(f"{path}: MRC has no {data.dtype}; writing {np.dtype(target)}")
        data = data.astype(target)
    with atomic_file(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(data))
            if is_volume:
                mrc.set_volume()
            elif data.ndim == 3:
                mrc.set_image_stack()
            mrc.voxel_size = voxel
            mrc.header.origin = tuple(float(v) for v in origin[::-1])
            # MRC labels are 80 ASCII characters: spell out non-ASCII unit symbols
            label = f"napari-ptychotomo units={units}".replace("Å", "angstrom").replace("σ", "sigma")
            mrc.add_label(label.encode("ascii", "replace").decode()[:80])
    return path


def load_mrc(path: Any, *, voxel_size: float | None = None, as_array: bool = False) -> Any:
    """Read an MRC file: a Volume for a volume, an ndarray for images / image stacks."""
    import mrcfile

    path = Path(path)
    require_readable(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.mmap(path, mode="r", permissive=False) as mrc:
                if mrc.data is None:
                    raise ValueError("the header declares no data")
                check_fits(path, "data", mrc.data.shape, mrc.data.dtype)
                data = np.array(mrc.data)
                stack = mrc.is_image_stack() or data.ndim == 2
                vs = mrc.voxel_size
                sizes = (float(vs.x), float(vs.y), float(vs.z))
                origin = np.array([float(mrc.header.origin[a]) for a in ("z", "y", "x")])
                labels = [
                    bytes(label).decode("ascii", "replace").strip()
                    for label in mrc.header.label[: int(mrc.header.nlabl)]
                ]
    except PtychoFormatError:
        raise
    except Exception as exc:
        raise PtychoFormatError(path, f"not a readable MRC file (truncated or corrupt?): {exc}") from None
    _check_values(path, data)
    if stack or as_array:
        return data
    units = next(
        (lab.split("units=", 1)[1] for lab in labels if lab.startswith("napari-ptychotomo units=")), ""
    ).replace("angstrom", "Å")
    voxel = voxel_size or sizes[0]
    if not voxel:
        raise PtychoFormatError(path, "missing voxel size (0 in the header); pass voxel_size= in Å")
    if voxel_size is None and not (np.isfinite(voxel) and voxel > 0):
        raise PtychoFormatError(
            path, f"header voxel size is {voxel!r} Å; expected a positive length (pass voxel_size= in Å to override)"
        )
    if voxel_size is None and not np.allclose(sizes, sizes[0], rtol=1e-4):
        raise PtychoFormatError(
            path, f"voxels are not cubic: (x, y, z) = {sizes} Å; pass voxel_size= to override or resample first"
        )
    return _volume(path, data, voxel, origin, units)


def _check_values(path: Path, data: np.ndarray) -> None:
    if data.size == 0:
        raise PtychoFormatError(path, f"data has shape {data.shape}: no values")
    if data.dtype.kind in "fc" and not np.all(np.isfinite(data)):
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        raise PtychoFormatError(
            path, f"data holds {bad} NaN or infinite value(s) of {data.size}; a volume must be finite"
        )


def _volume(path: Path, data: np.ndarray, voxel: Any, origin: Any, units: str) -> Volume:
    try:
        return Volume(data=data, voxel_size=float(voxel), origin=np.asarray(origin, float), units=units).validate()
    except (TypeError, ValueError) as exc:
        raise PtychoFormatError(path, f"not a valid volume: {exc}") from None


def save_tiff(obj: Any, path: Any, *, voxel_size: float | None = None) -> Path:
    """Write a Volume or an image stack as an ImageJ TIFF with its scale in Å."""
    import tifffile

    path = Path(path)
    data, voxel, origin, units, is_volume = _as_volume_parts(obj, path, voxel_size)
    if np.iscomplexobj(data):
        raise PtychoFormatError(
            path, "TIFF cannot hold complex values; save np.real / np.imag separately, or use .mrc or .ptycho.h5"
        )
    if data.dtype not in (np.uint8, np.uint16, np.float32):
        warnings.warn(f"{path}: ImageJ TIFF has no {data.dtype}; writing float32")
        data = data.astype(np.float32)
    metadata = {
        "axes": "ZYX" if data.ndim == 3 else "YX",
        "spacing": voxel,
        "unit": "angstrom",
        "ptycho_type": "Volume" if is_volume else "ndarray",
        "voxel_size": repr(voxel),
        "origin": " ".join(repr(float(v)) for v in origin),
        "units": units,
    }
    with atomic_file(path) as tmp:
        tifffile.imwrite(tmp, data, imagej=True, resolution=(1.0 / voxel, 1.0 / voxel), metadata=metadata)
    return path


def load_tiff(path: Any, *, voxel_size: float | None = None, as_array: bool = False) -> Any:
    """Read a TIFF: a Volume for a 3D stack with a known voxel size, else an ndarray.

    The voxel size comes from ``voxel_size`` (Å), the keys written by :func:`save_tiff`,
    or ImageJ's ``spacing`` / resolution with a length ``unit``.
    """
    import tifffile

    path = Path(path)
    require_readable(path)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            check_fits(path, "image data", series.shape, series.dtype)
            data = tif.asarray()
            meta = dict(tif.imagej_metadata or {})
            page = tif.pages[0]
            xres = page.tags.get("XResolution")
            xres = xres.value if xres is not None else None
    except PtychoFormatError:
        raise
    except Exception as exc:
        raise PtychoFormatError(path, f"not a readable TIFF file (truncated or corrupt?): {exc}") from None
    _check_values(path, data)
    if as_array or data.ndim != 3 or meta.get("ptycho_type") == "ndarray":
        return data
    voxel = voxel_size
    if voxel is None and "voxel_size" in meta:
        try:
            voxel = float(meta["voxel_size"])
        except (TypeError, ValueError):
            raise PtychoFormatError(
                path, f"ImageJ key voxel_size = {meta['voxel_size']!r} is not a number; pass voxel_size= in Å"
            ) from None
    if voxel is None:
        factor = length_to_angstrom(meta.get("unit", ""))
        if factor and meta.get("spacing"):
            voxel = float(meta["spacing"]) * factor
        elif factor and xres and xres[0]:
            voxel = xres[1] / xres[0] * factor
    if not voxel:
        raise PtychoFormatError(
            path,
            "3D TIFF without a voxel size in a length unit; pass "
            "voxel_size= in Å (or as_array=True for a plain image stack)",
        )
    origin = np.zeros(3)
    if "origin" in meta:
        try:
            origin = np.array([float(v) for v in str(meta["origin"]).split()])
        except ValueError:
            raise PtychoFormatError(
                path, f"ImageJ key origin = {meta['origin']!r} is not three numbers (z y x in Å)"
            ) from None
    return _volume(path, data, voxel, origin, str(meta.get("units", "")))
