"""4D-STEM input data objects: the microscope and detector calibration and one scan of
centred diffraction intensities (conventions in :mod:`napari_ptychotomo.data`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .checks import (
    _check_aberrations,
    _check_finite,
    _number,
    _positive,
    _shape_error,
    as_array,
    check_negative_counts,
    check_scan_shape,
    check_type,
)

__all__ = ["Calibration", "ScanData"]


@dataclass
class Calibration:
    """Microscope and detector calibration of one 4D-STEM scan.

    Parameters
    ----------
    energy_eV : beam energy in eV.
    semiangle_mrad : probe-forming aperture semi-angle in mrad.
    detector_sampling_mrad : detector pixel size in mrad (square pixels).
    defocus : defocus in Å; positive is underfocus (C10 = -defocus, as in abTEM).
    scan_step : raster step in Å (used when positions are not given).
    aberrations : further aberration coefficients in Å and angles in rad, keyed
        ``C12``, ``phi12``, ``C21``, ``phi21``, ``C23``, ``phi23``, ``C30`` (Cs), ...
        ``C10`` here overrides ``defocus``.
    scan_rotation_deg : rotation of the scan axes against the detector axes.
    """

    energy_eV: float
    semiangle_mrad: float
    detector_sampling_mrad: float
    defocus: float = 0.0
    scan_step: float | None = None
    aberrations: dict[str, float] = field(default_factory=dict)
    scan_rotation_deg: float = 0.0

    @property
    def wavelength(self) -> float:
        """Relativistic electron wavelength in Å."""
        from ..optics import wavelength

        return float(wavelength(self.energy_eV))

    @property
    def detector_sampling(self) -> float:
        """Detector pixel size in Å⁻¹."""
        return self.detector_sampling_mrad * 1e-3 / self.wavelength

    def aberration_dict(self) -> dict[str, float]:
        """All aberration coefficients with ``C10 = -defocus`` filled in."""
        out = {"C10": -float(self.defocus)}
        out.update({k: float(v) for k, v in self.aberrations.items()})
        return out

    def pixel_size(self, detector_shape: tuple[int, int]) -> tuple[float, float]:
        """Real-space sampling (y, x) in Å of a reconstruction on this detector."""
        ky, kx = detector_shape
        dk = self.detector_sampling
        return 1.0 / (ky * dk), 1.0 / (kx * dk)

    def validate(self) -> Calibration:
        _positive("energy_eV", self.energy_eV, "eV")
        _number("defocus", self.defocus, "Å")
        _number("scan_rotation_deg", self.scan_rotation_deg, "degrees")
        if self.energy_eV < 1e3 or self.energy_eV > 3e6:
            raise ValueError(f"energy_eV = {self.energy_eV!r}; expected a beam energy in eV (e.g. 300e3 for 300 keV)")
        _positive("semiangle_mrad", self.semiangle_mrad, "mrad")
        _positive("detector_sampling_mrad", self.detector_sampling_mrad, "mrad per pixel")
        if not np.isfinite(self.defocus):
            raise ValueError(f"defocus = {self.defocus!r}; expected a finite length in Å")
        if self.scan_step is not None:
            _positive("scan_step", self.scan_step, "Å")
        _check_aberrations(self.aberrations, allow_defocus=True)
        return self


@dataclass
class ScanData:
    """One 4D-STEM scan: centred diffraction intensities at known probe positions.

    ``intensities`` is ``(Ny, Nx, Ky, Kx)`` or ``(n, Ky, Kx)`` and may be a lazy h5py
    dataset. ``positions`` is ``(n, 2)`` in Å as ``(y, x)``; when ``None`` the raster of
    ``calibration.scan_step`` is used. ``tilt_deg`` is the stage tilt of this scan in a
    series. ``truth`` carries simulator ground truth (mistilt, thickness, positions, ...).
    """

    intensities: Any
    calibration: Calibration
    positions: np.ndarray | None = None
    tilt_deg: float = 0.0
    scan_shape: tuple[int, int] | None = None
    truth: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.intensities = as_array(
            "intensities", self.intensities, "(Ny, Nx, Ky, Kx) or (n, Ky, Kx) diffraction patterns"
        )
        check_type(
            "calibration",
            self.calibration,
            Calibration,
            "give Calibration(energy_eV, semiangle_mrad, detector_sampling_mrad, scan_step=...)",
        )
        shape = tuple(self.intensities.shape)
        if self.scan_shape is None and len(shape) == 4:
            self.scan_shape = (int(shape[0]), int(shape[1]))

    @property
    def num_positions(self) -> int:
        shape = tuple(self.intensities.shape)
        return int(np.prod(shape[:-2]))

    @property
    def detector_shape(self) -> tuple[int, int]:
        shape = tuple(self.intensities.shape)
        return int(shape[-2]), int(shape[-1])

    def patterns(self, index: Any = slice(None)) -> np.ndarray:
        """Diffraction patterns ``(m, Ky, Kx)`` as float32; reads only what is asked for.

        Raises ``ValueError`` when a pattern read holds NaN or infinite counts (a file is
        checked only on a sample of patterns when opened, so this is where the rest are).
        """
        out = self._read_patterns(index)
        if not np.all(np.isfinite(out)):
            bad = np.flatnonzero(~np.isfinite(out).reshape(len(out), -1).all(axis=1))
            flat = np.atleast_1d(np.arange(self.num_positions)[index])
            source = getattr(self.intensities, "path", None) or getattr(self.intensities, "filename", None)
            raise ValueError(
                f"{str(source) + ': ' if source else ''}intensities: pattern(s) {flat[bad[:5]].tolist()} hold NaN or infinite counts; "
                "repair or exclude them (the file was only sampled when it was opened)"
            )
        return out

    def _read_patterns(self, index: Any) -> np.ndarray:
        data = self.intensities
        if len(data.shape) == 4:
            ny, nx = data.shape[:2]
            if isinstance(index, slice) and index == slice(None):
                out = np.asarray(data[()])
                return out.reshape(ny * nx, *self.detector_shape).astype(np.float32, copy=False)
            flat = np.arange(ny * nx)[index]
            flat = np.atleast_1d(flat)
            order = np.argsort(flat)
            iy, ix = np.divmod(flat[order], nx)
            rows = [np.asarray(data[y, x]) for y, x in zip(iy, ix)]
            out = np.empty((len(flat), *self.detector_shape), np.float32)
            out[order] = np.stack(rows) if rows else out[order]
            return out
        if isinstance(index, slice):
            return np.asarray(data[index], dtype=np.float32)
        idx = np.atleast_1d(np.asarray(index))
        order = np.argsort(idx)
        out = np.empty((len(idx), *self.detector_shape), np.float32)
        out[order] = np.asarray(data[np.sort(idx).tolist()], dtype=np.float32)
        return out

    def positions_angstrom(self) -> np.ndarray:
        """Probe positions ``(n, 2)`` in Å as (y, x): given, or the raster of the scan step."""
        if self.positions is not None:
            return np.asarray(self.positions, dtype=np.float64)
        if self.scan_shape is None or self.calibration.scan_step is None:
            raise ValueError(
                "positions are missing: give positions (n, 2) in Å, or a 4D intensity "
                "array (Ny, Nx, Ky, Kx) together with calibration.scan_step"
            )
        ny, nx = self.scan_shape
        step = float(self.calibration.scan_step)
        yy, xx = np.meshgrid(np.arange(ny) * step, np.arange(nx) * step, indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)

    def validate(self, check_values: bool = True) -> ScanData:
        """Check shapes, calibration and (on a sample of patterns) the counts."""
        self.calibration.validate()
        shape = tuple(self.intensities.shape)
        if len(shape) not in (3, 4):
            raise _shape_error("intensities", self.intensities, "(Ny, Nx, Ky, Kx) or (n, Ky, Kx) diffraction patterns")
        if int(np.prod(shape[:-2])) == 0:
            raise ValueError(
                f"intensities has shape {shape}: the scan has no positions; expected at least one diffraction pattern"
            )
        if min(shape) < 1 or shape[-1] < 8 or shape[-2] < 8:
            raise _shape_error("intensities", self.intensities, "at least 8×8 detector pixels")
        kind = np.dtype(self.intensities.dtype).kind
        if kind not in "iuf":
            raise ValueError(
                f"intensities have dtype {np.dtype(self.intensities.dtype)}; expected "
                "real detector counts (integers or floats, not complex or bool)"
            )
        if self.scan_shape is not None:
            check_scan_shape(self.scan_shape, self.num_positions, shape)
        _number("tilt_deg", self.tilt_deg, "degrees")
        if not (np.isfinite(self.tilt_deg) and abs(self.tilt_deg) <= 90):
            raise ValueError(f"tilt_deg = {self.tilt_deg!r}; expected a stage tilt in degrees within ±90")
        if self.positions is not None:
            pos = np.asarray(self.positions)
            if pos.shape != (self.num_positions, 2):
                raise _shape_error("positions", pos, f"({self.num_positions}, 2) in Å as (y, x)")
            _check_finite("positions", pos)
        elif self.scan_shape is None or self.calibration.scan_step is None:
            self.positions_angstrom()  # raises the explanatory error
        if check_values:
            n = self.num_positions
            sample = np.unique(np.linspace(0, n - 1, min(n, 64)).astype(int))
            values = self.patterns(sample)
            _check_finite("intensities", values)
            check_negative_counts(values, "intensities")
        return self
