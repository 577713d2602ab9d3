"""Docked widget "Linear tomography": a thin shell over
:func:`~napari_ptychotomo.tomo.reconstruct_linear_steps` with the alignment fixed.

Puts ``Volume (linear)`` with its support mask
(:func:`~napari_ptychotomo.tomo.make_support_mask`) as the Labels layer ``Support mask
(linear)`` and, on request, the projections multiplied by the mask's projections
(:func:`~napari_ptychotomo.tomo.project_mask`) as ``<stack> (masked)``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox

from ...data import Alignment
from ...engine import Progress
from ..layers import volume_layers
from ..plots import LivePlot, Panel
from ..show import put_layer, put_layers
from ._stack import _StackWidget
from .fields import field_widget

__all__ = ["LinearTomographyWidget"]


class LinearTomographyWidget(_StackWidget):
    """Linear tomography with the alignment fixed (the stack's ``metadata["alignment"]``,
    else the nominal tilts about y with zero shifts)."""

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        from ...tomo import make_support_mask, reconstruct_linear_steps

        self.iterations = field_widget(reconstruct_linear_steps, "n_iter", name="iterations")
        self.nonnegative = field_widget(reconstruct_linear_steps, "nonnegative")
        self.tv_weight = field_widget(reconstruct_linear_steps, "tv_weight")
        self.support_mask = CheckBox(text="support mask (Labels layer)", value=True, name="support_mask")
        self.mask_threshold = field_widget(make_support_mask, "threshold", name="mask_threshold")
        self.mask_projections = CheckBox(text="mask the projections too", value=False, name="mask_projections")
        super().__init__(
            viewer,
            [
                self.iterations,
                self.nonnegative,
                self.tv_weight,
                self.support_mask,
                self.mask_threshold,
                self.mask_projections,
            ],
            synchronous,
        )
        self.loss_plot = LivePlot(name="loss_plot", label="loss")
        self.append(self.loss_plot)

    def alignment(self, layer: Any, angles: np.ndarray) -> Alignment:
        alignment = layer.metadata.get("alignment")
        if isinstance(alignment, Alignment) and len(alignment.euler_deg) == len(angles):
            return alignment
        return Alignment.from_angles(angles)

    def _start(self) -> Generator:
        from ...tomo import reconstruct_linear_steps

        self._layer, data, angles, pixel = self.inputs()
        self._data, self._pixel, self._losses = data, pixel, ([], [])
        self._alignment = self.alignment(self._layer, angles)
        return reconstruct_linear_steps(
            data,
            self._alignment,
            pixel,
            n_iter=int(self.iterations.value),
            nonnegative=bool(self.nonnegative.value),
            tv_weight=float(self.tv_weight.value),
            device=str(self.device.value),
        )

    def _progress(self, progress: Progress) -> None:
        steps, losses = self._losses
        steps.append(progress.step)
        losses.append(progress.loss)
        self.loss_plot.show(
            [Panel("iteration", "projection error", {"loss": (steps, losses)}, log_y=True)],
            f"iteration {progress.step}, loss {progress.loss:.4g}",
        )

    def _result(self, volume: Any) -> None:
        layers = volume_layers(volume, "linear")
        for _data, kwargs, _kind in layers:
            kwargs["metadata"]["alignment"] = self._alignment
        put_layers(self.viewer, layers)
        if self.support_mask.value:
            self._show_mask(volume)

    def _show_mask(self, volume: Any) -> None:
        from ...tomo import make_support_mask, project_mask

        mask = make_support_mask(volume, threshold=float(self.mask_threshold.value))
        s = float(volume.voxel_size)
        put_layer(
            self.viewer,
            (
                mask.astype(np.uint8),
                {
                    "name": "Support mask (linear)",
                    "scale": (s, s, s),
                    "translate": tuple(float(v) for v in np.asarray(volume.origin)),
                    "axis_labels": ("z", "y", "x"),
                    "units": ("angstrom",) * 3,
                    "opacity": 0.4,
                    "metadata": {"kind": "mask", "result": mask, "alignment": self._alignment},
                },
                "labels",
            ),
        )
        if self.mask_projections.value:
            weights = project_mask(mask, self._alignment, self._pixel, out_shape=self._data.shape[1:])
            self._output(self._layer, (self._data * weights).astype(np.float32), "masked", alignment=self._alignment)
