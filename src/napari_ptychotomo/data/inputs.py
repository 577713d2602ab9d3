"""Input data objects: the calibration, a 4D-STEM scan, a plane-wave defocus series, and a
tilt series of either (conventions in :mod:`napari_ptychotomo.data`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..params_meta import param, ui
from .checks import (
    _check_aberrations,
    _check_finite,
    _number,
    _positive,
    _shape_error,
    check_negative_counts,
    check_scan_shape,
)

__all__ = [
    "Calibration",
    "ScanData",
    "DefocusSeries",
    "TiltSeries",
]


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


#: planes a plane-wave series may measure its defocus from
DEFOCUS_REFERENCES = ("centre", "exit")


def _optional_range(name: str, value: Any, unit: str, low: float, high: float, hint: str) -> None:
    """``value`` is a number in [low, high) (``unit``); ``hint`` says what is typical."""
    _number(name, value, unit)
    if not (np.isfinite(value) and low <= value < high):
        raise ValueError(f"{name} = {value!r}; expected {low:g} ≤ {name} < {high:g} {unit} ({hint})")


@dataclass
class DefocusSeries:
    """Plane-wave (HRTEM) images of one tilt at several defoci, with the microscope's optics.

    Parameters
    ----------
    images : (n_defocus, ny, nx) intensities normalised to a unit incident beam.
    defocus : (n_defocus,) defocus of each image in Å (positive is underfocus, C10 =
        −defocus), measured from the plane ``defocus_reference`` names.
    pixel_size : Å; energy_eV : beam energy in eV; tilt_deg : stage tilt in degrees.
    aperture_mrad : objective aperture semi-angle in mrad (``None``: no aperture, every
        frequency of the grid is imaged); the edge is one reciprocal pixel wide as in
        :func:`~napari_ptychotomo.physics.soft_aperture`.
    aberrations : further aberrations of the objective lens, in the names and units of
        :attr:`Calibration.aberrations` (``C12`` two-fold astigmatism in Å with its azimuth
        ``phi12`` in rad, ``C30`` = Cs in Å, ...); the defocus is per image, so no ``C10``.
    focal_spread : standard deviation Δ of the defocus (chromatic spread and lens
        instabilities) in Å; 0 = temporally coherent.
    illumination_semiangle_mrad : 1/e half-width β of the Gaussian spread of incidence
        angles in mrad (beam divergence); 0 = spatially coherent.
    defocus_reference : ``"centre"`` (the plane through the rotation centre, normal to the
        beam: the same whatever the volume's box) or ``"exit"`` (the exit surface of the
        simulated slab / reconstructed box).
    """

    images: Any
    defocus: np.ndarray
    pixel_size: float
    energy_eV: float
    tilt_deg: float = 0.0
    aperture_mrad: float | None = param(
        None,
        label="objective aperture",
        unit="mrad",
        min=0.0,
        max=999.0,
        step=0.5,
        none=0.0,
        tooltip="Objective aperture semi-angle in mrad; 0 = no aperture (every frequency of the grid is imaged). "
        "Soft edge one reciprocal pixel wide.",
    )
    aberrations: dict[str, float] = param(
        default_factory=dict,
        label="aberrations",
        parts={
            "C30": ui(
                "C30 = Cs",
                unit="Å",
                min=-1e9,
                max=1e9,
                step=1e4,
                default=0.0,
                tooltip="Spherical aberration C30 in Å (1 mm = 1e7 Å), as Calibration.aberrations['C30'].",
            ),
            "C12": ui(
                "C12 astigmatism",
                unit="Å",
                min=0.0,
                max=1e6,
                step=1.0,
                default=0.0,
                tooltip="Two-fold astigmatism C12 in Å, as Calibration.aberrations['C12'].",
            ),
            "phi12": ui(
                "phi12",
                unit="rad",
                min=-math.pi,
                max=math.pi,
                step=0.05,
                default=0.0,
                tooltip="Azimuth of the two-fold astigmatism in rad, as Calibration.aberrations['phi12'].",
            ),
        },
    )
    focal_spread: float = param(
        0.0,
        label="focal spread",
        unit="Å",
        min=0.0,
        max=9999.0,
        step=1.0,
        tooltip="Standard deviation of the defocus in Å (chromatic spread, lens current): the temporal-coherence "
        "envelope exp[-½(πλΔk²)²]; 0 = coherent.",
    )
    illumination_semiangle_mrad: float = param(
        0.0,
        label="illumination semi-angle",
        unit="mrad",
        min=0.0,
        max=9.99,
        step=0.05,
        tooltip="Beam divergence in mrad (1/e half-width of the incidence angles): the spatial-coherence envelope "
        "exp[-(β/2λ)²|∇χ|²]; 0 = parallel beam.",
    )
    defocus_reference: str = param(
        "centre",
        label="defocus measured from",
        choices=("centre", "exit"),
        tooltip="centre: the plane through the rotation centre (the same for any box); exit: the exit surface of "
        "the reconstruction's box.",
    )

    def optics(self) -> dict[str, Any]:
        """The imaging optics as keywords of
        :func:`~napari_ptychotomo.physics.transfer.objective_transfer`."""
        return {
            "aperture_mrad": self.aperture_mrad,
            "aberrations": {k: float(v) for k, v in self.aberrations.items()},
            "focal_spread": float(self.focal_spread),
            "illumination_semiangle_mrad": float(self.illumination_semiangle_mrad),
        }

    def with_optics(self, **optics: Any) -> DefocusSeries:
        """A copy with the given optics fields replaced (the images are shared)."""
        import dataclasses

        unknown = set(optics) - set(self.optics()) - {"defocus_reference"}
        if unknown:
            raise ValueError(
                f"with_optics: unknown field(s) {sorted(unknown)}; expected "
                f"{', '.join([*self.optics(), 'defocus_reference'])}"
            )
        if "aberrations" in optics:
            optics["aberrations"] = dict(optics["aberrations"])
        return dataclasses.replace(self, **optics)

    def exit_defocus(self, centre_to_exit: float) -> np.ndarray:
        """Defocus of each image in Å measured from the exit surface, for a slab whose exit
        surface lies ``centre_to_exit`` Å downstream of the rotation centre.

        Defocus is the distance from the reference plane back to the plane in focus, so
        moving the reference downstream by h adds h: Δf_exit = Δf_centre + h.
        """
        defocus = np.asarray(self.defocus, dtype=np.float64)
        return defocus + float(centre_to_exit) if self.defocus_reference == "centre" else defocus

    def validate(self) -> DefocusSeries:
        shape = tuple(self.images.shape)
        if len(shape) != 3:
            raise _shape_error("images", self.images, "(n_defocus, ny, nx)")
        if np.shape(self.defocus) != (shape[0],):
            raise _shape_error("defocus", self.defocus, f"({shape[0]},) in Å, one per image")
        _check_finite("defocus", self.defocus)
        _positive("pixel_size", self.pixel_size, "Å")
        _positive("energy_eV", self.energy_eV, "eV")
        self._validate_optics()
        _check_finite("images", self.images)
        return self

    def _validate_optics(self) -> None:
        if self.aperture_mrad is not None:
            _optional_range(
                "aperture_mrad",
                self.aperture_mrad,
                "mrad",
                1e-3,
                1000.0,
                "an objective aperture semi-angle, typically 5–40 mrad; None for none",
            )
        _optional_range(
            "focal_spread", self.focal_spread, "Å", 0.0, 1e4, "the rms defocus spread, typically 10–80 Å; 0 for none"
        )
        _optional_range(
            "illumination_semiangle_mrad",
            self.illumination_semiangle_mrad,
            "mrad",
            0.0,
            10.0,
            "the beam divergence, typically 0.05–1 mrad; 0 for none",
        )
        if self.defocus_reference not in DEFOCUS_REFERENCES:
            raise ValueError(
                f"defocus_reference = {self.defocus_reference!r}; expected one of "
                f"{', '.join(map(repr, DEFOCUS_REFERENCES))} (the plane the defocus "
                "is measured from)"
            )
        _check_aberrations(self.aberrations, allow_defocus=False)


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
