"""What a user sees after opening data or running a widget: layer kinds, scales in Å,
units napari can use (no "Inconsistent units" toast), the visible extent filling the
view, and a screenshot that shows something. Screenshots go to ``$PTYCHOTOMO_SHOTS``
when it is set, to be looked at."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

PLUGIN = "napari-ptychotomo"


@pytest.fixture
def unit_warnings(monkeypatch):
    """Every "Inconsistent units" warning the canvas raises."""
    import napari._vispy.canvas as canvas

    seen: list[str] = []
    original = canvas.show_warning

    def record(message, *args, **kwargs):
        if "Inconsistent units" in str(message):
            seen.append(str(message))
        return original(message, *args, **kwargs)

    monkeypatch.setattr(canvas, "show_warning", record)
    return seen


def _draw(viewer, qtbot):
    """Let the canvas draw (units are checked on draw)."""
    viewer.window._qt_viewer.canvas.native.update()
    qtbot.wait(50)


def _shot(viewer, name: str) -> np.ndarray:
    shot = np.asarray(viewer.screenshot(canvas_only=True, flash=False))
    folder = os.environ.get("PTYCHOTOMO_SHOTS")
    if folder:
        from PIL import Image

        Path(folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(shot).save(Path(folder) / f"{name}.png")
    return shot


def _foreground_box(shot: np.ndarray) -> tuple[float, float]:
    """Fraction of the canvas height and width spanned by non-background pixels."""
    grey = shot[..., :3].astype(int).sum(-1)
    background = np.bincount(grey.ravel()).argmax()
    rows = np.flatnonzero(np.any(grey != background, axis=1))
    cols = np.flatnonzero(np.any(grey != background, axis=0))
    if not len(rows):
        return 0.0, 0.0
    return (rows[-1] - rows[0] + 1) / grey.shape[0], (cols[-1] - cols[0] + 1) / grey.shape[1]


@pytest.mark.gui
@pytest.mark.parametrize("key", ["srtio3_scan", "nanoparticle_series", "core_shell_potential", "hrtem_series"])
def test_sample_opens_without_unit_warnings_in_angstrom_and_fills_the_view(viewer, qtbot, unit_warnings, key):
    viewer.open_sample(PLUGIN, key)
    _draw(viewer, qtbot)
    assert unit_warnings == []
    assert viewer.layers.units is not None and str(viewer.layers.units[-1]) == "angstrom"
    for layer in viewer.layers:
        assert str(layer.units[-1]) == "angstrom"  # no diffraction layer in mrad among them
    viewer.dims.ndisplay = 2
    for axis in viewer.dims.not_displayed:  # the middle of every slider
        start, stop, step = viewer.dims.range[axis]
        viewer.dims.set_point(axis, start + step * round((stop - start) / step / 2))
    viewer.reset_view()  # what napari's Home button does
    shot = _shot(viewer, f"sample-{key}")
    height, width = _foreground_box(shot)
    assert max(height, width) > 0.5, f"the data fill only {height:.0%} × {width:.0%} of the view"
    grey = shot[..., :3].astype(float).mean(-1)
    assert grey.std() > 10, "the image shows no contrast"


def _demo_like_project():
    """A project with every kind of result, small: series, MSP, projection stacks,
    alignment-stage, linear and end-to-end volumes, traced atoms, the truth."""
    from napari_ptychotomo.data import Atoms, Project, TiltSeries, Volume
    from napari_ptychotomo.simulate import simulate_scan, srtio3_slab

    scan = simulate_scan(
        srtio3_slab((2, 2, 2)),
        scan_shape=(6, 6),
        scan_step=0.5,
        detector_shape=(24, 24),
        num_slices=2,
        dose=1e5,
        seed=0,
    )
    zz, yy, xx = np.mgrid[:24, :24, :24] - 11.5
    blob = np.exp(-(zz**2 + yy**2 + xx**2) / 20.0).astype(np.float32)
    volumes = {
        "projections": Volume(
            data=blob[:5],
            voxel_size=0.4,
            units="rad",
            provenance={"axes": "tilt, y, x (a projection stack, not a volume)"},
        ),
        "aligned (low resolution)": Volume(data=blob, voxel_size=0.4),
        "linear": Volume(data=blob, voxel_size=0.4),
        "end-to-end": Volume(data=(blob + 0.1j * blob).astype(np.complex64), voxel_size=0.4, units="V"),
    }
    atoms = {"end-to-end": Atoms(positions=np.array([[4.6, 4.6, 4.6]]), species=np.array([0]))}
    return Project(series=TiltSeries(scans=[scan, scan], angles_deg=[-10.0, 10.0]), volumes=volumes, atoms=atoms)


@pytest.mark.gui
def test_project_opens_at_its_latest_volume_fitted_without_unit_warnings(viewer, qtbot, unit_warnings):
    from napari_ptychotomo import show

    show(_demo_like_project(), viewer)
    _draw(viewer, qtbot)
    assert unit_warnings == []
    visible = {layer.name for layer in viewer.layers if layer.visible}
    assert visible == {"Volume (end-to-end)", "Atoms (end-to-end)"}
    stack = viewer.layers["Projections"]
    assert stack.axis_labels == ("tilt", "y", "x") and tuple(stack.scale)[0] == 1.0
    assert str(stack.units[0]) == "pixel"  # the tilt is an index, never Å
    volume = viewer.layers["Volume (end-to-end)"]
    assert tuple(volume.scale) == pytest.approx((0.4, 0.4, 0.4))
    shot = _shot(viewer, "project-latest")
    height, width = _foreground_box(shot)
    assert max(height, width) > 0.5, f"the volume fills only {height:.0%} × {width:.0%} of the view"


@pytest.mark.gui
def test_msp_run_beside_a_tilt_series_raises_no_unit_warnings(viewer, qtbot, unit_warnings, small_simulated_scan):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.msp import MSPWidget
    from napari_ptychotomo.data import TiltSeries

    show(TiltSeries(scans=[small_simulated_scan] * 2, angles_deg=[-10.0, 10.0]), viewer)
    _draw(viewer, qtbot)
    widget = MSPWidget(viewer, synchronous=True)
    widget.iterations.value, widget.num_slices.value, widget.device.value = 2, 2, "cpu"
    assert widget.loss_plot.native.isHidden()  # no empty plot before a run
    viewer.window.add_dock_widget(widget, name="Multislice ptychography")
    widget.runner.run_button.clicked.emit()
    _draw(viewer, qtbot)
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    assert unit_warnings == []
    assert not widget.loss_plot.native.isHidden()
    phase = viewer.layers["MSP phase [tilt 0]"]
    assert phase.axis_labels[-2:] == ("y", "x") and phase.scale[-1] == pytest.approx(
        phase.metadata["result"].pixel_size
    )
    for layer in viewer.layers:
        layer.visible = layer.name == "MSP phase [tilt 0]"
    viewer.dims.set_point(0, 0)
    from napari_ptychotomo._napari.view import fit_to_visible

    fit_to_visible(viewer)
    _shot(viewer, "msp-phase")
    folder = os.environ.get("PTYCHOTOMO_SHOTS")
    if folder:
        widget.native.grab().save(str(Path(folder) / "msp-widget.png"))


@pytest.mark.gui
def test_fsc_and_atom_widgets_list_volumes_only_and_colour_atoms_by_element(viewer, qtbot):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.sample_data import make_core_shell_potential
    from napari_ptychotomo._napari.widgets.atoms import AtomTracingWidget
    from napari_ptychotomo._napari.widgets.fsc import ResolutionWidget

    volume, truth = make_core_shell_potential(voxel_size=0.5)
    show(_demo_like_project(), viewer)
    show(volume, viewer, name="truth")
    show(truth, viewer, name="truth")
    fsc = ResolutionWidget(viewer, synchronous=True)
    names = list(fsc.volume1.choices)
    assert "Volume (end-to-end)" in names and "Volume (truth)" in names
    assert not [n for n in names if n.startswith(("Virtual", "Mean", "MSP", "Projections"))]
    fsc.volume1.value, fsc.use_halves.value = "Volume (linear)", False
    fsc.volume2.value = "Volume (end-to-end)"
    fsc.runner.run_button.clicked.emit()
    assert not fsc.fsc_plot.native.isHidden() and "Å" in fsc.table.value
    atoms = AtomTracingWidget(viewer, synchronous=True)
    assert atoms.n_species.value == len(truth.names)  # as many classes as true species
    atoms.volume.value = "Volume (truth)"
    atoms.runner.run_button.clicked.emit()
    assert atoms.runner.status.value.startswith("done"), atoms.runner.status.value
    traced, true = viewer.layers["Atoms (traced)"], viewer.layers["Atoms (truth)"]
    assert not traced.text.visible  # "display text" unticked until there is text to show
    for element in set(true.features["element"]) & set(traced.features["element"]):
        a = traced.face_color[np.asarray(traced.features["element"] == element)][0]
        b = true.face_color[np.asarray(true.features["element"] == element)][0]
        np.testing.assert_allclose(a, b)
    folder = os.environ.get("PTYCHOTOMO_SHOTS")
    if folder:
        fsc.native.grab().save(str(Path(folder) / "fsc-widget.png"))
        atoms.native.grab().save(str(Path(folder) / "atoms-widget.png"))
        for layer in viewer.layers:
            layer.visible = layer.name in ("Volume (truth)", "Atoms (traced)", "Atoms (truth)")
        viewer.dims.ndisplay = 3
        viewer.reset_view()
        _shot(viewer, "atoms-3d")
