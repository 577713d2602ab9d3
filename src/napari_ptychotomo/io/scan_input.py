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
from .guards import require_readable

__all__ = [
    "CALIBRATION_FIELDS",
    "read_sidecar_json",
    "sidecar_json_path",
    "check_fields",
    "calibration_from",
    "make_scan",
    "length_to_angstrom",
    "sampling_note",
]

CALIBRATION_FIELDS = (
    "energy_eV",
    "semiangle_mrad",
    "detector_sampling_mrad",
    "defocus",
    "scan_step",
    "aberrations",
    "scan_rotation_deg",
)
_REQUIRED = ("energy_eV", "semiangle_mrad", "detector_sampling_mrad")
_SCAN_FIELDS = ("tilt_deg", "positions")
_LENGTH = {
    "a": 1.0,
    "å": 1.0,
    "angstrom": 1.0,
    "angstroms": 1.0,
    "nm": 10.0,
    "pm": 0.01,
    "um": 1e4,
    "µm": 1e4,
    "micron": 1e4,
    "m": 1e10,
}


def length_to_angstrom(units: str) -> float | None:
    """Factor converting a length in ``units`` to Å (``None`` when not a length unit)."""
    return _LENGTH.get(str(units).strip().lower())


def sidecar_json_path(path: Any) -> Path:
    """The calibration sidecar of a data file: ``<stem>.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name.split(".")[0] + ".json")


def read_sidecar_json(path: Any) -> dict[str, Any]:
    """The checked calibration sidecar ``<stem>.json`` of a data file, or ``{}`` when absent.

    Every field is checked (see :func:`check_fields`); a wrong field raises
    :class:`PtychoFormatError` naming the sidecar and the field.
    """
    side = sidecar_json_path(path)
    if not side.exists():
        return {}
    require_readable(side)
    try:
        values = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PtychoFormatError(side, f"calibration sidecar is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise PtychoFormatError(side, "calibration sidecar must hold a JSON object {name: value}")
    return check_fields(side, values, "field")


#: range (low, high, unit, low is allowed) of each numeric field given in a sidecar or as
#: a keyword; wider than any microscope, narrow enough to catch a wrong unit
RANGES: dict[str, tuple[float, float, str, bool]] = {
    "energy_eV": (1e3, 3e6, "eV (e.g. 300000 for 300 keV)", True),
    "semiangle_mrad": (0.0, 500.0, "mrad", False),
    "detector_sampling_mrad": (0.0, 100.0, "mrad per pixel", False),
    "defocus": (-1e6, 1e6, "Å", True),
    "scan_step": (0.0, 1e5, "Å", False),
    "scan_rotation_deg": (-360.0, 360.0, "degrees", True),
    "tilt_deg": (-90.0, 90.0, "degrees", True),
}
#: sidecar key of the fingerprint of the array it belongs to (see :mod:`.stem_numpy`)
ARRAY_KEY = "array"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _field_error(where: Path, label: str, message: str) -> PtychoFormatError:
    return PtychoFormatError(where, f"{label} {message}")


def check_fields(where: Any, values: dict[str, Any], kind: str = "field") -> dict[str, Any]:
    """Check the type, shape and range of each calibration / scan value in ``values``.

    ``where`` is named in errors (the sidecar, or the data file for keywords) and ``kind``
    says what a value is (``"field"`` of a sidecar, ``"keyword"``). Unknown names are
    refused with the closest known one. ``None`` stands for a missing value. Returns the
    values with positions as a float array ``(n, 2)``.
    """
    import difflib

    from ..data.checks import _ABERRATION_NAMES

    known = (*CALIBRATION_FIELDS, *_SCAN_FIELDS) + ((ARRAY_KEY,) if kind == "field" else ())
    out: dict[str, Any] = {}
    for key, value in values.items():
        label = f"{kind} {key!r}:"
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _field_error(
                where, f"{kind} {key!r}", f"is not a calibration name{hint} Known names: {', '.join(known)}"
            )
        if value is None or key == ARRAY_KEY:
            out[key] = value
        elif key in RANGES:
            low, high, unit, closed = RANGES[key]
            if not _is_number(value):
                raise _field_error(where, label, f"{value!r} is not a number; expected a number in {unit}")
            inside = (low <= value if closed else low < value) and value <= high
            if not (np.isfinite(value) and inside):
                bound = "≥" if closed else ">"
                raise _field_error(
                    where, label, f"{value!r} is out of range; expected {bound} {low:g} and ≤ {high:g} {unit}"
                )
            out[key] = float(value)
        elif key == "aberrations":
            if not isinstance(value, dict):
                raise _field_error(
                    where,
                    label,
                    f'{value!r} is not a mapping; expected e.g. {{"C30": 12000.0}} (Å, angles phinm in rad)',
                )
            for name, coefficient in value.items():
                if name not in _ABERRATION_NAMES:
                    close = difflib.get_close_matches(str(name), sorted(_ABERRATION_NAMES), n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise _field_error(
                        where,
                        f"{kind} 'aberrations.{name}':",
                        f"is not an aberration{hint} Known: {', '.join(sorted(_ABERRATION_NAMES))}",
                    )
                if not (_is_number(coefficient) and np.isfinite(coefficient)):
                    raise _field_error(
                        where,
                        f"{kind} 'aberrations.{name}':",
                        f"{coefficient!r} is not a finite number; expected Å (Cnm) or rad (phinm)",
                    )
            out[key] = {str(k): float(v) for k, v in value.items()}
        elif key == "positions":
            out[key] = _positions(where, label, value)
        else:  # pragma: no cover - every known name is handled above
            out[key] = value
    return out


def _positions(where: Any, label: str, value: Any) -> np.ndarray:
    expected = "a list of [y, x] pairs in Å, one per pattern"
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise _field_error(where, label, f"{_short(value)} is not {expected}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _field_error(where, label, f"{_short(value)} is not {expected} (ragged, or holds non-numbers)") from None
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 1:
        raise _field_error(where, label, f"has shape {array.shape}; expected (n, 2): {expected}")
    if not np.all(np.isfinite(array)):
        raise _field_error(where, label, "holds NaN or infinite values")
    if any(isinstance(v, (bool, np.bool_)) for row in value for v in row):
        raise _field_error(where, label, f"holds true / false; expected {expected}")
    return array


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
        calibration = Calibration(**{k: (dict(v) if k == "aberrations" else float(v)) for k, v in merged.items()})
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
        raise TypeError(
            f"unknown keyword(s) {sorted(unknown)}; expected calibration fields "
            f"{list(CALIBRATION_FIELDS)} or {list(_SCAN_FIELDS)}"
        )
    kwargs = check_fields(path, kwargs, "keyword")
    sidecar = read_sidecar_json(path)
    sidecar.pop(ARRAY_KEY, None)
    file_values = file_values or {}
    shape = tuple(getattr(intensities, "shape", ()))
    if len(shape) not in (3, 4):
        raise PtychoFormatError(
            path, f"intensities have shape {shape}; expected 4D-STEM data (Ny, Nx, Ky, Kx) or (n, Ky, Kx)"
        )
    calibration = calibration_from(path, kwargs, sidecar, file_values)
    source, positions = next(
        ((s, s["positions"]) for s in (kwargs, sidecar, file_values) if s.get("positions") is not None), (None, None)
    )
    n = int(np.prod(shape[:-2]))
    if positions is not None and (len(positions) if np.ndim(positions) else 0) != n:
        where = sidecar_json_path(path) if source is sidecar else path
        what = {id(kwargs): "keyword 'positions'", id(sidecar): "field 'positions'"}.get(id(source), "positions")
        raise PtychoFormatError(
            where,
            f"{what}: {len(positions)} positions for {n} "
            f"diffraction patterns of shape {shape}; give one (y, x) per pattern",
        )
    tilt = next((s["tilt_deg"] for s in (kwargs, sidecar, file_values) if s.get("tilt_deg") is not None), 0.0)
    try:
        tilt = float(tilt)
        positions = None if positions is None else np.asarray(positions, float)
    except (TypeError, ValueError):
        raise PtychoFormatError(
            path, f"tilt_deg {tilt!r} or the positions recorded in the file are not numbers"
        ) from None
    scan = ScanData(intensities=intensities, calibration=calibration, positions=positions, tilt_deg=tilt)
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


#: patterns of one scan whose counts are checked when a file is opened (``validate="sample"``)
SAMPLED_PATTERNS = 64


def sampling_note(obj: Any) -> str | None:
    """A sentence saying which scans of ``obj`` (ScanData, TiltSeries or Project) had their
    counts only sampled for NaN / inf / negative values when opened, or ``None``."""
    scans = [obj] if isinstance(obj, ScanData) else []
    series = getattr(obj, "series", None) if not isinstance(obj, ScanData) else None
    series = obj if hasattr(obj, "scans") else series
    if series is not None:
        scans = [s for s in series.scans if isinstance(s, ScanData)]
    sampled = [(k, s.num_positions) for k, s in enumerate(scans) if s.num_positions > SAMPLED_PATTERNS]
    if not sampled:
        return None
    total = sum(n for _, n in sampled)
    return (
        f"counts checked for NaN / inf / negative values on {SAMPLED_PATTERNS} sampled "
        f"patterns per scan only ({len(sampled)} scan(s), {total} patterns in all); "
        "`ptychotomo info --full FILE` or load(..., validate='full') checks every pattern"
    )
