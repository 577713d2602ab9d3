"""Field checks shared by the data objects and the engines: each raises ``ValueError``
(``TypeError`` for an argument of the wrong type) naming the field, what was expected and
what was found."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

_ABERRATION_NAMES = {
    "C10",
    "C12",
    "phi12",
    "C21",
    "phi21",
    "C23",
    "phi23",
    "C30",
    "C32",
    "phi32",
    "C34",
    "phi34",
    "C50",
}


def _shape_error(name: str, found: Any, expected: str) -> ValueError:
    return ValueError(f"{name} has shape {tuple(np.shape(found))}; expected {expected}")


def check_type(name: str, value: Any, expected: type | tuple[type, ...], hint: str = "") -> None:
    """Raise ``TypeError`` naming ``name`` and the ``expected`` type(s) unless ``value`` is
    an instance of one; ``hint`` says how to build one (appended after "; ")."""
    if isinstance(value, expected):
        return
    types = expected if isinstance(expected, tuple) else (expected,)
    names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
    found = "None" if value is None else f"a {type(value).__name__}"
    raise TypeError(f"{name} is {found}; expected {names}" + (f"; {hint}" if hint else ""))


def as_array(name: str, value: Any, expected: str) -> Any:
    """``value`` when it is an array (numpy, h5py dataset: anything with a shape and a
    dtype, kept lazy), a numpy array for a list or tuple (as positions and angles are
    taken); else ``TypeError`` naming ``name`` and what was ``expected``."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    if isinstance(value, (list, tuple)):
        try:
            return np.asarray(value)
        except ValueError:  # ragged
            raise ValueError(f"{name} is a ragged {type(value).__name__}; expected {expected}") from None
    raise TypeError(f"{name} is a {type(value).__name__}; expected an array of {expected}")


def _check_finite(name: str, array: Any) -> None:
    values = np.asarray(array)
    if values.size and not np.all(np.isfinite(values)):
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")


def _is_number(value: Any) -> bool:
    """A real number (Python or numpy scalar), not a bool, a string or an array."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _number(name: str, value: Any, unit: str) -> None:
    if not _is_number(value):
        raise ValueError(f"{name} = {value!r} ({type(value).__name__}); expected a number in {unit}")


def _positive(name: str, value: float, unit: str) -> None:
    _number(name, value, unit)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} = {value!r}; expected a positive number in {unit}")


def _check_aberrations(aberrations: Any, allow_defocus: bool) -> None:
    """Aberration coefficients keyed as :data:`_ABERRATION_NAMES`: C_nm in Å, phi_nm in rad."""
    if not isinstance(aberrations, dict):
        raise ValueError(
            f"aberrations = {aberrations!r}; expected a mapping such as {{'C30': 1.2e4}} (Å, angles in rad)"
        )
    allowed = _ABERRATION_NAMES if allow_defocus else _ABERRATION_NAMES - {"C10"}
    unknown = set(aberrations) - allowed
    if unknown:
        extra = (
            "; the defocus of each image is its own field (defocus)" if "C10" in unknown and not allow_defocus else ""
        )
        raise ValueError(f"aberrations has unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}{extra}")
    for key, value in aberrations.items():
        _number(f"aberrations[{key!r}]", value, "Å (Cnm) or rad (phinm)")
        if not np.isfinite(value):
            raise ValueError(f"aberrations[{key!r}] = {value!r}; expected a finite number")


def check_scan_shape(scan_shape: Any, num_positions: int, intensity_shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``scan_shape`` is ``(Ny, Nx)`` positive integers that
    describe the ``num_positions`` patterns of intensities of shape ``intensity_shape``."""
    try:
        shape = tuple(scan_shape)
    except TypeError:
        shape = ()
    if len(shape) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in shape
    ):
        raise ValueError(f"scan_shape = {scan_shape!r}; expected (Ny, Nx), two positive integers")
    if min(shape) < 1:
        raise ValueError(f"scan_shape = {shape}; expected (Ny, Nx), two positive integers")
    if len(intensity_shape) == 4 and shape != tuple(int(v) for v in intensity_shape[:2]):
        raise ValueError(
            f"scan_shape = {shape} but intensities have shape {intensity_shape}; "
            f"expected scan_shape = {tuple(int(v) for v in intensity_shape[:2])}"
        )
    if int(shape[0]) * int(shape[1]) != num_positions:
        raise ValueError(
            f"scan_shape = {shape} describes {int(shape[0]) * int(shape[1])} "
            f"positions but intensities hold {num_positions} patterns; give the "
            "raster (Ny, Nx) with Ny × Nx patterns, or no scan_shape"
        )


def check_negative_counts(values: np.ndarray, what: str) -> None:
    """Measured counts read at load time: a few negative values (a dark-subtracted
    detector gives some) are warned of, since the reconstructions clamp them to 0; values
    whose mean is not above 0 are no signal and are refused with ``ValueError``."""
    negative = int(np.count_nonzero(values < 0))
    if not negative:
        return
    if float(values.mean()) <= 0:
        raise ValueError(
            f"{what} has negative counts (minimum {values.min():.3g}, mean {values.mean():.3g}): "
            "no signal above the dark level; subtract the dark reference and check the data"
        )
    warnings.warn(
        f"{what}: {negative} of {values.size} sampled values are negative (minimum "
        f"{values.min():.3g}); the reconstructions clamp them to 0",
        UserWarning,
        stacklevel=3,
    )


#: tilt angles that all lie within ±π/2 in degrees look like radians (a tilt series in degrees
#: spans tens of degrees)
_RADIAN_LIMIT_DEG = float(np.pi / 2)


def warn_if_radians(name: str, angles_deg: Any) -> None:
    """Warn when three or more distinct tilt angles all lie within ±π/2 "degrees": angles
    in radians given where degrees are expected (a ±60° series would read ±1.05)."""
    angles = np.asarray(angles_deg, dtype=float).ravel()
    distinct = np.unique(np.round(angles, 6))
    if len(distinct) >= 3 and np.abs(angles).max() <= _RADIAN_LIMIT_DEG:
        warnings.warn(
            f"{name} spans only {angles.min():.3g}° to {angles.max():.3g}°: were they given in radians? "
            f"Tilt angles are in degrees (np.rad2deg converts)",
            UserWarning,
            stacklevel=3,
        )


#: a bright-field disc more than this many detector half-widths in radius is refused
MAX_DISC_RADIUS_HALF_WIDTHS = 4.0


def check_disc_on_detector(calibration: Any, detector_shape: tuple[int, int]) -> None:
    """Raise ``ValueError`` when the bright-field disc (``semiangle_mrad`` /
    ``detector_sampling_mrad`` px in radius) is more than
    :data:`MAX_DISC_RADIUS_HALF_WIDTHS` times the detector's half-width: a calibration in
    the wrong unit (rad or µrad per pixel), never a measurement."""
    radius_px = calibration.semiangle_mrad / calibration.detector_sampling_mrad
    half_width_px = min(detector_shape) / 2
    # Safe: the reconstruction pixel λ/(K Δα) is (radius / half-width) × λ/(2α), so beyond 4
    # half-widths it exceeds 2λ/α, wider than the whole probe (1.22 λ/α across): a detector
    # that sees only the inside of the disc cannot be used for ptychography this way
    if radius_px > MAX_DISC_RADIUS_HALF_WIDTHS * half_width_px:
        raise ValueError(
            f"the bright-field disc of semiangle_mrad = {calibration.semiangle_mrad} mrad at "
            f"detector_sampling_mrad = {calibration.detector_sampling_mrad} mrad per pixel is "
            f"{radius_px:.4g} px in radius, more than {MAX_DISC_RADIUS_HALF_WIDTHS:g} × the "
            f"{half_width_px:g}-px half-width of the {detector_shape[0]}×{detector_shape[1]} detector, "
            "which then sees only the inside of the disc; check semiangle_mrad and "
            "detector_sampling_mrad (mrad per pixel, not rad)"
        )
