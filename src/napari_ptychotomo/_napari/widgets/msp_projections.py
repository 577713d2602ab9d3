"""Docked widget "Projections from MSP": the MSP results in the viewer → one projection stack.

A thin shell over :func:`~napari_ptychotomo.tomo.projections_from_msp`: the summed phase
σ·Σ Re V of every ``MSP … [tilt k]`` result, cropped to a common centred field of view,
becomes the image layer ``MSP projections`` ``(n_tilts, ny, nx)`` in rad with the object
pixel size in Å and the stage tilts in ``metadata["angles_deg"]``, ready for the
"Denoise projections", "Align tilt series" and "Linear tomography" widgets.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from magicgui.widgets import Container, Label

from .._runner import EngineRunner, one_step
from ..choices import msp_results
from ..show import put_layer

__all__ = ["ProjectionsFromMSPWidget", "LAYER_NAME"]

LAYER_NAME = "MSP projections"


class ProjectionsFromMSPWidget(Container):
    """Collect the MSP results of the viewer (by tilt index) into a projection stack."""

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        self.viewer = viewer
        self.found = Label(value="", name="found")
        self.runner = EngineRunner(
            self._start, on_result=self._result, synchronous=synchronous, run_text="Make projection stack"
        )
        super().__init__(widgets=[self.found, self.runner.widget])
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        self._refresh()

    def _refresh(self, *_: Any) -> None:
        tilts = list(msp_results(self.viewer))
        self.found.value = (
            f"MSP results for tilts {tilts}" if tilts else "no MSP results: run Multislice ptychography first"
        )

    def _start(self) -> Generator:
        from ...tomo import projections_from_msp

        results = msp_results(self.viewer)
        if not results:
            raise ValueError(
                "no MSP results in the viewer: run Multislice ptychography "
                "(all tilts) or open a project with MSP results"
            )
        self._tilts = list(results)
        return one_step(projections_from_msp, results, message=f"summing the phase of {len(results)} MSP results…")

    def _result(self, result: Any) -> None:
        stack, angles, pixel = result
        put_layer(
            self.viewer,
            (
                np.asarray(stack, dtype=np.float32),
                {
                    "name": LAYER_NAME,
                    "scale": (1.0, pixel, pixel),
                    "axis_labels": ("tilt", "y", "x"),
                    "units": ("pixel", "angstrom", "angstrom"),
                    "colormap": "gray",
                    "metadata": {
                        "kind": "projections",
                        "result": stack,
                        "angles_deg": np.asarray(angles, dtype=float),
                        "tilt_indices": self._tilts,
                    },
                },
                "image",
            ),
        )
