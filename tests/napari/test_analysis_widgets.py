"""Resolution (FSC) and Atom tracing widgets on small synthetic volumes."""

import numpy as np
import pytest

from napari_ptychotomo.data import Atoms, Resolution, Volume
from napari_ptychotomo._napari.analysis_widgets import resolution_table


def gaussian_atoms(n=24, voxel=0.5, sigma=0.5):
    """A volume (n³, voxel Å) of unit Gaussian atoms on a 3 Å cubic lattice, and the atoms."""
    r = np.arange(3.0, n * voxel - 2.0, 3.0)
    zz, yy, xx = np.meshgrid(r, r, r, indexing="ij")
    positions = np.stack([zz.ravel(), yy.ravel(), xx.ravel()], axis=1)
    axis = np.arange(n) * voxel
    g = [np.exp(-((axis[None] - positions[:, k, None]) ** 2) / (2 * sigma**2)) for k in range(3)]
    data = np.einsum("az,ay,ax->zyx", *g).astype(np.float32)
    return Volume(data=data, voxel_size=voxel), Atoms(positions=positions,
                                                       species=np.zeros(len(positions), int))


def test_resolution_table_lists_crossings_per_threshold_and_direction():
    res = Resolution(frequency=np.array([0.0, 0.5]), fsc=np.array([1.0, 0.1]),
                     crossings={"half_bit": 2.5, "0.143": np.nan},
                     directional={"z": {"crossings": {"half_bit": 3.0, "0.143": 2.0}}})
    assert resolution_table(res).splitlines() == [
        "threshold: half_bit, 0.143", "all: 2.50 Å, < 2.00 Å", "z: 3.00 Å, 2.00 Å"]  # no crossing: Nyquist


@pytest.mark.gui
def test_fsc_widget_finds_higher_resolution_for_less_noise(viewer, qtbot):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.analysis_widgets import ResolutionWidget

    volume, _ = gaussian_atoms()
    rng = np.random.default_rng(0)
    for name, noise in (("a", 0.05), ("b", 0.05)):
        show(Volume(data=volume.data + noise * rng.normal(size=volume.shape).astype(np.float32),
                    voxel_size=0.5), viewer, name=name)
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
    from napari_ptychotomo._napari.analysis_widgets import AtomTracingWidget

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
