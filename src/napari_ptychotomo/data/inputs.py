"""Input data objects: the calibration, a 4D-STEM scan, a plane-wave defocus series, and a
tilt series of either (conventions in :mod:`napari_ptychotomo.data`).

The tilt series is defined here; the 4D-STEM scan and its calibration live in
:mod:`.scan`, the plane-wave defocus series in :mod:`.defocus_series`, and are
re-exported from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .checks import _check_finite, warn_if_radians
from .defocus_series import DEFOCUS_REFERENCES, DefocusSeries, _optional_range  # noqa: F401  (re-exported)
from .scan import Calibration, ScanData

__all__ = [
    "Calibration",
    "ScanData",
    "DefocusSeries",
    "TiltSeries",
]


@dataclass
class TiltSeries:
    """Scans (4D-STEM) or defocus series (plane wave) at nominal stage tilts in degrees."""

    scans: list[Any]
    angles_deg: Any
    truth: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.scans)

    def validate(self, check_values: bool = True) -> TiltSeries:
        try:
            raw = np.asarray(self.angles_deg) if not isinstance(self.angles_deg, str) else None
        except ValueError:  # ragged
            raw = None
        if raw is None or raw.dtype.kind not in "iuf":
            raise ValueError(
                f"angles_deg = {self.angles_deg!r}; expected numbers, the stage tilt of each scan in degrees"
            )
        angles = raw.astype(float)
        if angles.ndim != 1 or len(angles) != len(self.scans):
            raise ValueError(
                f"angles_deg has {angles.size} value(s) but the series has "
                f"{len(self.scans)} scan(s); give one tilt angle in degrees per scan"
            )
        _check_finite("angles_deg", angles)
        warn_if_radians("angles_deg", angles)
        if np.any(np.abs(angles) > 90):
            raise ValueError(
                f"angles_deg ranges to {np.abs(angles).max():.1f}; expected stage tilts "
                "in degrees within ±90 (did you pass radians times 57?)"
            )
        if not self.scans:
            raise ValueError("scans is empty; a tilt series needs at least one scan")
        for k, scan in enumerate(self.scans):
            try:
                if isinstance(scan, ScanData):
                    scan.validate(check_values=check_values)
                else:
                    scan.validate()
            except ValueError as exc:
                raise ValueError(f"scan {k} (tilt {angles[k]:g}°): {exc}") from None
        return self
