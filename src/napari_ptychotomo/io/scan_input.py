"""Building a ScanData from a foreign 4D array plus calibration from keywords or a sidecar.

A foreign 4D-STEM file rarely carries everything a reconstruction needs (beam energy,
aperture, detector sampling in mrad). The missing values come, in order of precedence,
from keyword arguments, from a small JSON sidecar ``<name>.json`` next to the data file,
and from whatever the file itself records. A missing value is a
:class:`PtychoFormatError` that names the file and says how to give it.

Sidecar example (``scan.json`` next to ``scan.npy``)::

    {"energy_eV": 300000, "semiangle_mrad": 25.0, "detector_sampling_mrad": 1.0,
     "defocus": 150.0, "scan_step": 0.4, "tilt_deg": 0.0}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Calibration, ScanData
from .errors import PtychoFormatError

__all__ = ["CALIBRATION_FIELDS", "read_sidecar_json", "calibration_from", "make_scan",
           "length_to_angstrom"]

CALIBRATION_FIELDS = ("energy_eV", "semiangle_mrad", "detector_sampling_mrad", "defocus",
                      "scan_step", "aberrations", "scan_rotation_deg")
_REQUIRED = ("energy_eV", "semiangle_mrad", "detector_sampling_mrad")
_SCAN_FIELDS = ("tilt_deg", "positions")
_LENGTH = {"a": 1.0, "å": 1.0, "angstrom": 1.0, "angstroms": 1.0, "nm": 10.0, "pm": 0.01,
           "um": 1e4, "µm": 1e4, "micron": 1e4, "m": 1e10}


def length_to_angstrom(units: str) -> float | None:
    """Factor converting a length in ``units`` to Å (``None`` when not a length unit)."""
    return _LENGTH.get(str(units).strip().lower())


def read_sidecar_json(path: Any) -> dict[str, Any]:
    """The calibration sidecar ``<stem>.json`` of a data file, or ``{}`` when absent."""
    path = Path(path)
    stem = path.name.split(".")[0]
    side = path.with_name(stem + ".json")
    if not side.exists():
        return {}
    try:
        values = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PtychoFormatError(side, f"calibration sidecar is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise PtychoFormatError(side, "calibration sidecar must hold a JSON object {name: value}")
    return values


def calibration_from(path: Any, *sources: dict[str, Any]) -> Calibration:
    """Merge calibration values (first source wins) and build a validated Calibration."""
    merged: dict[str, Any] = {}
    for source in sources:
        for key in CALIBRATION_FIELDS:
            if key not in merged and source.get(key) is not None:
                merged[key] = source[key]
    missing = [k for k in _REQUIRED if k not in merged]
    if missing:
        raise PtychoFormatError(
            path,
            f"missing calibration: {', '.join(missing)}; pass them as keywords, e.g. "
            f"load(path, energy_eV=300e3, semiangle_mrad=25.0, detector_sampling_mrad=1.0), "
            f"or write them to {Path(path).name.split('.')[0]}.json next to the file",
        )
    try:
        calibration = Calibration(**{k: (dict(v) if k == "aberrations" else float(v))
                                     for k, v in merged.items()})
        return calibration.validate()
    except (TypeError, ValueError) as exc:
        raise PtychoFormatError(path, f"invalid calibration: {exc}") from None


def make_scan(
    path: Any,
    intensities: Any,
    file_values: dict[str, Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    validate: str = "sample",
) -> ScanData:
    """A validated ScanData from 4D-STEM intensities and calibration sources.

    Parameters
    ----------
    path : the data file (named in errors; its ``.json`` sidecar is read).
    intensities : ``(Ny, Nx, Ky, Kx)`` or ``(n, Ky, Kx)`` array-like, centred patterns.
    file_values : calibration found in the file itself (lowest precedence).
    kwargs : calibration, ``tilt_deg`` and ``positions`` given by the caller (highest).
    validate : ``"sample"`` checks up to 64 patterns for NaN / inf / negative counts,
        ``"full"`` all of them, ``"none"`` none.
    """
    kwargs = dict(kwargs or {})
    unknown = set(kwargs) - set(CALIBRATION_FIELDS) - set(_SCAN_FIELDS)
    if unknown:
        raise TypeError(f"unknown keyword(s) {sorted(unknown)}; expected calibration fields "
                        f"{list(CALIBRATION_FIELDS)} or {list(_SCAN_FIELDS)}")
    sidecar = read_sidecar_json(path)
    file_values = file_values or {}
    shape = tuple(getattr(intensities, "shape", ()))
    if len(shape) not in (3, 4):
        raise PtychoFormatError(
            path, f"intensities have shape {shape}; expected 4D-STEM data (Ny, Nx, Ky, Kx) "
            "or (n, Ky, Kx)")
    calibration = calibration_from(path, kwargs, sidecar, file_values)
    positions = next((s["positions"] for s in (kwargs, sidecar, file_values)
                      if s.get("positions") is not None), None)
    tilt = next((s["tilt_deg"] for s in (kwargs, sidecar, file_values)
                 if s.get("tilt_deg") is not None), 0.0)
    scan = ScanData(intensities=intensities, calibration=calibration,
                    positions=None if positions is None else np.asarray(positions, float),
                    tilt_deg=float(tilt))
    check_scan(scan, path, validate)
    return scan


def check_scan(scan: ScanData, path: Any, validate: str = "sample") -> ScanData:
    """Validate a ScanData, turning ``ValueError`` into :class:`PtychoFormatError`."""
    if validate not in ("sample", "full", "none"):
        raise ValueError(f"validate = {validate!r}; expected 'sample', 'full' or 'none'")
    try:
        scan.validate(check_values=validate == "sample")
        if validate == "full":
            n = scan.num_positions
            for start in range(0, n, 256):
                values = scan.patterns(slice(start, min(n, start + 256)))
                if not np.all(np.isfinite(values)):
                    raise ValueError("intensities contain NaN or infinite values")
                if values.min() < 0:
                    raise ValueError(f"intensities has negative counts (minimum {values.min():.3g})")
    except ValueError as exc:
        if isinstance(exc, PtychoFormatError):
            raise
        raise PtychoFormatError(path, str(exc)) from None
    return scan
