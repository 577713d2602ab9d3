"""Specimens as atom lists: crystal slabs, nanoparticles, core-shell, two grains, amorphous.

Positions are ``(n, 3)`` in Å as (z, y, x), z along the beam; ``cell`` is the box (z, y, x)
in Å that holds the atoms (positions from 0 to cell). Rotations follow docs/conventions.md:
R = R_z(ψ) R_y(θ) R_x(φ) acting on (x, y, z), Euler angles given as (φ, θ, ψ) in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ..physics.rotation import rotation_matrix_deg
from .elements import atomic_numbers

__all__ = [
    "Specimen",
    "crystal",
    "srtio3_slab",
    "fcc_slab",
    "silicon_slab",
    "fcc_nanoparticle",
    "core_shell_particle",
    "amorphous_blob",
    "two_grain_specimen",
    "LATTICE_CONSTANTS",
    "DIAMOND_LATTICE_CONSTANTS",
]

#: fcc lattice constants in Å (room temperature)
LATTICE_CONSTANTS = {
    "Al": 4.046,
    "Ni": 3.524,
    "Cu": 3.615,
    "Pd": 3.891,
    "Ag": 4.086,
    "Pt": 3.924,
    "Au": 4.078,
}
#: diamond-structure lattice constants in Å
DIAMOND_LATTICE_CONSTANTS = {"Si": 5.431, "Ge": 5.658, "C": 3.567}
_FCC = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])  # (x, y, z)


@dataclass
class Specimen:
    """Atoms of a specimen: ``positions`` (n, 3) Å as (z, y, x), ``numbers`` (n,) atomic
    numbers, ``cell`` (3,) box size in Å (z, y, x), ``info`` free-form description."""

    positions: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.numbers = atomic_numbers(np.asarray(self.numbers))
        self.cell = np.asarray(self.cell, dtype=np.float64).reshape(3)
        if len(self.numbers) != len(self.positions):
            raise ValueError(f"numbers has {len(self.numbers)} entries; expected one per atom ({len(self.positions)})")

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def centre(self) -> np.ndarray:
        """Centre of the cell (z, y, x) in Å."""
        return self.cell / 2.0

    def rotate(self, euler_deg: Any, centre: Any = None) -> Specimen:
        """Atoms moved from r to R·r about ``centre`` (default the cell centre).

        R = R_z(ψ) R_y(θ) R_x(φ) acts on (x, y, z) (docs/conventions.md); ``euler_deg`` = (φ, θ, ψ).
        A positive θ (stage tilt about y) moves an atom above the centre (z > 0) towards +x.
        """
        c = self.centre if centre is None else np.asarray(centre, dtype=np.float64)
        xyz = (self.positions - c)[:, ::-1] @ rotation_matrix_deg(euler_deg).T
        return replace(self, positions=xyz[:, ::-1] + c, info=dict(self.info))

    def tilt(self, mrad: Any) -> Specimen:
        """Columns tilted by (θ_x, θ_y) mrad: an atom at depth z (from the cell centre)
        moves by z·(tan θ_x, tan θ_y) in (x, y), as in the tilted Fresnel propagator."""
        tx, ty = np.tan(np.asarray(mrad, dtype=np.float64).reshape(2) * 1e-3)
        pos = self.positions.copy()
        dz = pos[:, 0] - self.centre[0]
        pos[:, 2] += dz * tx
        pos[:, 1] += dz * ty
        return replace(self, positions=pos, info=dict(self.info))

    def translate(self, shift: Any) -> Specimen:
        """Atoms moved by ``shift`` (z, y, x) Å; the cell is unchanged."""
        return replace(self, positions=self.positions + np.asarray(shift, float), info=dict(self.info))

    def padded(self, vacuum: Any) -> Specimen:
        """The atoms centred in a box enlarged by ``vacuum`` Å (z, y, x) on every side."""
        pad = np.broadcast_to(np.asarray(vacuum, dtype=np.float64), (3,))
        lo, hi = self.positions.min(0), self.positions.max(0)
        cell = hi - lo + 2 * pad
        return replace(self, positions=self.positions - lo + pad, cell=cell, info=dict(self.info))


def crystal(
    basis: Any, numbers: Any, lattice: Any, repeats: tuple[int, int, int], info: dict | None = None
) -> Specimen:
    """A slab of ``repeats`` (nx, ny, nz) orthorhombic unit cells.

    ``basis`` (m, 3) fractional (x, y, z) coordinates, ``numbers`` (m,), ``lattice`` the cell
    edges (a, b, c) in Å along (x, y, z).
    """
    basis = np.asarray(basis, dtype=np.float64).reshape(-1, 3)
    lattice = np.broadcast_to(np.asarray(lattice, dtype=np.float64), (3,))
    nx, ny, nz = (int(r) for r in repeats)
    cells = np.stack(np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"), -1)
    xyz = (cells.reshape(-1, 1, 3) + basis[None]).reshape(-1, 3) * lattice
    z = np.tile(atomic_numbers(np.asarray(numbers)), len(cells.reshape(-1, 3)))
    cell = (lattice * (nx, ny, nz))[::-1]
    return Specimen(xyz[:, ::-1], z, cell, dict(info or {}))


def srtio3_slab(repeats: tuple[int, int, int] = (4, 4, 6), a: float = 3.905) -> Specimen:
    """SrTiO₃ perovskite (a = 3.905 Å) viewed along [001]: Sr at the corner, Ti at the body
    centre, O at the face centres."""
    basis = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return crystal(basis, ["Sr", "Ti", "O", "O", "O"], a, repeats, {"name": "SrTiO3 [001]", "a": a})


def fcc_slab(element: str = "Pt", repeats: tuple[int, int, int] = (4, 4, 6), a: float | None = None) -> Specimen:
    """An fcc metal slab along [001]."""
    a = LATTICE_CONSTANTS[element] if a is None else a
    return crystal(_FCC, [element] * 4, a, repeats, {"name": f"{element} fcc [001]", "a": a})


def silicon_slab(repeats: tuple[int, int, int] = (3, 3, 4), a: float = 5.431) -> Specimen:
    """Diamond-structure Si along [001]."""
    basis = np.concatenate([_FCC, _FCC + 0.25])
    return crystal(basis, ["Si"] * 8, a, repeats, {"name": "Si diamond [001]", "a": a})


def _fcc_points(element: str, a: float | None, radius: float) -> tuple[np.ndarray, float]:
    """Lattice points (x, y, z) Å within about ``radius`` of the origin: fcc, or diamond for
    the elements of ``DIAMOND_LATTICE_CONSTANTS``."""
    diamond = element in DIAMOND_LATTICE_CONSTANTS
    if a is None:
        if element not in LATTICE_CONSTANTS and not diamond:
            known = sorted(LATTICE_CONSTANTS) + sorted(DIAMOND_LATTICE_CONSTANTS)
            raise ValueError(f"element = {element!r}; no lattice constant known (one of {known}, or pass a)")
        a = DIAMOND_LATTICE_CONSTANTS[element] if diamond else LATTICE_CONSTANTS[element]
    basis = np.concatenate([_FCC, _FCC + 0.25]) if diamond else _FCC
    n = int(np.ceil(radius / a)) + 1
    cells = np.stack(np.meshgrid(*[np.arange(-n, n + 1)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    return ((cells + basis[None]).reshape(-1, 3) * a), a


def fcc_nanoparticle(
    element: str = "Pt",
    size: float = 20.0,
    shape: str = "cuboctahedron",
    a: float | None = None,
    vacuum: float = 3.0,
) -> Specimen:
    """An fcc nanoparticle about ``size`` Å across, centred in a box with ``vacuum`` Å.

    ``shape``: ``"cube"`` ({100} facets, edge ``size``), ``"octahedron"`` ({111} facets,
    vertex to vertex ``size``), ``"cuboctahedron"`` (both), or ``"sphere"``.
    """
    xyz, a = _fcc_points(element, a, size)
    h = size / 2.0
    ax = np.abs(xyz)
    keep = {
        "cube": (ax <= h + 1e-6).all(1),
        "octahedron": ax.sum(1) <= h + 1e-6,
        "cuboctahedron": (ax <= 0.75 * h + 1e-6).all(1) & (ax.sum(1) <= 1.25 * h + 1e-6),
        "sphere": np.linalg.norm(xyz, axis=1) <= h + 1e-6,
    }
    if shape not in keep:
        raise ValueError(f"shape = {shape!r}; expected one of {sorted(keep)}")
    xyz = xyz[keep[shape]]
    spec = Specimen(xyz[:, ::-1], [element] * len(xyz), np.zeros(3), {"name": f"{element} {shape}", "a": a})
    return spec.padded(vacuum)


def _random_sphere_shell(rng, n, r_in, r_out):
    u = rng.random(n)
    r = (r_in**3 + u * (r_out**3 - r_in**3)) ** (1.0 / 3.0)
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True) * r[:, None]


def _random_packing(rng, sampler, count, min_distance, existing=None, tries=30):
    """Up to ``count`` random points from ``sampler(m)`` at least ``min_distance`` apart and
    from ``existing`` points (random sequential addition in vectorised batches)."""
    placed = np.zeros((0, 3)) if existing is None else np.asarray(existing)
    n_existing = len(placed)
    for _ in range(tries):
        need = count - (len(placed) - n_existing)
        if need <= 0:
            break
        cand = sampler(2 * need)
        if len(placed):
            dist, _ = cKDTree(placed).query(cand)
            cand = cand[dist >= min_distance]
        pairs = np.array(sorted(cKDTree(cand).query_pairs(min_distance))) if len(cand) else []
        if len(pairs):
            drop = np.zeros(len(cand), bool)
            drop[pairs[:, 1]] = True  # keep the lower index of each close pair
            cand = cand[~drop]
        placed = np.concatenate([placed, cand[:need]])
    return placed[n_existing:]


def amorphous_blob(
    elements: Any = ("Si", "O", "O"),
    radius: float = 10.0,
    density: float = 0.066,
    min_distance: float = 1.6,
    seed: int = 0,
    vacuum: float = 3.0,
) -> Specimen:
    """A random sphere of atoms (composition cycled from ``elements``) with ``density``
    atoms/Å³ and no two atoms closer than ``min_distance`` Å."""
    rng = np.random.default_rng(seed)
    count = int(round(density * 4.0 / 3.0 * np.pi * radius**3))
    xyz = _random_packing(rng, lambda m: _random_sphere_shell(rng, m, 0.0, radius), count, min_distance)
    z = np.resize(atomic_numbers(np.asarray(list(elements))), len(xyz))
    spec = Specimen(xyz[:, ::-1], z, np.zeros(3), {"name": "amorphous blob", "seed": seed})
    return spec.padded(vacuum)


def core_shell_particle(
    core: str = "Pt",
    core_radius: float = 7.0,
    shell_thickness: float = 4.0,
    shell_density: float = 0.117,
    min_distance: float = 1.7,
    seed: int = 0,
    vacuum: float = 3.0,
    shell_elements: Any = ("Al", "Al", "O", "O", "O"),
) -> Specimen:
    """A Pt@Al₂O₃-like particle: a spherical crystalline ``core`` (fcc, or diamond for Si,
    Ge, C) in an amorphous shell of ``shell_elements`` (cycled; default Al:O = 2:3 with
    ``shell_density`` atoms/Å³, as alumina's 0.117; SiO₂-like: ("Si", "O", "O") at 0.066)."""
    rng = np.random.default_rng(seed)
    xyz, a = _fcc_points(core, None, core_radius)
    xyz = xyz[np.linalg.norm(xyz, axis=1) <= core_radius]
    r_out = core_radius + shell_thickness
    count = int(round(shell_density * 4.0 / 3.0 * np.pi * (r_out**3 - (core_radius + 1.0) ** 3)))
    shell = _random_packing(
        rng,
        lambda m: _random_sphere_shell(rng, m, core_radius + 1.0, r_out),
        count,
        min_distance,
        existing=xyz,
    )
    z_shell = np.resize(atomic_numbers(np.asarray(list(shell_elements))), len(shell))
    z = np.concatenate([np.full(len(xyz), atomic_numbers(np.array([core]))[0]), z_shell])
    elements = list(shell_elements)
    shell_name = "".join(e + (str(elements.count(e)) if elements.count(e) > 1 else "") for e in dict.fromkeys(elements))
    info = {"name": f"{core}@{shell_name} core-shell", "core_atoms": len(xyz), "seed": seed, "a": a}
    spec = Specimen(np.concatenate([xyz, shell])[:, ::-1], z, np.zeros(3), info)
    return spec.padded(vacuum)


def two_grain_specimen(
    base: Specimen | None = None, mistilt_mrad: tuple[Any, Any] = ((3.0, 0.0), (-3.0, 0.0))
) -> Specimen:
    """Two columns of a crystal side by side along x, tilted by different mistilts.

    Atoms with x below the cell centre form grain 0 (tilted by ``mistilt_mrad[0]``), the
    others grain 1. ``info["grain"]`` holds each atom's grain, ``info["grain_mistilt_mrad"]``
    the mistilts (θ_x, θ_y) in mrad.
    """
    base = fcc_slab("Pt", (8, 4, 6)) if base is None else base
    grain = (base.positions[:, 2] >= base.centre[2]).astype(np.int64)
    pos = base.positions.copy()
    for g in (0, 1):
        pos[grain == g] = base.tilt(mistilt_mrad[g]).positions[grain == g]
    info = dict(
        base.info,
        name=f"two grains of {base.info.get('name', 'crystal')}",
        grain=grain,
        grain_mistilt_mrad=np.asarray(mistilt_mrad, dtype=np.float64),
    )
    return Specimen(pos, base.numbers, base.cell, info)
