"""What the volume widgets "Resolution (FSC)" and "Atom tracing" share (one module each:
:mod:`.fsc`, :mod:`.atoms`): the volume layers to choose from, :func:`layer_volume`, and
the Run / Stop frame."""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import Container

from ...data import Volume
from ...engine import Progress
from .._runner import EngineRunner
from ..choices import image_layers

__all__ = ["layer_volume"]


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
            f"({', '.join(f'{v:g}' for v in scale)}); expected a volume (nz, ny, nx) with cubic voxels"
        )
    return Volume(
        data=np.asarray(layer.data, dtype=np.float32),
        voxel_size=float(scale[-1]),
        origin=np.asarray(layer.translate, dtype=float),
    )


class _VolumeWidget(Container):
    def __init__(self, viewer: Any, fields: list, synchronous: bool):
        self.viewer = viewer
        self.runner = EngineRunner(
            self._start, on_result=self._result, on_progress=self._progress, synchronous=synchronous
        )
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
