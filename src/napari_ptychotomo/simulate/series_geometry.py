"""Geometry shared by the 4D-STEM and plane-wave tilt series: slicing, tilts, truth volume.

Tilt-series rotations follow docs/conventions.md ("Rotations"): at tilt k the atoms move from r to R_k·r about the
specimen centre, R = R_z(ψ) R_y(θ) R_x(φ), then the projection along z, then an in-plane
shift in Å.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..data import Volume
from .specimens import Specimen
from .volume import potential_volume

__all__ = ["slicing", "tilt_geometry", "rotated", "truth_volume"]


def slicing(
    thickness: float, num_slices: int | None, slice_thickness: float | None, default: int = 6
) -> tuple[int, float]:
    """Number of slices and slice thickness (Å) for a specimen ``thickness`` Å thick:
    slices of ``slice_thickness`` when given, else ``num_slices`` equal slices."""
    if slice_thickness is not None:
        if not (np.isfinite(slice_thickness) and slice_thickness > 0):
            raise ValueError(f"slice_thickness = {slice_thickness!r}; expected a positive length in Å")
        num = max(1, int(math.ceil(thickness / slice_thickness - 1e-9)))
        return num, float(slice_thickness)
    num = default if num_slices is None else int(num_slices)
    if num < 1:
        raise ValueError(f"num_slices = {num_slices!r}; expected at least 1")
    return num, thickness / num


def tilt_geometry(
    specimen: Specimen,
    angles_deg: Any,
    euler_error_deg: float,
    tilt_axis_error_deg: float,
    shift_std: float,
    rng: np.random.Generator,
):
    """Nominal angles (n,), true Euler angles (n, 3) (φ, θ, ψ) in degrees, shifts (n, 2) Å
    and the depth (Å) of the slab that holds the specimen at every tilt."""
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if angles.size == 0 or not np.all(np.isfinite(angles)):
        raise ValueError(f"angles_deg = {angles_deg!r}; expected finite tilt angles in degrees")
    euler = np.zeros((len(angles), 3))
    euler[:, 1] = angles
    euler[:, 2] = tilt_axis_error_deg
    if euler_error_deg:
        euler += rng.normal(scale=euler_error_deg, size=euler.shape)
    shifts = rng.normal(scale=shift_std, size=(len(angles), 2)) if shift_std else np.zeros((len(angles), 2))
    # one slab thickness for all tilts, the specimen centre at its mid-depth
    radius = np.linalg.norm(specimen.positions - specimen.centre, axis=1).max() + 1.0
    return angles, euler, shifts, 2.0 * radius


def rotated(specimen: Specimen, euler_deg: Any, shift: Any, depth: float) -> Specimen:
    """The specimen turned by ``euler_deg`` about its centre, shifted by ``shift`` (y, x) Å,
    in a slab ``depth`` Å thick with the centre at mid-depth (same y, x as before)."""
    turned = specimen.rotate(euler_deg)
    pos = turned.positions - turned.centre + np.array([depth / 2, *specimen.centre[1:]])
    pos[:, 1:] += shift
    return Specimen(pos, specimen.numbers, np.array([depth, *specimen.cell[1:]]), dict(specimen.info))


def truth_volume(specimen: Specimen, voxel_size: float, parameterisation: str, absorption: float = 0.0) -> Volume:
    """The unrotated potential (V) on a cubic grid covering the specimen's cell, as a
    :class:`Volume`; complex (Im V = ``absorption``·Re V) when ``absorption`` is non-zero."""
    shape = tuple(int(math.ceil(c / voxel_size)) + 1 for c in specimen.cell)
    data = potential_volume(specimen.positions, specimen.numbers, shape, voxel_size, parameterisation, cutoff=3.0)
    if absorption:
        data = (data * (1.0 + 1j * float(absorption))).astype(np.complex64)
    return Volume(
        data=data,
        voxel_size=voxel_size,
        units="V",
        provenance={"source": "simulate", "parameterisation": parameterisation, "absorption": float(absorption)},
    )
