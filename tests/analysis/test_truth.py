"""A reconstruction compared with the simulator's truth in the reconstruction's own frame."""

import numpy as np

from napari_ptychotomo import Atoms, Volume
from napari_ptychotomo.analysis.truth import compare_with_truth


def _blobs(shape, voxel, centres_A, sigma=0.5):
    grid = np.stack(np.meshgrid(*[np.arange(n) * voxel for n in shape], indexing="ij"), axis=-1)
    out = np.zeros(shape)
    for c in centres_A:
        out += np.exp(-np.sum((grid - c) ** 2, axis=-1) / (2 * sigma**2))
    return out.astype(np.float32)


def test_a_shifted_copy_on_a_larger_grid_matches_the_truth_and_its_atoms():
    voxel = 0.4
    rng = np.random.default_rng(0)
    atoms_A = 3.0 + rng.uniform(0, 6.0, size=(12, 3))  # in a 12 Å truth cell
    truth = Volume(data=_blobs((31, 31, 31), voxel, atoms_A), voxel_size=voxel)
    # the reconstruction: 41 voxels with voxel 20 at the specimen centre (6 Å), shifted by
    # one voxel along x (the gauge translation alignment leaves)
    centre_index = (41 - 1) / 2
    recon_atoms = atoms_A - 6.0 + centre_index * voxel + np.array([0.0, 0.0, voxel])
    volume = Volume(data=_blobs((41, 41, 41), voxel, recon_atoms), voxel_size=voxel)
    traced = Atoms(positions=recon_atoms[:10] + 0.05, species=np.zeros(10, int))
    result = compare_with_truth(volume, truth, atoms=traced, true_atoms=atoms_A, score_radius=0.5)
    np.testing.assert_allclose(result.offset_voxels, [0, 0, -1], atol=0.1)
    assert result.pearson_r > 0.98
    assert np.isnan(result.fsc.crossings["0.5"]) or result.fsc.crossings["0.5"] < 1.0
    assert result.atoms["n_matched"] == 10 and result.atoms["false_positives"] == 0
    assert result.atoms["missing"] == 2 and result.atoms["rms_error_3d"] < 0.15


def test_resolution_of_halves_that_share_a_start_warns_and_says_so():
    import pytest

    from napari_ptychotomo.analysis import resolution_of

    rng = np.random.default_rng(1)
    a = rng.normal(size=(16, 16, 16)).astype(np.float32)
    volume = Volume(data=a, voxel_size=0.5, provenance={"halves_share": ["the alignment"]})
    volume.halves = (a, a + 0.1 * rng.normal(size=a.shape).astype(np.float32))
    with pytest.warns(UserWarning, match="not independent.*the alignment"):
        result = resolution_of(volume)
    assert result.provenance["independent"] is False


def test_species_are_scored_when_the_true_classes_are_given():
    from napari_ptychotomo.analysis.truth import species_classes

    voxel = 0.4
    atoms_A = np.array([[4.0, 4.0, 4.0], [4.0, 4.0, 8.0], [8.0, 6.0, 5.0]])
    truth = Volume(data=_blobs((31, 31, 31), voxel, atoms_A), voxel_size=voxel)
    numbers = np.array([79, 8, 14])
    assert species_classes(numbers).tolist() == [2, 0, 1]  # by increasing Z
    traced = Atoms(positions=atoms_A + 0.05, species=np.array([2, 0, 0]))
    result = compare_with_truth(
        truth, truth, atoms=traced, true_atoms=atoms_A, true_species=species_classes(numbers), score_radius=0.5
    )
    assert result.atoms["n_matched"] == 3 and result.atoms["species_accuracy"] == 2 / 3
    positions_only = compare_with_truth(truth, truth, atoms=traced, true_atoms=atoms_A, score_radius=0.5)
    assert np.isnan(positions_only.atoms["species_accuracy"])
