"""Docked widget "Denoise projections": a thin shell over
:func:`~napari_ptychotomo.tomo.denoise_projections`; the result is the layer ``<stack> (denoised)``."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from .._runner import one_step
from ._stack import _StackWidget
from .fields import field_widget

__all__ = ["DenoiseWidget"]


class DenoiseWidget(_StackWidget):
    """Denoise a projection stack (BM3D / non-local means / TV, optional Fourier sparsity)."""

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        from ...tomo import denoise_projections

        # the engine's defaults, so the widget and the command line start from the same ones
        self.method = field_widget(denoise_projections, "method")
        self.strength = field_widget(denoise_projections, "strength")
        self.sparsity = field_widget(denoise_projections, "fourier_sparsity", name="sparsity")
        super().__init__(viewer, [self.method, self.strength, self.sparsity], synchronous)
        self.device.visible = False

    def _start(self) -> Generator:
        from ...tomo import denoise_projections

        self._layer, data, _angles, _pixel = self.inputs()
        return one_step(
            denoise_projections,
            data,
            method=str(self.method.value),
            strength=float(self.strength.value),
            fourier_sparsity=float(self.sparsity.value) or None,
            message=f"denoising {len(data)} projections…",
        )

    def _result(self, result: Any) -> None:
        self._output(
            self._layer,
            np.asarray(result, dtype=np.float32),
            "denoised",
            alignment=self._layer.metadata.get("alignment"),
        )
