"""A 4D-STEM tilt series from a folder or a list of files plus the tilt angles."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data import ScanData, TiltSeries
from .errors import PtychoFormatError

__all__ = ["load_tilt_series", "read_angles", "ANGLE_FILE_NAMES"]

#: angle files looked for in a folder when no ``angles`` are given (IMOD .tlt / .rawtlt too)
ANGLE_FILE_NAMES = ("angles.txt", "tilt_angles.txt", "angles.csv")
_SKIP = {".json", ".txt", ".csv", ".tlt", ".rawtlt", ".xml", ".md"}


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def read_angles(path: Any) -> np.ndarray:
    """Tilt angles in degrees from a text file: numbers separated by whitespace, commas or
    new lines; ``#`` starts a comment."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PtychoFormatError(path, f"cannot read the angle file: {exc}") from None
    tokens = [t for line in text.splitlines() for t in re.split(r"[\s,;]+", line.split("#")[0]) if t]
    try:
        angles = np.array([float(t) for t in tokens])
    except ValueError as exc:
        raise PtychoFormatError(path, f"angle file holds a non-number: {exc}") from None
    if angles.size == 0:
        raise PtychoFormatError(path, "angle file holds no angles")
    return angles


def _files_of(folder: Path, supported: Callable[[Path], bool]) -> list[Path]:
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in _SKIP and supported(p)
    ]
    return sorted(files, key=_natural_key)


def load_tilt_series(
    paths_or_folder: Any,
    angles: Any = None,
    *,
    validate: str = "sample",
    **kwargs: Any,
) -> TiltSeries:
    """Read one 4D-STEM scan per file and put them in a TiltSeries.

    Parameters
    ----------
    paths_or_folder : a folder (every supported data file in it, in natural order:
        ``scan2`` before ``scan10``) or a list of files in tilt order.
    angles : stage tilts in degrees, one per file: a sequence, or a text file. When omitted,
        ``angles.txt`` / ``tilt_angles.txt`` / ``angles.csv`` / a ``*.tlt`` / ``*.rawtlt``
        in the folder, else each scan's own ``tilt_deg`` (e.g. from its JSON sidecar).
    validate : passed to each file's reader.
    kwargs : calibration shared by all scans (``energy_eV``, ``semiangle_mrad``, ...).

    Raises
    ------
    PtychoFormatError : no files, a file that is not a 4D-STEM scan, or a number of angles
        different from the number of files.
    """
    from . import is_supported, load

    folder = None
    if isinstance(paths_or_folder, (str, Path)) and Path(paths_or_folder).is_dir():
        folder = Path(paths_or_folder)
        files = _files_of(folder, is_supported)
    elif isinstance(paths_or_folder, (str, Path)):
        files = [Path(paths_or_folder)]
    else:
        files = [Path(p) for p in paths_or_folder]
    where = folder if folder is not None else (files[0].parent if files else None)
    if not files:
        raise PtychoFormatError(where, "no 4D-STEM data files found")
    if angles is None and folder is not None:
        found = [folder / n for n in ANGLE_FILE_NAMES if (folder / n).exists()]
        found += sorted(folder.glob("*.tlt")) + sorted(folder.glob("*.rawtlt"))
        if found:
            angles = found[0]
    if isinstance(angles, (str, Path)):
        angles = read_angles(angles)
    if angles is not None:
        angles = np.atleast_1d(np.asarray(angles, dtype=float))
        if angles.ndim != 1 or len(angles) != len(files):
            raise PtychoFormatError(
                where,
                f"{len(files)} data file(s) but {angles.size} tilt angle(s); give one "
                f"angle in degrees per file (files: {[f.name for f in files][:6]}...)",
            )
    scans: list[ScanData] = []
    for k, path in enumerate(files):
        scan = load(path, validate=validate, **kwargs)
        if not isinstance(scan, ScanData):
            raise PtychoFormatError(path, f"holds a {type(scan).__name__}, not one 4D-STEM scan")
        if angles is not None:
            scan.tilt_deg = float(angles[k])
        scans.append(scan)
    series = TiltSeries(scans=scans, angles_deg=np.array([s.tilt_deg for s in scans]))
    try:
        series.validate(check_values=False)
    except ValueError as exc:
        raise PtychoFormatError(where, str(exc)) from None
    return series
