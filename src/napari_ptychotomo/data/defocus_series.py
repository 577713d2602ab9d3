"""Plane-wave (HRTEM) input data object: a defocus series of one tilt with the
microscope's optics (conventions in :mod:`napari_ptychotomo.data`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..params_meta import param, ui
from .checks import _check_aberrations, _check_finite, _number, _positive, _shape_error, as_array

__all__ = ["DEFOCUS_REFERENCES", "DefocusSeries"]


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

    def __post_init__(self) -> None:
        self.images = as_array("images", self.images, "(n_defocus, ny, nx) intensities")

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
