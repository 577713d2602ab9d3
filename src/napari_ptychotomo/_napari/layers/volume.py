"""Layers of a tomography / joint-reconstruction volume (real and absorption parts) or of a
projection stack, scaled by the voxel size in Å and placed at the volume's origin.
"""

from __future__ import annotations

import numpy as np

from ...data import Volume
from .common import ANGSTROM, INDEX, LayerData, _meta


def volume_layers(volume: Volume, name: str = "linear") -> list[LayerData]:
    """``Volume (name)`` ``(nz, ny, nx)`` scaled by the voxel size in Å and placed at its
    origin; a complex volume adds ``Volume (name, absorption)`` for its imaginary part."""
    data = volume.data
    s = float(volume.voxel_size)
    common = {
        "scale": (s, s, s),
        "translate": tuple(float(v) for v in np.asarray(volume.origin)),
        "axis_labels": ("z", "y", "x"),
        "units": (ANGSTROM, ANGSTROM, ANGSTROM),
    }
    meta = _meta(volume, "volume", volume_name=name)
    if str(volume.provenance.get("axes", "")).startswith("tilt"):
        # a projection stack (tilt, y, x): the tilt is an index, not a length
        origin = np.asarray(volume.origin, dtype=float)
        return [
            (
                np.asarray(data),
                {
                    "name": name[:1].upper() + name[1:],
                    "colormap": "gray",
                    "scale": (1.0, s, s),
                    "translate": (0.0, *map(float, origin[1:])),
                    "axis_labels": ("tilt", "y", "x"),
                    "units": (INDEX, ANGSTROM, ANGSTROM),
                    "metadata": _meta(volume, "projections", volume_name=name),
                },
                "image",
            )
        ]
    if np.iscomplexobj(np.empty(0, dtype=data.dtype)):
        values = np.asarray(data)
        return [
            (
                values.real.astype(np.float32),
                {"name": f"Volume ({name})", "colormap": "gray", "metadata": meta, **common},
                "image",
            ),
            (
                values.imag.astype(np.float32),
                {"name": f"Volume ({name}, absorption)", "colormap": "magma", "metadata": meta, **common},
                "image",
            ),
        ]
    return [(data, {"name": f"Volume ({name})", "colormap": "gray", "metadata": meta, **common}, "image")]
