"""Lattice registration (Romanov et al. 2025): a simulated crystal turned by a known small
rotation and shifted, with vacancies and displaced atoms, must give back its rotation,
translation, exactly the removed sites as missing, and the displacements per axis."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ptychotomo import Volume, register_lattice
from napari_ptychotomo.physics import rotation_matrix_deg
from napari_ptychotomo.simulate import fcc_slab, potential_volume, srtio3_slab

VOXEL = 0.4  # Å
N = 40
FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
EULER = (1.5, -2.0, 2.5)  # (φ, θ, ψ) degrees
SHIFT = np.array([0.37, -0.81, 0.52])  # Å (z, y, x)


def rotation_angle_deg(a, b):
    cos = (np.trace(a @ b.T) - 1) / 2
    return float(np.rad2deg(np.arccos(np.clip(cos, -1, 1))))


@pytest.fixture(scope="module")
def platinum():
    """Pt fcc filling a 16 Å box, turned by EULER about its centre and shifted by SHIFT;
    four atoms removed and three moved by +0.3 Å along x, all away from the faces."""
    slab = fcc_slab("Pt", (8, 8, 8))
    turned = slab.rotate(EULER)
    move = np.full(3, (N - 1) / 2 * VOXEL) - slab.centre + SHIFT
    positions = turned.positions + move
    box = N * VOXEL
    positions = positions[np.all((positions > -3) & (positions < box + 3), axis=1)]
    rng = np.random.default_rng(1)
    core = np.flatnonzero(np.all((positions > 4) & (positions < box - 5), axis=1))
    chosen = rng.choice(core, 7, replace=False)
    removed, moved = chosen[:4], chosen[4:]
    atoms = positions.copy()
    atoms[moved, 2] += 0.3
    keep = np.ones(len(atoms), bool)
    keep[removed] = False
    volume = potential_volume(atoms[keep], np.full(keep.sum(), 78), (N,) * 3, VOXEL, cutoff=3.0)
    # the true lattice origin (crystal-frame 0) in the volume frame, (x, y, z)
    r = rotation_matrix_deg(EULER)
    origin_xyz = r @ (-slab.centre[::-1]) + slab.centre[::-1] + move[::-1]
    registration = register_lattice(Volume(volume, voxel_size=VOXEL), 3.924, basis=FCC, species=["Pt"] * 4)
    return registration, positions, removed, moved, origin_xyz


def test_rotation_is_recovered_within_0_02_degrees(platinum):
    registration, *_ = platinum
    assert rotation_angle_deg(registration.rotation, rotation_matrix_deg(EULER)) < 0.02
    assert registration.euler_deg == pytest.approx(EULER, abs=0.03)
    assert registration.n_bragg >= 20


def test_translation_is_a_lattice_translation_away_from_the_truth(platinum):
    registration, _, _, _, origin_xyz = platinum
    offset = registration.translation[::-1] - origin_xyz  # x y z, Å
    cells = registration.rotation.T @ offset / 3.924  # in units of the cubic cell
    # fcc: the face-centring vectors are translations of the lattice too
    error = min(np.abs(cells - b - np.round(cells - b)).max() for b in np.array(FCC))
    assert error * 3.924 < 0.01  # Å


def test_sites_sit_on_the_true_atoms(platinum):
    from scipy.spatial import cKDTree

    registration, positions, *_ = platinum
    distance, _ = cKDTree(positions).query(registration.sites)
    assert distance.max() < 0.01
    assert len(registration.sites) > 150  # every site 2 voxels inside the faces


def test_exactly_the_removed_atoms_are_missing(platinum):
    registration, positions, removed, *_ = platinum
    assert registration.n_missing == 4
    missing = registration.missing_sites
    gap = np.linalg.norm(missing[:, None] - positions[removed][None], axis=-1)
    assert np.all(gap.min(1) < 0.01) and np.all(gap.min(0) < 0.01)


def test_displacement_per_axis_shows_the_moved_atoms(platinum):
    registration, positions, _, moved, _ = platinum
    which = np.linalg.norm(registration.sites[:, None] - positions[moved][None], axis=-1).min(1) < 0.01
    assert which.sum() == 3 and registration.found[which].all()
    d = registration.displacement
    assert d[which, 2] == pytest.approx([0.3] * 3, abs=0.05)
    assert np.abs(d[which, :2]).max() < 0.05
    others = registration.found & ~which
    assert np.abs(d[others]).max() < 0.08
    summary = registration.summary()
    assert np.all(np.array(summary["rms_displacement_zyx"]) < 0.05)
    assert summary["n_found"] == registration.found_atoms().positions.shape[0]


def test_srtio3_slab_in_vacuum_reports_vacancies_not_the_vacuum():
    """A noisy SrTiO3 slab (three species) with one O and one Ti removed, vacuum around it:
    only those two sites are missing, and every atom in the slab is found."""
    slab = srtio3_slab((4, 4, 3))
    euler = (0.8, 1.2, -1.0)
    turned = slab.rotate(euler)
    move = np.full(3, (N - 1) / 2 * VOXEL) - slab.centre + np.array([0.2, 0.45, -0.3])
    positions = turned.positions + move
    numbers = turned.numbers
    centre = np.full(3, (N - 1) / 2 * VOXEL)
    distance = np.linalg.norm(positions - centre, axis=1)
    removed = [int(np.argmin(np.where(numbers == z, distance, np.inf))) for z in (8, 22)]
    keep = np.ones(len(positions), bool)
    keep[removed] = False
    volume = potential_volume(positions[keep], numbers[keep], (N,) * 3, VOXEL, cutoff=3.0)
    volume += 5.0 * np.random.default_rng(3).standard_normal(volume.shape).astype(np.float32)
    basis = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    registration = register_lattice(
        volume, 3.905, basis=basis, voxel_size=VOXEL, weights=[38, 22, 8, 8, 8], species=["Sr", "Ti", "O", "O", "O"]
    )
    assert rotation_angle_deg(registration.rotation, rotation_matrix_deg(euler)) < 0.05
    missing = registration.missing_sites
    assert len(missing) == 2
    assert np.linalg.norm(missing[:, None] - positions[removed][None], axis=-1).min(1).max() < 0.02
    # every atom of the slab inside the analysed region is found at its place
    found = registration.peaks[registration.found]
    from scipy.spatial import cKDTree

    gap, _ = cKDTree(found).query(positions[keep])
    lo, hi = 2 * VOXEL, (N - 3) * VOXEL
    inner = np.all((positions[keep] >= lo) & (positions[keep] <= hi), axis=1)
    assert gap[inner].max() < 0.1
    assert registration.n_found == inner.sum()
    assert [registration.species[b] for b in registration.site_basis[~registration.found]] in (["O", "Ti"], ["Ti", "O"])


def test_bad_inputs_name_the_field():
    volume = np.zeros((16, 16, 16), np.float32)
    with pytest.raises(ValueError, match="unit_cell"):
        register_lattice(volume, [3.9, 3.9], voxel_size=0.4)
    with pytest.raises(ValueError, match="basis"):
        register_lattice(volume, 3.9, basis=[0.5, 0.5], voxel_size=0.4)
    with pytest.raises(ValueError, match="voxel_size"):
        register_lattice(volume, 3.9)
    with pytest.raises(ValueError, match="rotation"):
        register_lattice(volume, 3.9, voxel_size=0.4, rotation=(1, 2))
