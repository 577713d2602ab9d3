"""What the projection-stack widgets share ("Denoise projections", "Align tilt series",
"Linear tomography", one module each): the stack (an image layer ``(n_tilts, ny, nx)``,
pixel size = the layer's last ``scale`` in Å), its tilt angles (the layer's
``metadata["angles_deg"]``, or typed in), the device, the Run / Stop frame of
:class:`.._runner.EngineRunner` and the output layer ``<stack> (suffix)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, LineEdit

from ...engine import Progress
from .._runner import EngineRunner
from ..choices import image_layers
from ..show import put_layer
from ..view import wanted_units
from .fields import device_field

__all__ = ["parse_angles"]


def parse_angles(text: str) -> np.ndarray:
    """Tilt angles in degrees from ``"a, b, c"`` or ``"start:stop:count"`` (inclusive)."""
    text = text.strip()
    try:
        if ":" in text:
            start, stop, count = (float(v) for v in text.split(":"))
            return np.linspace(start, stop, int(count))
        return np.array([float(v) for v in text.replace(";", ",").split(",") if v.strip()])
    except ValueError:
        raise ValueError(
            f"angles = {text!r}; expected degrees as 'a, b, c' or 'start:stop:count', e.g. '-60:60:31'"
        ) from None


class _StackWidget(Container):
    """Common inputs: the projection stack, its angles and the device; a runner."""

    def __init__(self, viewer: Any, fields: list, synchronous: bool = False):
        self.viewer = viewer
        self.stack = ComboBox(label="projections", choices=self._stack_names, name="stack")
        self.angles = LineEdit(label="angles (°)", value="", name="angles")
        self.device = device_field()
        self.runner = EngineRunner(
            self._start,
            on_progress=self._progress,
            on_result=self._result,
            on_stopped=self._stopped,
            synchronous=synchronous,
        )
        super().__init__(widgets=[self.stack, self.angles, *fields, self.device, self.runner.widget])
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        self.stack.changed.connect(self._fill_angles)
        self._fill_angles()

    def _stack_names(self, *_: Any) -> list[str]:
        return [name for name, _ in image_layers(self.viewer, ndim=3)]

    def _refresh(self, *_: Any) -> None:
        self.stack.reset_choices()

    def _fill_angles(self, *_: Any) -> None:
        layer = self.layer(required=False)
        angles = None if layer is None else layer.metadata.get("angles_deg")
        if angles is not None and not self.angles.value:
            self.angles.value = ", ".join(f"{a:g}" for a in np.asarray(angles, dtype=float))

    def layer(self, required: bool = True):
        name = self.stack.value
        if name is None or name not in self.viewer.layers:
            if required:
                raise ValueError("no projection stack: choose an image layer (n_tilts, ny, nx)")
            return None
        return self.viewer.layers[name]

    def inputs(self) -> tuple[Any, np.ndarray, np.ndarray, float]:
        """(layer, projections (T, ny, nx) float32, angles (T,) degrees, pixel size Å)."""
        layer = self.layer()
        data = np.asarray(layer.data, dtype=np.float32)
        angles = parse_angles(self.angles.value)
        if len(angles) != len(data):
            raise ValueError(
                f"{len(angles)} angle(s) for {len(data)} projections in "
                f"{layer.name!r}; give one tilt angle in degrees per projection"
            )
        return layer, data, angles, float(layer.scale[-1])

    def _output(self, layer: Any, data: Any, suffix: str, **metadata: Any) -> Any:
        meta = {"kind": "projections", "angles_deg": layer.metadata.get("angles_deg"), **metadata}
        return put_layer(
            self.viewer,
            (
                data,
                {
                    "name": f"{layer.name} ({suffix})",
                    "scale": tuple(layer.scale),
                    "translate": tuple(layer.translate),
                    "axis_labels": tuple(layer.axis_labels),
                    "units": wanted_units(layer),
                    "colormap": "gray",
                    "metadata": {"result": data, **meta},
                },
                "image",
            ),
        )

    def _progress(self, progress: Progress) -> None:
        pass

    def _stopped(self, last: Progress) -> Any:
        return None
