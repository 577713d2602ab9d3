"""The resolution of a half-data volume: the FSC of its two halves, optionally per
direction. Sits above :mod:`.fsc` and :mod:`.directional`, which need nothing of it."""

from __future__ import annotations

import warnings
from typing import Any

from ..data import Resolution, Volume
from .directional import directional_fsc
from .fsc import fsc


def resolution_of(volume: Volume, *, mask: Any = None, directions: Any = None, **kwargs: Any) -> Resolution:
    """Resolution of a ``Volume`` that carries its two half-data reconstructions.

    The crossings are a resolution only when the halves are independent. When the
    volume's ``provenance["halves_share"]`` lists what they share (the pipeline's
    end-to-end step records it), a ``UserWarning`` says so and the result's provenance
    carries ``independent = False``.

    ``directions`` (e.g. ``("x", "y", "z")``) adds a conical FSC per direction in
    ``Resolution.directional`` (see :func:`~.directional.directional_fsc`).
    """
    if not isinstance(volume, Volume):
        raise ValueError(f"volume is a {type(volume).__name__}; expected a Volume with halves")
    if volume.halves is None:
        raise ValueError(
            "volume.halves is None; resolution_of needs the two half-data reconstructions "
            "(end-to-end half-data mode), or call fsc(volume1, volume2, voxel_size)"
        )
    first, second = volume.halves
    result = fsc(first, second, volume.voxel_size, mask=mask, **kwargs)
    shared = (volume.provenance or {}).get("halves_share")
    if shared:
        # correlated errors raise the FSC: its crossings are then no resolution
        warnings.warn(
            "resolution_of: the halves are not independent (they share "
            + "; ".join(map(str, shared))
            + "); the crossings overstate the resolution",
            UserWarning,
            stacklevel=2,
        )
        result.provenance["independent"] = False
        result.provenance["halves_share"] = list(shared)
    if directions is not None:
        table = directional_fsc(first, second, volume.voxel_size, directions=directions, mask=mask, **kwargs)
        result.directional = table
    return result
