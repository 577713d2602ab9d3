"""4D-STEM data in numpy ``.npy`` / ``.npz`` files, with calibration from a JSON sidecar."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..data import ScanData
from .errors import PtychoFormatError
from .native_files import atomic_file
from .scan_input import make_scan

__all__ = ["load_stem_numpy", "save_stem_numpy", "save_array"]


def load_stem_numpy(path: Any, *, validate: str = "sample", **kwargs: Any) -> ScanData:
    """Read a 4D-STEM array from ``.npy`` (memory-mapped, lazy) or ``.npz``.

    An ``.npz`` must hold the intensities as its only array or under the key
    ``intensities`` (optionally with ``positions`` ``(n, 2)`` in Å). Calibration comes from
    ``kwargs`` (``energy_eV``, ``semiangle_mrad``, ``detector_sampling_mrad``,
    ``defocus``, ``scan_step``, ``tilt_deg``, ...) or the sidecar ``<stem>.json``.
    """
    path = Path(path)
    if not path.exists():
        raise PtychoFormatError(path, "file not found")
    file_values: dict[str, Any] = {}
    try:
        if path.suffix.lower() == ".npy":
            data = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                key = "intensities" if "intensities" in keys else (keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise PtychoFormatError(path, f"holds arrays {keys}; name the 4D-STEM data "
                                            "'intensities' (and optionally 'positions')")
                data = archive[key]
                if "positions" in keys:
                    file_values["positions"] = archive["positions"]
    except PtychoFormatError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise PtychoFormatError(path, f"not a readable numpy file (truncated?): {exc}") from None
    if data.dtype.kind not in "iuf":
        raise PtychoFormatError(path, f"intensities have dtype {data.dtype}; expected real counts")
    return make_scan(path, data, file_values, kwargs, validate)


def save_stem_numpy(scan: ScanData, path: Any) -> Path:
    """Write ``scan`` as ``<stem>.npy`` (intensities) plus its ``<stem>.json`` calibration."""
    path = Path(path)
    save_array(np.asarray(scan.intensities), path)
    values: dict[str, Any] = dataclasses.asdict(scan.calibration)
    values["tilt_deg"] = float(scan.tilt_deg)
    if scan.positions is not None:
        values["positions"] = np.asarray(scan.positions).tolist()
    side = path.with_name(path.name.split(".")[0] + ".json")
    with atomic_file(side) as tmp:
        tmp.write_text(json.dumps(values, indent=1), encoding="utf-8")
    return path


def save_array(array: np.ndarray, path: Any) -> Path:
    """``np.save`` through a temporary file renamed into place."""
    path = Path(path)
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
    return path
