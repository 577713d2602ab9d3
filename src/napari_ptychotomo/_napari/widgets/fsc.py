"""Docked widget "Resolution (FSC)": a thin shell over :func:`~napari_ptychotomo.analysis.fsc`
and :func:`~napari_ptychotomo.analysis.directional_fsc`.

Takes two volume layers (or the two half-data volumes a Volume carries in ``halves``), puts
the :class:`~napari_ptychotomo.data.Resolution` into the first layer's
``metadata["resolution"]``, and shows the crossings per threshold and direction in a table
(and the curves in a :class:`..plots.LivePlot`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Label

from ...data import Volume
from .._runner import one_step
from ..plots import LivePlot, Panel
from ._volume import _VolumeWidget, layer_volume

__all__ = ["ResolutionWidget", "resolution_table"]


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
        from ...analysis import directional_fsc, fsc

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
