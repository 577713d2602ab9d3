"""Layers of a whole project (series, MSP results, volumes with their alignment and
resolution, atoms), which of them stay visible, and ``layers_for``, which picks the
builder for any data object.
"""

from __future__ import annotations

from typing import Any

from ...data import Alignment, Atoms, MSPResult, Project, Resolution, ScanData, TiltSeries, Volume
from .atoms import atoms_layers
from .common import LayerData
from .msp import msp_layers
from .scan import scan_layers
from .volume import volume_layers


def project_layers(project: Project) -> list[LayerData]:
    """Every layer of a project: the series, each MSP result, each volume (with the
    alignment and the resolution of the same name in its metadata) and each atom set (its
    positions are in the volumes' frame already, origin included)."""
    layers: list[LayerData] = []
    if project.series is not None:
        layers += scan_layers(project.series)
        for _data, kwargs, _type in layers:
            kwargs["metadata"]["alignment"] = project.alignment
    for k in sorted(project.msp):
        layers += msp_layers(project.msp[k], tilt_index=k)
    for name, volume in project.volumes.items():
        for data, kwargs, kind in volume_layers(volume, name):
            kwargs["metadata"]["alignment"] = project.alignment
            resolution = project.resolution.get(name)
            if resolution is None and len(project.volumes) == len(project.resolution) == 1:
                resolution = next(iter(project.resolution.values()))
            kwargs["metadata"]["resolution"] = resolution
            layers.append((data, kwargs, kind))
    for name, atoms in project.atoms.items():  # their positions include the volume's origin
        layers += atoms_layers(atoms, name)
    _latest_visible(layers)
    return layers


#: volumes by pipeline stage, latest first
LATEST_VOLUMES = ("end-to-end", "linear", "aligned (low resolution)")


def _latest_visible(layers: list[LayerData]) -> None:
    """Leave visible only the atoms traced last and the volume they were traced in, else
    a project's latest volume (its real part); without a volume, the last MSP phase, else
    the raw data.
    The rest stays in the layer list, hidden: 31 overlapping layers show nothing."""

    def kind(item: LayerData) -> str:
        return item[1].get("metadata", {}).get("kind", "")

    volumes = {
        item[1]["metadata"].get("volume_name"): item
        for item in layers
        if kind(item) == "volume" and not item[1]["name"].endswith(", absorption)")
    }
    atoms = [item for item in layers if kind(item) == "atoms"]
    traced_in = [item[1]["metadata"].get("atoms_name") for item in atoms]
    # atom tracing is the last step: its atoms with the volume they were traced in (atoms
    # over another volume would sit in the wrong frame); else the latest volume
    latest = next((name for name in reversed(traced_in) if name in volumes), None) or next(
        (name for name in LATEST_VOLUMES if name in volumes), next(iter(volumes), None)
    )
    keep: list[LayerData] = []
    if latest is not None:
        keep.append(volumes[latest])
        keep += [item for item in atoms if item[1]["metadata"].get("atoms_name") == latest]
    else:
        phases = [item for item in layers if item[1]["name"].startswith("MSP phase")]
        keep += (phases or layers)[-1:]
    chosen = {id(item) for item in keep}
    for item in layers:
        item[1]["visible"] = id(item) in chosen


def layers_for(obj: Any, name: str | None = None) -> list[LayerData]:
    """Layers of any data object (``name`` names a volume or an atom set). Alignment and
    Resolution have no layer of their own: they travel in ``metadata`` (see
    :func:`project_layers`), so they give an empty list here."""
    if isinstance(obj, Project):
        return project_layers(obj)
    if isinstance(obj, (ScanData, TiltSeries)):
        return scan_layers(obj)
    if isinstance(obj, MSPResult):
        return msp_layers(obj, tilt_index=int(name) if name is not None else 0)
    if isinstance(obj, Volume):
        return volume_layers(obj, name or "linear")
    if isinstance(obj, Atoms):
        return atoms_layers(obj, name or "traced")
    if isinstance(obj, (Alignment, Resolution)):
        return []
    raise TypeError(
        f"cannot show a {type(obj).__name__}; expected a Project, ScanData, TiltSeries, "
        "MSPResult, Volume, Atoms, Alignment or Resolution"
    )
