"""Directional (conical) Fourier shell correlation: the FSC restricted to a double cone
of Fourier voxels around a direction, which exposes the anisotropic resolution of a
missing wedge (the cone FSC of Diebolder et al. 2015 and Tan et al. 2017's 3DFSC)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .fsc import correlation_result, fourier_shell_coordinate, prepare_pair, shell_sums

__all__ = ["directional_fsc", "direction_vectors"]

_AXES = {"z": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "x": (0.0, 0.0, 1.0)}


def direction_vectors(directions: Any) -> dict[str, np.ndarray]:
    """Named unit vectors (z, y, x) from axis names, (z, y, x) vectors or a name → vector dict."""
    if isinstance(directions, str):
        directions = [directions]
    items = directions.items() if isinstance(directions, dict) else [(None, d) for d in directions]
    out: dict[str, np.ndarray] = {}
    for name, value in items:
        if isinstance(value, str):
            if value.lower() not in _AXES:
                raise ValueError(f"direction {value!r} is not an axis; expected 'x', 'y', 'z' or a (z, y, x) vector")
            name, value = name or value.lower(), _AXES[value.lower()]
        vector = np.asarray(value, dtype=np.float64)
        if vector.shape != (3,) or not np.all(np.isfinite(vector)) or np.linalg.norm(vector) == 0:
            raise ValueError(f"direction {value!r}; expected a non-zero (z, y, x) vector or an axis name")
        vector = vector / np.linalg.norm(vector)
        out[name or "({:.3g}, {:.3g}, {:.3g})".format(*vector)] = vector
    if not out:
        raise ValueError("directions is empty; give e.g. ('x', 'y', 'z')")
    return out


def directional_fsc(
    volume1: Any,
    volume2: Any,
    voxel_size: float | None = None,
    directions: Any = ("x", "y", "z"),
    cone_half_angle_deg: float = 30.0,
    *,
    mask: Any = None,
    shell_width: float = 1.0,
    device: Any = "auto",
) -> dict[str, Any]:
    """FSC of two half-data volumes inside a double cone around each direction.

    Parameters
    ----------
    volume1, volume2 : Volume or array (nz, ny, nx), real or complex.
    voxel_size : voxel edge in Å (from a ``Volume`` when not given).
    directions : axis names (``"x"``, ``"y"``, ``"z"``), vectors (z, y, x), or a dict
        name → vector.
    cone_half_angle_deg : half opening angle of each cone in degrees (0 < angle ≤ 90).
    mask, shell_width, device : as in :func:`~.fsc.fsc`.

    Returns
    -------
    dict
        One entry per direction name: ``{"direction": unit (z, y, x), "frequency" 1/Å,
        "fsc", "thresholds", "crossings" (Å), "shell_counts"}``; and ``"anisotropy"``:
        per threshold, the worst over the best directional resolution (≥ 1; ``nan`` when
        a direction has no crossing).
    """
    if not (0 < cone_half_angle_deg <= 90):
        raise ValueError(f"cone_half_angle_deg = {cone_half_angle_deg!r}; expected 0 < angle ≤ 90 degrees")
    vectors = direction_vectors(directions)
    f1, f2, shape, size, dev = prepare_pair(volume1, volume2, voxel_size, mask, device)
    import torch

    coordinate, unit = fourier_shell_coordinate(shape, shell_width, dev)
    n_shells = int(np.floor(min(shape) / (2 * shell_width))) + 1
    frequency = np.arange(n_shells) * shell_width / (min(shape) * size)
    cos_limit = np.cos(np.deg2rad(cone_half_angle_deg)) - 1e-12
    table: dict[str, Any] = {}
    for name, vector in vectors.items():  # a handful of directions, each a full-grid pass
        d = torch.as_tensor(vector, dtype=torch.float64, device=dev).view(3, 1, 1, 1)
        in_cone = torch.abs((unit * d).sum(0)) >= cos_limit
        in_cone[0, 0, 0] = True  # the mean belongs to every direction
        entry = correlation_result(frequency, shell_sums(f1, f2, coordinate, n_shells, select=in_cone))
        entry["direction"] = vector
        table[name] = entry
    anisotropy = {}
    for threshold in ("one_bit", "half_bit", "0.143"):
        values = np.array([table[name]["crossings"][threshold] for name in vectors])
        anisotropy[threshold] = float(values.max() / values.min()) if np.all(np.isfinite(values)) else float("nan")
    table["anisotropy"] = anisotropy
    return table
