"""Docked widgets "Resolution (FSC)" and "Atom tracing".

Thin shells over :func:`~napari_ptychotomo.analysis.fsc` /
:func:`~napari_ptychotomo.analysis.directional_fsc` and
:func:`~napari_ptychotomo.analysis.trace_atoms_steps`. The FSC widget takes two volume
layers (or the two half-data volumes a Volume carries in ``halves``), puts the
:class:`~napari_ptychotomo.data.Resolution` into the first layer's ``metadata["resolution"]``,
and shows the crossings per threshold and direction in a table (and the curves in a
:class:`.plots.LivePlot`). Atom tracing puts ``Atoms (traced)`` as Points (size and
colour by species; features intensity, width) and, when the true atoms are known (an
``Atoms (truth)`` layer, or the truth of a simulated series in the viewer), a score line:
recall, false positives, RMS error and species.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, SpinBox

from ..data import Atoms, Volume
from ..engine import Progress
from ._runner import EngineRunner
from .choices import image_layers
from .layers import atoms_layers
from .plots import LivePlot, Panel
from .show import put_layer, put_layers
from .tomo_widgets import one_step

__all__ = ["ResolutionWidget", "AtomTracingWidget", "layer_volume", "resolution_table", "score_line"]


def layer_volume(layer: Any) -> Volume:
    """The Volume an image layer shows: its ``metadata["result"]`` when that is a Volume
    of the same shape, else the layer data with the voxel size of its last ``scale``."""
    result = layer.metadata.get("result")
    if isinstance(result, Volume) and tuple(result.data.shape) == tuple(np.shape(layer.data)):
        return result
    scale = np.asarray(layer.scale, dtype=float)
    if np.ndim(layer.data) != 3 or not np.allclose(scale, scale[-1], rtol=1e-6):
        raise ValueError(
            f"layer {layer.name!r} has shape {np.shape(layer.data)} and scale "
            f"{tuple(scale)}; expected a volume (nz, ny, nx) with cubic voxels"
        )
    return Volume(
        data=np.asarray(layer.data, dtype=np.float32),
        voxel_size=float(scale[-1]),
        origin=np.asarray(layer.translate, dtype=float),
    )


def resolution_table(resolution: Any) -> str:
    """Crossings in Å per threshold, overall and per direction, as lines of text."""
    nyquist = 1.0 / float(np.max(resolution.frequency))

    def fmt(value: float) -> str:  # no crossing: the curve stays above up to Nyquist
        return f"< {nyquist:.2f} Å" if not np.isfinite(value) else f"{value:.2f} Å"

    names = list(resolution.crossings)
    lines = ["threshold: " + ", ".join(names), "all: " + ", ".join(fmt(resolution.crossings[n]) for n in names)]
    for direction, entry in (resolution.directional or {}).items():
        if isinstance(entry, dict) and "crossings" in entry:
            lines.append(f"{direction}: " + ", ".join(fmt(entry["crossings"].get(n, np.nan)) for n in names))
    return "\n".join(lines)


class _VolumeWidget(Container):
    def __init__(self, viewer: Any, fields: list, synchronous: bool):
        self.viewer = viewer
        self.runner = EngineRunner(
            self._start, on_result=self._result, on_progress=self._progress, synchronous=synchronous
        )
        self.runner.widget.label = ""  # its Run / Stop buttons say what it is
        super().__init__(widgets=[*fields, self.runner.widget])
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)

    def _names(self, *_: Any) -> list[str]:
        """Volumes only: not the virtual bright field, projection or MSP phase stacks, which
        are also 3D image layers."""
        return [
            name
            for name, layer in image_layers(self.viewer, ndim=3)
            if layer.metadata.get("kind", "volume") == "volume"
        ]

    def _layer(self, name: Any) -> Any:
        if name is None or name not in self.viewer.layers:
            raise ValueError("no volume: choose an image layer (nz, ny, nx)")
        return self.viewer.layers[name]

    def _refresh(self, *_: Any) -> None:
        self.reset_choices()

    def _progress(self, progress: Progress) -> None:
        pass


class ResolutionWidget(_VolumeWidget):
    """FSC of two half-data volumes, with the one-bit, half-bit and 0.143 crossings."""

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        self.viewer = viewer  # the combo boxes list its layers as they are built
        self.volume1 = ComboBox(label="volume 1", choices=self._names, name="volume1")
        self.volume2 = ComboBox(label="volume 2", choices=self._names, name="volume2")
        self.use_halves = CheckBox(text="use the halves of volume 1", value=False, name="use_halves")
        self.directional = CheckBox(text="directional (x, y, z cones)", value=True, name="directional")
        self.table = Label(value="", name="table", label="resolution")
        super().__init__(viewer, [self.volume1, self.volume2, self.use_halves, self.directional], synchronous)
        self.append(self.table)
        self.fsc_plot = LivePlot(name="fsc_plot", height=3.0, label="FSC")
        self.append(self.fsc_plot)
        self._refresh()

    def _start(self) -> Generator:
        from ..analysis import directional_fsc, fsc

        self._target = self._layer(self.volume1.value)
        first = layer_volume(self._target)
        if self.use_halves.value:
            if first.halves is None:
                raise ValueError(f"{self._target.name!r} has no half-data volumes (halves)")
            a, b = (Volume(data=np.asarray(h), voxel_size=first.voxel_size) for h in first.halves)
        else:
            a, b = first, layer_volume(self._layer(self.volume2.value))
            if a.shape != b.shape:
                raise ValueError(f"volumes have shapes {a.shape} and {b.shape}; expected equal")
        with_directions = bool(self.directional.value)

        def compute():
            resolution = fsc(a, b)
            if with_directions:
                table = directional_fsc(a, b)
                resolution.directional = {k: v for k, v in table.items() if isinstance(v, dict) and "crossings" in v}
            return resolution

        return one_step(compute, message="Fourier shell correlation…")

    def _result(self, resolution: Any) -> None:
        self._target.metadata["resolution"] = resolution
        shared = self._shared_by_halves() if self.use_halves.value else None
        if shared:
            # halves with a common start or common fitted probes / alignment agree more than
            # their noise allows: their crossings are no resolution
            self.table.value = "not a resolution: the halves are not independent (they share " + "; ".join(shared) + ")"
        else:
            self.table.value = resolution_table(resolution)
        self._plot(resolution)

    def _shared_by_halves(self) -> list[str] | None:
        """What the two halves of volume 1 share (the end-to-end step records it); a
        volume that does not say is taken as sharing its start."""
        volume = self._target.metadata.get("result")
        provenance = getattr(volume, "provenance", None) or {}
        shared = provenance.get("halves_share")
        return ["(not recorded)"] if shared is None else list(shared)

    def _refresh(self, *_: Any) -> None:
        super()._refresh()
        names = self._names()
        if len(names) > 1 and self.volume2.value == self.volume1.value:
            self.volume2.value = names[1]  # two different volumes to compare

    def _plot(self, resolution: Any) -> None:
        curves = {"FSC": (resolution.frequency, resolution.fsc)}
        styles = {}
        for name, curve in resolution.thresholds.items():
            curves[name], styles[name] = (resolution.frequency, curve), "--"
        for name, entry in (resolution.directional or {}).items():
            curves[f"FSC {name}"] = (entry["frequency"], entry["fsc"])
        self.fsc_plot.show([Panel("spatial frequency (1/Å)", "FSC", curves, styles=styles)], "")


class AtomTracingWidget(_VolumeWidget):
    """Trace atoms in a potential volume (Ren et al. 2018) and classify their species."""

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        self.viewer = viewer
        self.volume = ComboBox(label="volume", choices=self._names, name="volume")
        self.n_species = SpinBox(label="species", min=1, max=10, value=2, name="n_species")
        self.threshold_sigma = FloatSpinBox(
            label="threshold (noise σ)", min=0.5, max=100.0, value=5.0, step=0.5, name="threshold_sigma"
        )
        self.iterations = SpinBox(label="iterations", min=1, max=200, value=10, name="iterations")
        self.max_relative_width = FloatSpinBox(
            label="max width (× median)",
            min=0.0,
            max=10.0,
            value=0.0,
            step=0.1,
            name="max_relative_width",
            tooltip="drop fits broader than this multiple of the median width (merged blobs, streak "
            "ends); 0: no limit. 1.5 suits volumes that blur every atom alike, such as a "
            "plane-wave reconstruction from tilts over ±90°",
        )
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda"], value="auto", name="device")
        self.score = Label(value="", name="score", label="against the truth")
        super().__init__(
            viewer,
            [self.volume, self.n_species, self.threshold_sigma, self.iterations, self.max_relative_width, self.device],
            synchronous,
        )
        self.append(self.score)
        self._refresh()

    def _start(self) -> Generator:
        from ..analysis import trace_atoms_steps

        self._target = self._layer(self.volume.value)
        self._volume = layer_volume(self._target)
        return trace_atoms_steps(
            self._volume,
            device=str(self.device.value),
            n_species=int(self.n_species.value),
            threshold_sigma=float(self.threshold_sigma.value),
            iterations=int(self.iterations.value),
            max_relative_width=float(self.max_relative_width.value) or None,
        )

    def _progress(self, progress: Progress) -> None:
        positions = progress.preview
        if isinstance(positions, np.ndarray) and positions.ndim == 2 and positions.shape[1] == 3:
            put_layer(
                self.viewer,
                (
                    positions,
                    {
                        "name": "Atoms (traced)",
                        "ndim": 3,
                        "size": 1.0,
                        "face_color": "yellow",
                        "units": ("angstrom",) * 3,
                        "border_width": 0.0,
                        "metadata": {"kind": "atoms-preview"},
                    },
                    "points",
                ),
            )

    def _result(self, atoms: Any) -> None:
        layers = self.viewer.layers
        if "Atoms (traced)" in layers and layers["Atoms (traced)"].metadata.get("kind") == "atoms-preview":
            layers.remove(layers["Atoms (traced)"])  # the live preview gives way to the result
        truth = self._truth()
        names = _truth_names(truth)
        if names and not atoms.names and int(self.n_species.value) == len(names):
            # classes by increasing intensity are the true species by increasing Z: name
            # them alike, so traced and true atoms of one element share a colour
            atoms.names = list(names)
        put_layers(self.viewer, atoms_layers(atoms, "traced"))
        self.score.value = "" if truth is None else score_line(self._score(atoms, truth))

    def _score(self, atoms: Atoms, truth: Any) -> dict:
        """Score against true atoms in the volume's frame, or against a simulator's truth
        (its atoms moved into the volume's frame by :func:`compare_with_truth`)."""
        from ..analysis import score_atoms
        from ..analysis.truth import compare_with_truth, species_classes

        if isinstance(truth, Atoms):
            return score_atoms(atoms, truth, radius=SCORE_RADIUS)
        true_atoms = truth["atoms"]
        species = species_classes(true_atoms["numbers"]) if "numbers" in true_atoms else None
        return compare_with_truth(
            self._volume,
            truth["volume"],
            atoms=atoms,
            true_atoms=true_atoms["positions"],
            true_species=species,
            score_radius=SCORE_RADIUS,
        ).atoms

    def _refresh(self, *_: Any) -> None:
        super()._refresh()
        names = _truth_names(self._truth())
        if names and not getattr(self, "_species_set", False):
            self.n_species.value = len(names)  # as many classes as true species
            self._species_set = True

    def _truth(self) -> Atoms | dict | None:
        """True atoms when known: an ``Atoms (truth)`` layer (in the frame of the volumes
        beside it), else the ``truth`` of a simulated series in the viewer (with its
        volume and atoms, as :mod:`napari_ptychotomo.simulate` gives them)."""
        layers = self.viewer.layers
        if "Atoms (truth)" in layers:
            truth = layers["Atoms (truth)"].metadata.get("result")
            if isinstance(truth, Atoms):
                return truth
        for layer in layers:
            truth = getattr(layer.metadata.get("result"), "truth", None)
            if isinstance(truth, dict) and truth.get("atoms") is not None and truth.get("volume") is not None:
                return truth
        return None


#: largest distance (Å) at which a traced atom stands for a true one in the widget's score
SCORE_RADIUS = 1.0


def _truth_names(truth: Any) -> list[str] | None:
    """Element names of the true species, lightest first (``None`` when unknown)."""
    if isinstance(truth, Atoms):
        return list(truth.names) if truth.names else None
    if isinstance(truth, dict) and "numbers" in truth["atoms"]:
        from ..simulate import chemical_symbol

        return [chemical_symbol(int(z)) for z in np.unique(truth["atoms"]["numbers"])]
    return None


def score_line(score: dict) -> str:
    """The score of traced atoms as one line: recall, false positives (count and share of
    the true atoms, as Ren et al. 2018, Table I), RMS position error, right species."""
    line = (
        f"recall {score['recall']:.2f}, false positives {score['false_positives']} "
        f"({100 * score['false_positive_rate']:.1f} %), RMS error {score['rms_error_3d']:.2f} Å"
    )
    if np.isfinite(score.get("species_accuracy", np.nan)):
        line += f", species {100 * score['species_accuracy']:.1f} % right"
    return line
