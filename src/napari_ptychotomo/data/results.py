"""Result objects of the reconstruction steps: MSP, alignment, volumes, resolution, atoms,
and the Project that holds them with the tilt series. Same conventions as :mod:`napari_ptychotomo.data`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .checks import _check_finite, _positive, _shape_error, check_scan_shape
from .inputs import TiltSeries

__all__ = ["MSPResult", "Alignment", "Volume", "Resolution", "Atoms", "Project"]


@dataclass
class MSPResult:
    """Result of multislice ptychography on one scan.

    ``object`` is the complex projected potential per slice ``(n_slices, ny, nx)`` in V·Å
    (transmission exp(iσV)); ``probe`` the probe modes ``(n_modes, Ky, Kx)`` in real space;
    ``positions`` ``(n, 2)`` in Å in the object frame; ``tilt_mrad`` the fitted specimen
    mistilt (θx, θy); ``slice_thickness`` in Å; ``tilt_map`` ``(n, 2)`` per-position
    (θx, θy) in mrad or ``None``; ``pixel_size`` the object sampling in Å.
    """

    object: np.ndarray
    probe: np.ndarray
    positions: np.ndarray
    tilt_mrad: np.ndarray
    slice_thickness: float
    pixel_size: float
    energy_eV: float
    tilt_map: np.ndarray | None = None
    loss_history: list[float] = field(default_factory=list)
    tilt_deg: float = 0.0
    scan_shape: tuple[int, int] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def converged(self) -> bool | None:
        """Whether the run stopped on its convergence rule (``None`` when not recorded)."""
        value = self.provenance.get("converged")
        return None if value is None else bool(value)

    def phase(self) -> np.ndarray:
        """Summed object phase ``(ny, nx)`` in rad: σ · Σ Re V."""
        from ..optics import interaction_constant, phase_shift

        sigma = float(interaction_constant(self.energy_eV))
        return phase_shift(np.real(np.asarray(self.object)).sum(axis=0), sigma).astype(np.float32)

    def validate(self) -> MSPResult:
        obj = np.asarray(self.object)
        if obj.ndim != 3:
            raise _shape_error("object", obj, "(n_slices, ny, nx) complex V·Å")
        if np.asarray(self.probe).ndim != 3:
            raise _shape_error("probe", self.probe, "(n_modes, Ky, Kx) complex")
        if np.asarray(self.positions).ndim != 2 or np.shape(self.positions)[1] != 2:
            raise _shape_error("positions", self.positions, "(n, 2) in Å as (y, x)")
        if np.shape(self.tilt_mrad) != (2,):
            raise _shape_error("tilt_mrad", self.tilt_mrad, "(2,) as (θx, θy) in mrad")
        if self.tilt_map is not None and np.shape(self.tilt_map) != (len(self.positions), 2):
            raise _shape_error("tilt_map", self.tilt_map, f"({len(self.positions)}, 2) as (θx, θy) in mrad")
        if self.scan_shape is not None:
            check_scan_shape(self.scan_shape, len(self.positions), (len(self.positions), 0, 0))
        _positive("slice_thickness", self.slice_thickness, "Å")
        _positive("pixel_size", self.pixel_size, "Å")
        _check_finite("object", obj)
        return self


@dataclass
class Alignment:
    """Rigid alignment of a tilt series.

    ``euler_deg`` ``(n_tilts, 3)`` as (φ, θ, ψ) in degrees with R = R_z(ψ) R_y(θ) R_x(φ);
    ``shifts`` ``(n_tilts, 2)`` in Å as (y, x), the shift found in each projection.
    """

    euler_deg: np.ndarray
    shifts: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_angles(cls, angles_deg: Any) -> Alignment:
        """Nominal alignment: stage tilts about y, no in-plane error, zero shifts."""
        angles = np.asarray(angles_deg, dtype=np.float64)
        euler = np.zeros((len(angles), 3))
        euler[:, 1] = angles
        return cls(euler_deg=euler, shifts=np.zeros((len(angles), 2)))

    def validate(self) -> Alignment:
        euler = np.asarray(self.euler_deg)
        if euler.ndim != 2 or euler.shape[1] != 3:
            raise _shape_error("euler_deg", euler, "(n_tilts, 3) as (φ, θ, ψ) in degrees")
        if np.shape(self.shifts) != (len(euler), 2):
            raise _shape_error("shifts", self.shifts, f"({len(euler)}, 2) in Å as (y, x)")
        _check_finite("euler_deg", euler)
        _check_finite("shifts", self.shifts)
        return self


@dataclass
class Volume:
    """A 3D volume ``(nz, ny, nx)`` with cubic voxels of ``voxel_size`` Å.

    ``data`` is real (e.g. a phase or potential in V) or complex (complex potential, Im =
    absorption). ``origin`` is the position in Å of voxel (0, 0, 0)'s centre as (z, y, x).
    ``halves`` optionally holds two half-data reconstructions for FSC;
    ``provenance["halves_share"]`` lists what they have in common besides the data (their
    start), if anything, in which case their FSC is no resolution.
    """

    data: Any
    voxel_size: float
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    halves: tuple[Any, Any] | None = None
    units: str = "V"
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    def validate(self) -> Volume:
        if len(self.data.shape) != 3 or min(self.data.shape) < 1:
            raise _shape_error("data", self.data, "(nz, ny, nx) with at least one voxel per axis")
        if np.dtype(self.data.dtype).kind not in "iufc":
            raise ValueError(f"data has dtype {np.dtype(self.data.dtype)}; expected real or complex numbers")
        _positive("voxel_size", self.voxel_size, "Å")
        if np.shape(self.origin) != (3,):
            raise _shape_error("origin", self.origin, "(3,) in Å as (z, y, x)")
        if self.halves is not None:
            if len(self.halves) != 2:
                raise ValueError(f"halves has {len(self.halves)} entries; expected 2")
            for k, half in enumerate(self.halves):
                if tuple(half.shape) != tuple(self.data.shape):
                    raise _shape_error(f"halves[{k}]", half, f"{tuple(self.data.shape)} like data")
        _check_finite("data", self.data)
        return self


@dataclass
class Resolution:
    """Fourier shell correlation and the resolution read from it.

    ``frequency`` shell centres in 1/Å, ``fsc`` the correlation per shell, ``thresholds``
    threshold curves per shell (``"one_bit"``, ``"half_bit"``, ``"0.143"``), ``crossings``
    the first crossing of each as a resolution in Å (``nan`` when none), ``directional``
    optional per-direction results ``{name: {"frequency", "fsc", "crossings"}}``.
    """

    frequency: np.ndarray
    fsc: np.ndarray
    crossings: dict[str, float]
    thresholds: dict[str, np.ndarray] = field(default_factory=dict)
    shell_counts: np.ndarray | None = None
    directional: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> Resolution:
        if np.shape(self.fsc) != np.shape(self.frequency):
            raise _shape_error("fsc", self.fsc, f"{np.shape(self.frequency)} like frequency")
        for name, curve in self.thresholds.items():
            if np.shape(curve) != np.shape(self.frequency):
                raise _shape_error(f"thresholds[{name!r}]", curve, "one value per shell")
        return self


@dataclass
class Atoms:
    """Atoms in a volume: ``positions`` ``(n, 3)`` in Å as (z, y, x) in the volume's frame,
    where voxel (i, j, k)'s centre lies at ``origin + (i, j, k) · voxel_size`` (so a
    Volume's origin is included; 0 for a volume whose origin is 0); ``species`` integer classes ordered by
    increasing scattering strength; ``intensities`` integrated intensity per atom;
    ``widths`` fitted Gaussian σ in Å; ``names`` optional element symbol per class.
    """

    positions: np.ndarray
    species: np.ndarray
    intensities: np.ndarray | None = None
    widths: np.ndarray | None = None
    names: list[str] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(np.shape(self.positions)[0])

    def symbols(self) -> list[str]:
        """Element symbol (or ``X<class>``) of every atom."""
        species = np.asarray(self.species, dtype=int)
        if self.names:
            return [self.names[s] if 0 <= s < len(self.names) else f"X{s}" for s in species]
        return [f"X{s}" for s in species]

    def validate(self) -> Atoms:
        pos = np.asarray(self.positions)
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise _shape_error("positions", pos, "(n, 3) in Å as (z, y, x)")
        n = len(pos)
        if np.shape(self.species) != (n,):
            raise _shape_error("species", self.species, f"({n},) class labels")
        for name in ("intensities", "widths"):
            value = getattr(self, name)
            if value is not None and np.shape(value) != (n,):
                raise _shape_error(name, value, f"({n},) one per atom")
        _check_finite("positions", pos)
        return self


@dataclass
class Project:
    """Everything of one study: the tilt series and each step's results.

    ``msp`` maps tilt index → MSPResult; ``volumes`` maps a name (``"linear"``,
    ``"end-to-end"``, ``"truth"``) → Volume; ``atoms`` maps a name → Atoms.
    """

    series: TiltSeries | None = None
    msp: dict[int, MSPResult] = field(default_factory=dict)
    alignment: Alignment | None = None
    volumes: dict[str, Volume] = field(default_factory=dict)
    resolution: dict[str, Resolution] = field(default_factory=dict)
    atoms: dict[str, Atoms] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> Project:
        if self.series is not None:
            self.series.validate(check_values=False)
        for result in self.msp.values():
            result.validate()
        if self.alignment is not None:
            self.alignment.validate()
        for group in (self.volumes, self.resolution, self.atoms):
            for item in group.values():
                item.validate()
        return self
