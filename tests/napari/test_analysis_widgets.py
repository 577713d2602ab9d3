"""Resolution (FSC) and Atom tracing widgets on small synthetic volumes."""

import numpy as np
import pytest

from napari_ptychotomo._napari.widgets.atoms import score_line
from napari_ptychotomo._napari.widgets.fsc import resolution_table
from napari_ptychotomo.data import Atoms, Resolution, Volume


def gaussian_atoms(n=24, voxel=0.5, sigma=0.5, light=0.0):
    """A volume (n³, voxel Å) of Gaussian atoms on a 3 Å cubic lattice, and the atoms: unit
    heights, or with ``light`` > 0 every other atom of that height (species 0, the rest 1)."""
    r = np.arange(3.0, n * voxel - 2.0, 3.0)
    zz, yy, xx = np.meshgrid(r, r, r, indexing="ij")
    positions = np.stack([zz.ravel(), yy.ravel(), xx.ravel()], axis=1)
    species = (np.arange(len(positions)) % 2 if light else np.zeros(len(positions))).astype(int)
    heights = np.where(species == 0, light or 1.0, 1.0)
    axis = np.arange(n) * voxel
    g = [np.exp(-((axis[None] - positions[:, k, None]) ** 2) / (2 * sigma**2)) for k in range(3)]
    data = np.einsum("a,az,ay,ax->zyx", heights, *g).astype(np.float32)
    names = ["O", "Au"] if light else None
    return Volume(data=data, voxel_size=voxel), Atoms(positions=positions, species=species, names=names)


def test_resolution_table_lists_crossings_per_threshold_and_direction():
    res = Resolution(
        frequency=np.array([0.0, 0.5]),
        fsc=np.array([1.0, 0.1]),
        crossings={"half_bit": 2.5, "0.143": np.nan},
        directional={"z": {"crossings": {"half_bit": 3.0, "0.143": 2.0}}},
    )
    assert resolution_table(res).splitlines() == [
        "threshold: half_bit, 0.143",
        "all: 2.50 Å, < 2.00 Å",
        "z: 3.00 Å, 2.00 Å",
    ]  # no crossing: Nyquist


@pytest.mark.gui
def test_fsc_widget_finds_higher_resolution_for_less_noise(viewer, qtbot):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.fsc import ResolutionWidget

    volume, _ = gaussian_atoms()
    rng = np.random.default_rng(0)
    for name, noise in (("a", 0.05), ("b", 0.05)):
        show(
            Volume(data=volume.data + noise * rng.normal(size=volume.shape).astype(np.float32), voxel_size=0.5),
            viewer,
            name=name,
        )
    widget = ResolutionWidget(viewer, synchronous=True)
    widget.volume1.value, widget.volume2.value = "Volume (a)", "Volume (b)"
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    resolution = viewer.layers["Volume (a)"].metadata["resolution"]
    assert isinstance(resolution, Resolution)
    assert resolution.fsc[1] > 0.9  # the lattice dominates the low frequencies
    assert "z:" in widget.table.value and "all:" in widget.table.value
    curves = widget.fsc_plot.panels[0].curves  # the FSC, its thresholds and per direction
    assert {"FSC", "one_bit", "half_bit", "FSC z"} <= set(curves)
    np.testing.assert_allclose(curves["FSC"][1], resolution.fsc)


@pytest.mark.gui
def test_atom_tracing_widget_finds_the_lattice_atoms_and_scores_them(viewer, not_blank):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.atoms import AtomTracingWidget

    volume, truth = gaussian_atoms()
    show(volume, viewer, name="linear")
    show(truth, viewer, name="truth")
    widget = AtomTracingWidget(viewer, synchronous=True)
    widget.volume.value, widget.n_species.value, widget.device.value = "Volume (linear)", 1, "cpu"
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    traced = viewer.layers["Atoms (traced)"]
    atoms = traced.metadata["result"]
    assert isinstance(atoms, Atoms) and abs(len(atoms) - len(truth)) <= 1
    assert "recall 1.00" in widget.score.value or "recall 0.9" in widget.score.value
    assert {"species", "intensity", "width"} <= set(traced.features.columns)
    viewer.layers["Atoms (truth)"].visible = False
    not_blank(viewer)


def test_max_width_text_is_auto_off_or_a_positive_number():
    from napari_ptychotomo.analysis.atom_tracing import parse_relative_width

    assert parse_relative_width(" Auto ") == "auto" and parse_relative_width("off") is None
    assert parse_relative_width("1.5") == 1.5
    with pytest.raises(ValueError, match="max width"):
        parse_relative_width("-1")


def test_score_line_names_recall_false_positives_rms_and_species():
    score = {
        "recall": 0.995,
        "false_positives": 2,
        "false_positive_rate": 0.0112,
        "rms_error_3d": 0.0834,
        "species_accuracy": 0.98,
    }
    assert score_line(score) == ("recall 0.99, false positives 2 (1.1 %), RMS error 0.08 Å, species 98.0 % right")
    assert "species" not in score_line({**score, "species_accuracy": np.nan})


@pytest.mark.gui
def test_atom_tracing_widget_drops_broad_blobs_when_given_a_width_limit(viewer):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.atoms import AtomTracingWidget

    volume, truth = gaussian_atoms(sigma=0.3)
    grid = np.arange(volume.shape[0]) * volume.voxel_size
    blob = np.array([4.5, 4.5, 4.5])  # between lattice sites, as broad as two atoms
    r2 = sum((g - c) ** 2 for g, c in zip(np.meshgrid(grid, grid, grid, indexing="ij"), blob))
    show(
        Volume(data=(volume.data + 0.6 * np.exp(-r2 / (2 * 0.7**2))).astype(np.float32), voxel_size=volume.voxel_size),
        viewer,
        name="with blob",
    )
    show(truth, viewer, name="truth")
    widget = AtomTracingWidget(viewer, synchronous=True)
    widget.volume.value, widget.n_species.value, widget.device.value = "Volume (with blob)", 1, "cpu"
    assert widget.max_relative_width.value == "auto"  # an array layer says no tilt range: no limit
    widget.runner.run()
    assert "false positives 1 " in widget.score.value, widget.score.value
    widget.max_relative_width.value = "1.5"
    widget.runner.run()
    assert widget.score.value.startswith("recall 1.00, false positives 0 "), widget.score.value


@pytest.mark.gui
def test_atom_tracing_widget_scores_species_against_a_truth_layer(viewer):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.atoms import AtomTracingWidget

    volume, truth = gaussian_atoms(light=0.3)
    show(volume, viewer, name="linear")
    show(truth, viewer, name="truth")
    widget = AtomTracingWidget(viewer, synchronous=True)
    assert widget.n_species.value == 2  # as many classes as the truth has species
    widget.volume.value, widget.device.value = "Volume (linear)", "cpu"
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    assert widget.score.value.startswith("recall 1.00, false positives 0 (0.0 %)")
    assert widget.score.value.endswith("species 100.0 % right")
    assert viewer.layers["Atoms (traced)"].metadata["result"].names == ["O", "Au"]


@pytest.mark.gui
def test_atom_tracing_widget_scores_against_a_simulated_series_truth_in_another_frame(viewer):
    """A simulator's truth is in the specimen's frame; the reconstruction (here 4 voxels
    larger on every side, its centre at the specimen centre) in its own: the score moves
    the true atoms into the volume's frame first (unmoved, every atom would be 2 Å off)."""
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.atoms import AtomTracingWidget
    from napari_ptychotomo.data import DefocusSeries, TiltSeries

    truth_volume, truth = gaussian_atoms(light=0.3)
    padded = Volume(data=np.pad(truth_volume.data, 4), voxel_size=truth_volume.voxel_size)
    images = DefocusSeries(np.ones((1, 8, 8), np.float32), np.zeros(1), 0.5, 300e3)
    numbers = np.where(truth.species == 1, 79, 8)
    series = TiltSeries(
        [images], [0.0], truth={"volume": truth_volume, "atoms": {"positions": truth.positions, "numbers": numbers}}
    )
    show(series, viewer)
    show(padded, viewer, name="plane-wave")
    widget = AtomTracingWidget(viewer, synchronous=True)
    widget.volume.value, widget.device.value = "Volume (plane-wave)", "cpu"
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    assert widget.score.value.startswith("recall 1.00, false positives 0 (0.0 %)"), widget.score.value
    assert widget.score.value.endswith("species 100.0 % right")
    assert viewer.layers["Atoms (traced)"].metadata["result"].names == ["O", "Au"]


@pytest.mark.gui
def test_atom_tracing_widget_shows_a_trace_that_found_no_atoms(viewer):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.atoms import AtomTracingWidget

    volume, _atoms = gaussian_atoms(n=16)
    show(volume, viewer, name="lattice")
    widget = AtomTracingWidget(viewer, synchronous=True)
    widget.device.value, widget.threshold_sigma.value = "cpu", widget.threshold_sigma.max
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    traced = viewer.layers["Atoms (traced)"]
    assert len(traced.data) == 0 and len(traced.metadata["result"]) == 0


@pytest.mark.gui
def test_volume_widgets_offer_no_rgb_picture_and_name_a_non_volume_plainly(viewer):
    from napari_ptychotomo._napari.widgets.atoms import AtomTracingWidget
    from napari_ptychotomo._napari.widgets.fsc import ResolutionWidget

    viewer.add_image(np.zeros((8, 8, 3), np.float32), name="photo", rgb=True)
    viewer.add_image(np.zeros((7, 24, 24), np.float32), name="phases", scale=(1.0, 0.5, 0.5))
    assert list(ResolutionWidget(viewer, synchronous=True).volume2.choices) == ["phases"]
    widget = AtomTracingWidget(viewer, synchronous=True)
    widget.runner.run()
    assert widget.runner.status.value == (
        "cannot start: layer 'phases' has shape (7, 24, 24) and scale (1, 0.5, 0.5); "
        "expected a volume (nz, ny, nx) with cubic voxels"
    )
