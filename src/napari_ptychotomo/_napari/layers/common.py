"""What every layer builder of :mod:`napari_ptychotomo._napari.layers` shares: the
``LayerData`` tuple ``(data, kwargs, layer_type)``, the unit names napari shows (Å, mrad,
index) and the ``metadata`` every layer carries (the data object and what kind it is).
"""

from __future__ import annotations

from typing import Any

LayerData = tuple[Any, dict[str, Any], str]

ANGSTROM = "angstrom"
MRAD = "milliradian"
INDEX = "pixel"


def _meta(obj: Any, kind: str, **extra: Any) -> dict[str, Any]:
    return {"result": obj, "kind": kind, **extra}
