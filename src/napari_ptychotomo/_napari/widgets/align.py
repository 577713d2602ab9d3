"""Docked widget "Align tilt series": a thin shell over
:func:`~napari_ptychotomo.tomo.align_tilt_series_steps` (You et al. 2025, Algorithm 2).

Puts ``<stack> (aligned)`` and ``Volume (aligned)`` (with the Alignment in ``metadata``)
and plots the shifts (Å) and Euler angles (°) per tilt live.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from ...data import Alignment
from ...engine import Progress
from ..layers import volume_layers
from ..plots import LivePlot, Panel
from ..show import put_layer
from ._stack import _StackWidget
from .fields import field_widget

__all__ = ["AlignWidget"]


class AlignWidget(_StackWidget):
    """Joint rigid alignment and linear tomography (You et al. 2025, Algorithm 2).

    ``method`` "auto" lets the engine choose (projection matching for an object in vacuum
    of 64 px or more, else the gradient stages); threshold and outer iterations apply to
    the gradient stages only. Defaults are the engine's."""

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        from ...tomo import align_tilt_series_steps
        from ...tomo.align_params import AlignStage, default_stages

        engine = align_tilt_series_steps
        self.method = field_widget(engine, "method")
        self.threshold = field_widget(engine, "threshold")
        self.estimate_axis = field_widget(engine, "estimate_axis")
        self.outer_iterations = field_widget(
            AlignStage, "n_outer", value=default_stages()[0].n_outer, name="outer_iterations"
        )
        self.final_iterations = field_widget(engine, "final_n_iter", name="final_iterations")
        super().__init__(
            viewer,
            [self.method, self.threshold, self.estimate_axis, self.outer_iterations, self.final_iterations],
            synchronous,
        )
        self.shift_plot = LivePlot(name="shift_plot", label="shifts")
        self.append(self.shift_plot)

    def _start(self) -> Generator:
        from dataclasses import replace

        from ...tomo import align_tilt_series_steps
        from ...tomo.align import default_method
        from ...tomo.align_params import default_stages

        self._layer, data, angles, self._pixel = self.inputs()
        self._angles = angles
        method = default_method(data) if self.method.value == "auto" else str(self.method.value)
        stages = None
        if method == "gradient":
            stages = [replace(stage, n_outer=int(self.outer_iterations.value)) for stage in default_stages()]
        return align_tilt_series_steps(
            data,
            angles,
            self._pixel,
            method=method,
            stages=stages,
            threshold=float(self.threshold.value),
            estimate_axis=bool(self.estimate_axis.value),
            final_n_iter=int(self.final_iterations.value),
            device=str(self.device.value),
        )

    def _progress(self, progress: Progress) -> None:
        preview = progress.preview or {}
        if "volume_slice" in preview:
            p = self._pixel
            put_layer(
                self.viewer,
                (
                    np.asarray(preview["volume_slice"]),
                    {
                        "name": "Alignment preview (central z slice)",
                        "scale": (p, p),
                        "axis_labels": ("y", "x"),
                        "units": ("angstrom", "angstrom"),
                        "colormap": "gray",
                        "metadata": {
                            "kind": "preview",
                            "shifts": preview.get("shifts"),
                            "euler_deg": preview.get("euler_deg"),
                        },
                    },
                    "image",
                ),
            )
        if preview.get("shifts") is not None and preview.get("euler_deg") is not None:
            self.plot_alignment(np.asarray(preview["shifts"]), np.asarray(preview["euler_deg"]))

    def plot_alignment(self, shifts: np.ndarray, euler_deg: np.ndarray) -> None:
        """Shifts (y, x) in Å and the Euler angles' departure from the nominal tilts in
        degrees (φ, θ − nominal, ψ), per tilt."""
        a = self._angles
        rms = float(np.sqrt(np.mean(np.sum(shifts**2, axis=1))))
        self.shift_plot.show(
            [
                Panel("tilt (°)", "shift (Å)", {"y": (a, shifts[:, 0]), "x": (a, shifts[:, 1])}, style="o-"),
                Panel(
                    "tilt (°)",
                    "angle (°)",
                    {"φ": (a, euler_deg[:, 0]), "θ − nominal": (a, euler_deg[:, 1] - a), "ψ": (a, euler_deg[:, 2])},
                    style="o-",
                ),
            ],
            f"RMS shift {rms:.2f} Å, mean ψ {float(np.mean(euler_deg[:, 2])):.2f}°",
        )

    def _result(self, result: Any) -> None:
        from scipy import ndimage

        alignment, volume = result
        self.plot_alignment(np.asarray(alignment.shifts), np.asarray(alignment.euler_deg))
        layer = self._layer
        layer.metadata["alignment"] = alignment
        data = np.asarray(layer.data, dtype=np.float32)
        shifts_px = np.asarray(alignment.shifts) / self._pixel
        aligned = np.stack([ndimage.shift(d, -s, order=1, mode="constant") for d, s in zip(data, shifts_px)])
        undone = Alignment(euler_deg=np.asarray(alignment.euler_deg), shifts=np.zeros_like(alignment.shifts))
        self._output(layer, aligned, "aligned", alignment=undone)
        # a stopped alignment's partial result may have no volume yet
        for data_, kwargs, kind in volume_layers(volume, "aligned") if volume is not None else []:
            kwargs["metadata"]["alignment"] = alignment
            put_layer(self.viewer, (data_, kwargs, kind))
