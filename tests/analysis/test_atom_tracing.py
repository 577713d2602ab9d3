"""Atom tracing on simulated two-species potential volumes (Lobato potentials, Pt and O),
scored against the true atoms with the columns of Ren et al. 2018, Table I."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ptychotomo import Atoms, Volume, score_atoms, trace_atoms
from napari_ptychotomo.analysis import classify_species
from napari_ptychotomo.analysis.peak_filters import gaussian_blur

VOXEL = 0.33  # Å
SHAPE = (48, 48, 48)


def random_atoms(n, low, high, min_distance, rng):
    """Up to n uniform random positions (z, y, x) in Å, no two closer than min_distance."""
    from scipy.spatial import cKDTree

    candidates = rng.uniform(low, high, size=(n * 20, 3))
    keep = np.zeros(len(candidates), bool)
    tree = cKDTree(candidates)
    taken = np.zeros(len(candidates), bool)  # blocked by an accepted neighbour
    for k in range(len(candidates)):  # test set-up only
        if taken[k]:
            continue
        keep[k] = True
        taken[tree.query_ball_point(candidates[k], min_distance)] = True
        if keep.sum() == n:
            break
    return candidates[keep]


def _make_specimen():
    """About 110 Pt and O atoms (40 % Pt) at least 2.2 Å apart in a 15.8 Å box."""
    from napari_ptychotomo.simulate import potential_volume

    rng = np.random.default_rng(7)
    box = SHAPE[0] * VOXEL
    positions = random_atoms(110, 1.0, box - 1.0, 2.2, rng)
    heavy = rng.random(len(positions)) < 0.4
    numbers = np.where(heavy, 78, 8)
    volume = potential_volume(positions, numbers, SHAPE, VOXEL, parameterisation="lobato")
    truth = Atoms(positions=positions, species=heavy.astype(int), names=["O", "Pt"])
    return volume, truth


@pytest.fixture(scope="module")
def specimen():
    return _make_specimen()


def test_noise_free_tracing_meets_the_targets(specimen):
    volume, truth = specimen
    traced = trace_atoms(Volume(volume, voxel_size=VOXEL), names=["O", "Pt"])
    score = score_atoms(traced, truth, radius=0.6)
    assert score["recall"] >= 0.995
    assert score["false_positive_rate"] <= 0.005
    assert score["rms_error_3d"] <= 0.05
    assert score["species_accuracy"] >= 0.97
    assert traced.symbols()[0] in ("O", "Pt")
    # the heavier class is the brighter one
    assert np.median(traced.intensities[traced.species == 1]) > 3 * np.median(traced.intensities[traced.species == 0])


def noisy_copy(volume, noise, blur, seed):
    if blur:
        volume = gaussian_blur(torch.as_tensor(volume), blur / VOXEL).numpy()
    rng = np.random.default_rng(seed)
    return volume + noise * rng.standard_normal(volume.shape).astype(np.float32)


@pytest.mark.parametrize(
    "noise, blur, recall, fp, rms, species",
    [
        # pinned: noise σ in V per voxel on the true potential (peaks: O ≈ 330 V, Pt ≈ 2000 V);
        # measured 1.0, 0, 0.044 Å, 1.0
        (25.0, 0.0, 0.995, 0.005, 0.05, 0.97),
        # a reconstruction-like 0.3 Å Gaussian blur (O peaks ≈ 80 V) plus 10 V noise;
        # measured 1.0, 0, 0.045 Å, 1.0
        (10.0, 0.3, 0.995, 0.005, 0.05, 0.97),
        # the same blur with 20 V: O peaks at 4 σ per voxel; measured 1.0, 0, 0.084 Å, 1.0
        (20.0, 0.3, 0.99, 0.005, 0.09, 0.97),
    ],
)
def test_noisy_tracing_at_pinned_levels(specimen, noise, blur, recall, fp, rms, species):
    volume, truth = specimen
    noisy = noisy_copy(volume, noise, blur, seed=11)
    score = score_atoms(trace_atoms(noisy, voxel_size=VOXEL), truth, radius=0.6)
    assert score["recall"] >= recall
    assert score["false_positive_rate"] <= fp
    assert score["rms_error_3d"] <= rms
    assert score["species_accuracy"] >= species


def peak_local_max_with_centre_of_mass(volume, threshold):
    """The plain baseline: skimage peaks, then the centre of mass of their 3×3×3 voxels (Å)."""
    from skimage.feature import peak_local_max

    peaks = peak_local_max(volume, min_distance=3, threshold_abs=threshold)
    offsets = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    windows = np.clip(peaks[:, None, :] + offsets, 0, np.array(volume.shape) - 1)
    weights = np.clip(volume[windows[..., 0], windows[..., 1], windows[..., 2]], 0, None) + 1e-12
    return (windows * weights[..., None]).sum(1) / weights.sum(1)[:, None] * VOXEL


def test_tracer_beats_peak_local_max_with_centre_of_mass_on_a_blurred_noisy_volume(specimen):
    volume, truth = specimen
    noisy = noisy_copy(volume, 20.0, 0.3, seed=5)
    traced = trace_atoms(noisy, voxel_size=VOXEL)
    base = peak_local_max_with_centre_of_mass(noisy, 5 * 20.0)
    ours, plain = score_atoms(traced, truth, radius=0.6), score_atoms(base, truth, radius=0.6)
    # the baseline keeps about half of the atoms (mostly the Pt), the tracer all of them
    assert ours["recall"] >= plain["recall"] + 0.3
    assert ours["false_positives"] <= plain["false_positives"]
    # position error on the atoms both found: less than half the baseline's
    mine = dict(zip(ours["matches"][1], traced.positions[ours["matches"][0]]))
    theirs = dict(zip(plain["matches"][1], base[plain["matches"][0]]))
    common = sorted(set(mine) & set(theirs))
    assert len(common) >= 0.4 * len(truth)

    def rms(found):
        return np.sqrt(np.mean([np.sum((found[k] - truth.positions[k]) ** 2) for k in common]))

    assert rms(mine) < 0.5 * rms(theirs)


def test_residual_search_finds_oxygen_hidden_1_3_angstrom_from_platinum():
    """After a 0.3 Å blur an O 1.3 Å from a Pt is no separate DoG maximum; the residual
    search (the volume minus the fitted atoms) finds it, without false sites."""
    from napari_ptychotomo.simulate import potential_volume

    rng = np.random.default_rng(3)
    platinum = random_atoms(25, 2.5, SHAPE[0] * VOXEL - 2.5, 4.5, rng)
    direction = rng.normal(size=platinum.shape)
    oxygen = platinum + 1.3 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
    positions = np.concatenate([platinum, oxygen])
    species = np.repeat([1, 0], len(platinum))
    volume = potential_volume(positions, np.where(species == 1, 78, 8), SHAPE, VOXEL)
    volume = gaussian_blur(torch.as_tensor(volume), 0.3 / VOXEL).numpy()
    without = score_atoms(trace_atoms(volume, voxel_size=VOXEL, residual_rounds=0), (positions, species), 0.6)
    score = score_atoms(trace_atoms(volume, voxel_size=VOXEL), (positions, species), 0.6)
    assert without["recall"] <= 0.6  # the O are lost in their Pt neighbours' peaks
    assert score["recall"] >= 0.95 and score["false_positives"] == 0  # measured 0.964, 0
    assert score["species_accuracy"] >= 0.97


def test_pure_noise_gives_no_atoms_even_at_the_faces():
    """The candidate threshold follows the DoG's noise σ voxel by voxel (it is larger at
    the reflected faces), so white noise alone yields nothing."""
    for seed in range(2):
        noise = 20.0 * np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)
        assert len(trace_atoms(noise, voxel_size=VOXEL)) == 0


def test_dog_noise_map_matches_the_noise_of_filtered_white_noise():
    from napari_ptychotomo.analysis.peak_filters import difference_of_gaussians, dog_noise_map

    shape = (10, 11, 12)
    predicted = dog_noise_map(shape, 1.0, 2.0)
    rng = np.random.default_rng(0)
    samples = torch.as_tensor(rng.standard_normal((200, *shape)).astype(np.float32))
    measured = torch.stack([difference_of_gaussians(v, 1.0, 2.0) for v in samples]).std(0).numpy()
    assert predicted[0, 0, 0] > 1.5 * predicted[5, 5, 6]  # the faces are noisier
    # 200 samples: the measured σ scatters by about 5 %
    assert np.median(np.abs(measured / predicted - 1)) < 0.05
    assert np.abs(measured / predicted - 1).max() < 0.25


def test_positions_are_in_the_volume_frame_with_its_origin():
    from napari_ptychotomo.simulate import potential_volume

    true = np.array([[3.1, 4.2, 5.3], [6.4, 3.3, 4.0]])
    origin = np.array([10.0, -2.0, 1.0])
    data = potential_volume(true + origin, [29, 29], (32, 32, 32), 0.3, origin=origin)
    traced = trace_atoms(Volume(data, voxel_size=0.3, origin=origin), min_neighbours=0)  # two atoms only
    score = score_atoms(traced, true + origin, radius=0.5)
    assert score["n_matched"] == 2 and score["false_positives"] == 0
    assert score["rms_error_3d"] < 0.05


def test_the_last_progress_line_counts_the_atoms_returned_after_lone_ones_are_removed():
    from napari_ptychotomo import engine
    from napari_ptychotomo.analysis import trace_atoms_steps
    from napari_ptychotomo.simulate import potential_volume

    true = np.array([[3.1, 4.2, 5.3], [6.4, 3.3, 4.0]])  # two atoms, each with one neighbour
    data = potential_volume(true, [29, 29], (32, 32, 32), 0.3)
    progress = []
    traced = engine.run(trace_atoms_steps(Volume(data, voxel_size=0.3), device="cpu"), progress.append)
    assert len(traced) == 0  # min_neighbours 2 by default
    assert progress[-1].message.startswith("0 atoms; 2 removed with fewer than 2 neighbours within 6 Å")
    assert len(progress[-1].preview) == 0


def test_species_mixture_orders_classes_by_intensity():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(10, 1, 300), rng.normal(40, 3, 100), rng.normal(25, 2, 50)])
    labels, means, _, weights = classify_species(values, 3)
    assert np.all(np.diff(means) > 0)
    assert np.mean(labels[:300] == 0) > 0.99 and np.mean(labels[300:400] == 2) >= 0.98
    assert weights.sum() == pytest.approx(1.0)


def test_score_uses_one_to_one_matching_within_radius():
    truth = (np.array([[0.0, 0, 0], [0, 0, 1.0], [5, 5, 5]]), np.array([0, 1, 0]))
    # two traced atoms near the first pair (crossed over), one far false positive
    traced = (np.array([[0.0, 0, 0.9], [0, 0, 0.1], [9, 9, 9]]), np.array([1, 0, 0]))
    score = score_atoms(traced, truth, radius=0.5)
    assert score["n_matched"] == 2 and score["missing"] == 1 and score["false_positives"] == 1
    assert score["rms_error_3d"] == pytest.approx(0.1)
    assert score["rms_error_zyx"] == pytest.approx([0, 0, 0.1])
    assert score["species_accuracy"] == 1.0
    assert score["recall"] == pytest.approx(2 / 3)


def test_bad_parameters_are_reported():
    with pytest.raises(ValueError, match="unknown trace_atoms parameter"):
        trace_atoms(np.zeros((8, 8, 8), np.float32), voxel_size=0.3, window_size=3)
    with pytest.raises(ValueError, match="voxel_size"):
        trace_atoms(np.zeros((8, 8, 8), np.float32))
    with pytest.raises(ValueError, match="radius"):
        score_atoms(np.zeros((1, 3)), np.zeros((1, 3)), radius=-1)
    with pytest.raises(ValueError, match="max_relative_width"):
        trace_atoms(np.zeros((8, 8, 8), np.float32), voxel_size=0.3, max_relative_width=0.0)
    with pytest.raises(ValueError, match="max_bridge"):
        trace_atoms(np.zeros((8, 8, 8), np.float32), voxel_size=0.3, max_bridge=-1.0)
    # checked whatever max_relative_width is (its default "auto" included)
    for bad in (dict(min_neighbours=-1), dict(min_neighbours=1.5), dict(neighbour_radius=0.0), dict(accept_fraction=2)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            trace_atoms(np.zeros((8, 8, 8), np.float32), voxel_size=0.3, **bad)


def _row_with_streak(ghost: bool):
    """A row of three heavy Gaussian atoms along x (σ 0.3 Å, 200 V, 2.04 Å apart) with a
    light one (40 V) 2.4 Å to the side of the middle one, and a streak along the row
    (30 V) that runs 2 Å past its end, where it carries a bump like a ghost atom; 1 V noise.
    Voxels of 0.25 Å."""
    voxel, n = 0.25, 48
    axis = np.arange(n) * voxel
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")

    def blob(c, height, sigma=0.3):
        return height * np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * sigma**2))

    heavy = [np.array([6.0, 6.0, 3.0 + 2.04 * k]) for k in range(3)]
    light = heavy[1] + [0.0, 2.4, 0.0]
    ghost_at = heavy[2] + [0.0, 0.0, 2.04]
    volume = sum(blob(c, 200.0) for c in heavy) + blob(light, 40.0)
    if ghost:
        along = 1 / (1 + np.exp(-(x - 2.0) / 0.2)) / (1 + np.exp((x - (ghost_at[2] + 0.8)) / 0.2))
        volume = volume + 30.0 * along * np.exp(-((z - 6.0) ** 2 + (y - 6.0) ** 2) / (2 * 0.3**2))
        volume = volume + blob(ghost_at, 25.0)
    volume = volume + np.random.default_rng(0).normal(size=volume.shape)
    return volume.astype(np.float32), voxel, np.array([*heavy, light]), ghost_at


def test_a_ghost_on_a_streak_out_of_a_heavy_atom_is_dropped_and_a_light_neighbour_kept():
    """Few tilts leave streaks along the lattice rows; where a streak runs out of the
    particle it carries bumps the band-pass takes for atoms. The bridge criterion drops a
    site joined to a brighter atom by a ridge of about its own height, and keeps a real
    light atom beside a heavy one (the volume dips between them)."""
    volume, voxel, atoms, ghost_at = _row_with_streak(ghost=True)
    loose = trace_atoms(volume, voxel_size=voxel, max_bridge=10.0)
    assert np.min(np.linalg.norm(loose.positions - ghost_at, axis=1)) < 0.3  # found without the criterion
    traced = trace_atoms(volume, voxel_size=voxel)
    score = score_atoms(traced, atoms, radius=0.5)
    assert score["n_matched"] == 4 and score["false_positives"] == 0


def test_the_bridge_criterion_keeps_atoms_without_streaks():
    volume, voxel, atoms, _ = _row_with_streak(ghost=False)
    score = score_atoms(trace_atoms(volume, voxel_size=voxel), atoms, radius=0.5)
    assert score["n_matched"] == 4 and score["false_positives"] == 0


def test_a_fit_much_broader_than_the_typical_atom_is_dropped_when_asked():
    """Eight Gaussian atoms of σ 0.22 Å and one blob of σ 0.7 Å (as a merged pair or a
    streak's end in a reconstruction): the blob's fit (in its 5³-voxel window) is about
    twice as broad as the median."""
    voxel, n = 0.25, 48
    axis = np.arange(n) * voxel
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    corners = np.array([[a, b, c] for a in (3.5, 8.5) for b in (3.5, 8.5) for c in (3.5, 8.5)])
    blob = np.array([6.0, 6.0, 6.0])

    def gaussian(c, height, sigma):
        return height * np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * sigma**2))

    volume = sum(gaussian(c, 100.0, 0.22) for c in corners) + gaussian(blob, 60.0, 0.7)
    volume = (volume + np.random.default_rng(1).normal(size=volume.shape)).astype(np.float32)
    kept = trace_atoms(volume, voxel_size=voxel)  # by default no limit relative to the others
    assert np.min(np.linalg.norm(kept.positions - blob, axis=1)) < 0.3
    score = score_atoms(trace_atoms(volume, voxel_size=voxel, max_relative_width=1.5), corners, radius=0.5)
    assert score["n_matched"] == 8 and score["false_positives"] == 0


def test_atoms_alone_in_the_vacuum_are_dropped_and_a_facet_atom_kept():
    """A small fcc cluster (Au-like Gaussians, σ 0.25 Å) with a light atom 1.9 Å above a
    facet, and ghost peaks as bright as the cluster's atoms in the vacuum around it (a
    pair 4.1 Å apart and a single one), as too few tilts leave them: the ghosts have at
    most one other site within 6 Å and go; every real atom stays. With the test off
    (``min_neighbours=0``) the ghosts are traced as atoms."""
    voxel, n = 0.25, 96
    axis = np.arange(n) * voxel
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    a = 4.08
    cell = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    lattice = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)])
    cluster = np.unique(np.round(((lattice[:, None] + cell[None]).reshape(-1, 3)) * a, 3), axis=0)
    cluster = cluster[np.all(cluster <= a + 0.01, axis=1)] + 8.0  # 2 × 2 × 2 cells' corners and faces
    light = np.array([cluster[:, 0].max() + 1.9, 8.0 + a / 4, 8.0 + a / 4])
    truth = np.vstack([cluster, light])
    ghosts = np.array(
        [[8.0 + a / 2, 8.0 + a / 2 - 2.05, 20.5], [8.0 + a / 2, 8.0 + a / 2 + 2.05, 20.5], [20.5, 10.0, 10.0]]
    )

    def gaussian(c, height, sigma=0.25):
        return height * np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * sigma**2))

    volume = sum(gaussian(c, 100.0) for c in np.vstack([cluster, ghosts])) + gaussian(light, 30.0)
    volume = (volume + np.random.default_rng(4).normal(size=volume.shape)).astype(np.float32)
    score = score_atoms(trace_atoms(volume, voxel_size=voxel, device="cpu"), truth, radius=0.5)
    assert score["n_matched"] == len(truth) and score["false_positives"] == 0, score
    loose = score_atoms(trace_atoms(volume, voxel_size=voxel, device="cpu", min_neighbours=0), truth, radius=0.5)
    assert loose["n_matched"] == len(truth) and loose["false_positives"] == len(ghosts), loose


def test_auto_relative_width_follows_the_volumes_tilt_range():
    from napari_ptychotomo.analysis.atom_tracing import relative_width_limit

    full = Volume(np.zeros((8, 8, 8)), 0.3, provenance={"tilt_range_deg": [-90.0, 90.0]})
    wedge = Volume(np.zeros((8, 8, 8)), 0.3, provenance={"tilt_range_deg": [-70.0, 70.0]})
    assert relative_width_limit(full, "auto") == 1.5
    assert relative_width_limit(wedge, "auto") is None
    assert relative_width_limit(np.zeros((8, 8, 8)), "auto") is None  # an array says nothing
    assert relative_width_limit(full, None) is None and relative_width_limit(wedge, 2.0) == 2.0


def test_a_broad_blob_does_not_take_a_species_class_of_its_own():
    """Heavy (100 V) and light (25 V) atoms of σ 0.22 Å and one broad blob (σ 0.7 Å, 60 V):
    integrated, the blob outweighs every atom; with its σ capped at the median for the
    classes, the two classes are still light and heavy."""
    voxel, n = 0.25, 48
    axis = np.arange(n) * voxel
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    corners = np.array([[a, b, c] for a in (3.5, 8.5) for b in (3.5, 8.5) for c in (3.5, 8.5)])
    heavy = np.arange(len(corners)) % 2

    def gaussian(c, height, sigma):
        return height * np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * sigma**2))

    volume = sum(gaussian(c, 100.0 if h else 25.0, 0.22) for c, h in zip(corners, heavy))
    volume = volume + gaussian(np.array([6.0, 6.0, 6.0]), 60.0, 0.7)
    volume = (volume + np.random.default_rng(2).normal(size=volume.shape)).astype(np.float32)
    # the blob's intensity would also set the faintness bar above the light atoms
    traced = trace_atoms(volume, voxel_size=voxel, min_relative_intensity=0.01)
    score = score_atoms(traced, (corners, heavy), radius=0.5)
    assert score["n_matched"] == 8 and score["species_accuracy"] == 1.0
    assert traced.intensities.max() > 2 * traced.intensities[score["matches"][0]].max()  # the blob
