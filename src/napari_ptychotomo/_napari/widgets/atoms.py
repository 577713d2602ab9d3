"""Docked widget "Atom tracing": a thin shell over
:func:`~napari_ptychotomo.analysis.trace_atoms_steps`.

Puts ``Atoms (traced)`` as Points (size and colour by species; features intensity, width)
and, when the true atoms are known (an ``Atoms (truth)`` layer, or the truth of a simulated
series in the viewer), a score line: recall, false positives, RMS error and species.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Label

from ...data import Atoms
from ...engine import Progress
from ..layers import atoms_layers
from ..show import put_layer, put_layers
from ._volume import _VolumeWidget, layer_volume
from .fields import device_field, field_widget

__all__ = ["AtomTracingWidget", "SCORE_RADIUS", "score_line"]


class AtomTracingWidget(_VolumeWidget):
    """Trace atoms in a potential volume (Ren et al. 2018) and classify their species."""

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        self.viewer = viewer
        self.volume = ComboBox(label="volume", choices=self._names, name="volume")
        from ...analysis.atom_tracing import trace_atoms_steps

        self.n_species = field_widget(trace_atoms_steps, "n_species")
        self.threshold_sigma = field_widget(trace_atoms_steps, "threshold_sigma")
        self.iterations = field_widget(trace_atoms_steps, "iterations")
        self.max_relative_width = field_widget(trace_atoms_steps, "max_relative_width")
        self.device = device_field()
        self.score = Label(value="", name="score", label="against the truth")
        super().__init__(
            viewer,
            [self.volume, self.n_species, self.threshold_sigma, self.iterations, self.max_relative_width, self.device],
            synchronous,
        )
        self.append(self.score)
        self._refresh()

    def _start(self) -> Generator:
        from ...analysis import trace_atoms_steps
        from ...analysis.atom_tracing import parse_relative_width

        self._target = self._layer(self.volume.value)
        self._volume = layer_volume(self._target)
        return trace_atoms_steps(
            self._volume,
            device=str(self.device.value),
            n_species=int(self.n_species.value),
            threshold_sigma=float(self.threshold_sigma.value),
            iterations=int(self.iterations.value),
            max_relative_width=parse_relative_width(self.max_relative_width.value),
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
        from ...analysis import score_atoms
        from ...analysis.truth import compare_with_truth, species_classes

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
        from ...simulate import chemical_symbol

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
