"""4D-STEM data in numpy ``.npy`` / ``.npz`` files, with calibration from a JSON sidecar.

A scan saved by this package is a pair, ``scan.npy`` and ``scan.json``, each replaced
atomically. So that a save killed between the two renames cannot leave new data beside
old calibration (or the reverse) unnoticed, the sidecar records a fingerprint of the
array file in its ``array`` field: the size in bytes and a SHA-256 of the header and of
evenly spaced 64 KiB blocks (the whole file up to 4 MiB). Loading refuses a pair whose
fingerprints differ. The sidecar is renamed into place first, so a killed save always
leaves a sidecar that carries a fingerprint. The sampled hash tells a replaced array from
the one saved; it is not a checksum of every byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data import ScanData
from .errors import PtychoFormatError
from .guards import check_fits, require_readable
from .native_files import atomic_file
from .scan_input import ARRAY_KEY, make_scan, read_sidecar_json, sidecar_json_path

__all__ = ["load_stem_numpy", "save_stem_numpy", "save_array", "array_fingerprint", "check_pair"]


def load_stem_numpy(path: Any, *, validate: str = "sample", **kwargs: Any) -> ScanData:
    """Read a 4D-STEM array from ``.npy`` (memory-mapped, lazy) or ``.npz``.

    An ``.npz`` must hold the intensities as its only array or under the key
    ``intensities`` (optionally with ``positions`` ``(n, 2)`` in Å). Calibration comes from
    ``kwargs`` (``energy_eV``, ``semiangle_mrad``, ``detector_sampling_mrad``,
    ``defocus``, ``scan_step``, ``tilt_deg``, ...) or the sidecar ``<stem>.json``.
    """
    path = Path(path)
    require_readable(path)
    if path.stat().st_size == 0:
        raise PtychoFormatError(path, "file is empty (0 bytes): the save or copy that wrote it did not finish")
    # else numpy takes any other file for a pickle and advises allow_pickle=True
    magic = b"\x93NUMPY" if path.suffix.lower() == ".npy" else b"PK"
    with open(path, "rb") as fh:
        head = fh.read(len(magic))
    if head != magic:
        raise PtychoFormatError(
            path,
            f"not a numpy {path.suffix.lower()} file: it starts with {head!r}, not {magic!r} (another format renamed?)",
        )
    file_values: dict[str, Any] = {}
    try:
        if path.suffix.lower() == ".npy":
            data = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                key = "intensities" if "intensities" in keys else (keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise PtychoFormatError(
                        path, f"holds arrays {keys}; name the 4D-STEM data 'intensities' (and optionally 'positions')"
                    )
                for name in {key, "positions"} & set(keys):
                    _check_member_fits(path, archive, name)
                data = archive[key]
                if "positions" in keys:
                    file_values["positions"] = archive["positions"]
    except PtychoFormatError:
        raise
    except Exception as exc:  # numpy parses a damaged header with ast: SyntaxError and kin
        raise PtychoFormatError(
            path, f"not a readable numpy file (truncated or damaged?): {type(exc).__name__}: {exc}"
        ) from None
    if path.suffix.lower() == ".npy":
        check_pair(path)
    if data.dtype.kind not in "iuf":
        raise PtychoFormatError(
            path,
            f"intensities have dtype {data.dtype}; expected real "
            "detector counts (integers or floats, not complex or bool)",
        )
    return make_scan(path, data, file_values, kwargs, validate)


def _check_member_fits(path: Path, archive: Any, name: str) -> None:
    """Read the header of ``name`` in an ``.npz`` and refuse it when it would not fit."""
    from numpy.lib import format as npformat

    with archive.zip.open(f"{name}.npy") as member:
        version = npformat.read_magic(member)
        read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        shape, _, dtype = read(member)
    check_fits(path, name, shape, dtype)


_BLOCK = 64 << 10
_WHOLE = 4 << 20


def array_fingerprint(path: Any) -> dict[str, Any]:
    """Size and sampled SHA-256 of an array file (see the module docstring)."""
    size = os.path.getsize(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= _WHOLE:
            digest.update(fh.read())
        else:
            for offset in np.linspace(0, size - _BLOCK, 64).astype(np.int64).tolist():
                fh.seek(offset)
                digest.update(fh.read(_BLOCK))
    return {"bytes": int(size), "sha256_sampled": digest.hexdigest()}


def check_pair(path: Path) -> None:
    """Refuse an ``.npy`` whose sidecar records the fingerprint of a different array."""
    side = sidecar_json_path(path)
    recorded = read_sidecar_json(path).get(ARRAY_KEY)
    if recorded is None:
        return
    if not (isinstance(recorded, dict) and {"bytes", "sha256_sampled"} <= set(recorded)):
        raise PtychoFormatError(
            side,
            f"field {ARRAY_KEY!r}: {recorded!r} is not a fingerprint "
            '{"bytes": ..., "sha256_sampled": ...}; delete the field or '
            "save the scan again",
        )
    found = array_fingerprint(path)
    if found != {k: recorded[k] for k in ("bytes", "sha256_sampled")}:
        raise PtychoFormatError(
            side,
            f"field {ARRAY_KEY!r}: this calibration was written for a different "
            f"{path.name} ({recorded['bytes']} bytes; the file now has {found['bytes']} and "
            "other content): a save was interrupted between the two files, or one of them "
            "was replaced. Save the scan again, or delete the field if this calibration is "
            "right for the array",
        )


def save_stem_numpy(scan: ScanData, path: Any) -> Path:
    """Write ``scan`` as ``<stem>.npy`` (intensities) plus its ``<stem>.json`` calibration."""
    path = Path(path)
    values: dict[str, Any] = dataclasses.asdict(scan.calibration)
    values["tilt_deg"] = float(scan.tilt_deg)
    if scan.positions is not None:
        values["positions"] = np.asarray(scan.positions).tolist()
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(scan.intensities))
        values[ARRAY_KEY] = array_fingerprint(tmp)
        # the sidecar first: a save killed before the array's rename leaves a new sidecar
        # beside the old array, which check_pair refuses
        with atomic_file(sidecar_json_path(path)) as side_tmp:
            side_tmp.write_text(json.dumps(values, indent=1), encoding="utf-8")
    return path


def save_array(array: np.ndarray, path: Any) -> Path:
    """``np.save`` through a temporary file renamed into place."""
    path = Path(path)
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
    return path
