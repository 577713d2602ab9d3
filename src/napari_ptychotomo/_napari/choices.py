"""Which layers of a viewer hold which data objects: choices for the widgets' combo boxes.

Layers made by this plugin carry their data object in ``metadata["result"]``; several
layers may show the same object (a scan's bright field and mean diffraction), so each
object is offered once, under the name of the first layer showing it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["objects_in", "image_layers", "msp_results"]


def objects_in(viewer: Any, *types: type) -> list[tuple[str, Any]]:
    """``(layer name, data object)`` for every distinct object of ``types`` in the viewer."""
    seen: set[int] = set()
    out = []
    for layer in viewer.layers:
        obj = layer.metadata.get("result") if hasattr(layer, "metadata") else None
        if obj is not None and isinstance(obj, types) and id(obj) not in seen:
            seen.add(id(obj))
            out.append((layer.name, obj))
    return out


def image_layers(viewer: Any, ndim: int | None = None) -> list[tuple[str, Any]]:
    """``(name, layer)`` for the image layers (of ``ndim`` dimensions when given); an RGB
    image ``(ny, nx, 3)`` is a picture, never a stack or a volume, and is left out."""
    return [
        (layer.name, layer)
        for layer in viewer.layers
        if type(layer).__name__ == "Image"
        and not getattr(layer, "rgb", False)
        and (ndim is None or np.ndim(layer.data) == ndim)
    ]


def msp_results(viewer: Any, n_tilts: int | None = None) -> dict[int, Any]:
    """MSP results of the viewer's ``MSP … [tilt k]`` layers by tilt index ``k`` (the
    first layer of each index wins; indices ``>= n_tilts`` are left out when given)."""
    from ..data import MSPResult

    found: dict[int, Any] = {}
    for layer in viewer.layers:
        result, k = layer.metadata.get("result"), layer.metadata.get("tilt_index")
        if isinstance(result, MSPResult) and k is not None and int(k) >= 0 and (n_tilts is None or int(k) < n_tilts):
            found.setdefault(int(k), result)
    return dict(sorted(found.items()))
