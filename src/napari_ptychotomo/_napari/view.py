"""What the viewer shows after results arrive: layer units napari can use, and the view
fitted to the visible (real-space) data at the middle of every slider.

Units: napari uses layer units for rendering and the scale bar only while every layer's
unit on an axis has the same dimensionality; otherwise it ignores them and warns on every
redraw (a toast per redraw, over the scale bar). Each layer here keeps the units it should
carry (Å for real space, an index for tilt / defocus axes) and carries them while they agree
with every other layer's; where they cannot (a tilt stack beside a volume: a tilt index and
z in Å share a slider), every layer carries napari's default "pixel" until they agree again.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

__all__ = [
    "centre_sliders",
    "fit_to_visible",
    "keep_units_consistent",
    "reconcile_units",
    "units_agree_with",
    "want_units",
    "wanted_units",
]


def fit_to_visible(viewer: Any) -> None:
    """Centre and zoom the 2D view on the visible layers only (napari's Home fits hidden
    layers too)."""
    viewer.reset_view()
    visible = [layer for layer in viewer.layers if layer.visible]
    if not visible or viewer.dims.ndisplay != 2:
        return
    boxes = [layer.extent.world[:, -2:] for layer in visible]
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    viewer.camera.center = tuple((lo + hi) / 2)
    size = np.asarray(getattr(getattr(viewer, "canvas", None), "size", (600, 600)), dtype=float)
    viewer.camera.zoom = 0.9 * float(np.min(size / np.maximum(hi - lo, 1e-9)))


def centre_sliders(viewer: Any) -> None:
    """Put every slider at the middle of the visible layers' extent along it (a volume's
    first slices are usually empty vacuum)."""
    visible = [layer for layer in viewer.layers if layer.visible]
    if not visible:
        return
    extent = viewer.layers.get_extent(visible).world
    for axis in viewer.dims.not_displayed:
        viewer.dims.set_point(axis, float(extent[0, axis] + extent[1, axis]) / 2)


def wanted_units(layer: Any) -> tuple[str, ...]:
    """The units ``layer`` carries when they agree with the other layers' (it may carry
    none for now)."""
    return _WANTED.get(layer, tuple(str(u) for u in layer.units))


def _units_agree(layers: list[Any]) -> bool:
    units: tuple = ()
    for layer in layers:
        own = tuple(layer.units)
        for a, b in zip(own[::-1], units[::-1]):
            if a.dimensionality != b.dimensionality:
                return False
        if len(own) > len(units):
            units = own
    return True


_WANTED: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()


def want_units(layer: Any, units: Any) -> None:
    """Record the units ``layer`` should carry when they agree with the other layers'."""
    _WANTED[layer] = tuple(str(u) for u in units)


class _Wanted:  # stands for a layer with the units it should carry
    def __init__(self, names: tuple[str, ...]):
        from napari.utils.transforms._units import get_units_from_name

        self.units = get_units_from_name(names)


def units_agree_with(viewer: Any, names: tuple[str, ...] | None = None) -> bool:
    """Whether the units every layer of ``viewer`` should carry (and ``names``, those of a
    layer about to be added) agree on every axis."""
    wanted = [_Wanted(_WANTED.get(layer, tuple(str(u) for u in layer.units))) for layer in viewer.layers]
    if names is not None:
        wanted.append(_Wanted(tuple(names)))
    return _units_agree(wanted)


def reconcile_units(viewer: Any, agree: bool | None = None) -> None:
    """Where the layers' units disagree on an axis (a tilt index where a volume has z in
    Å, mrad where an image has Å), napari ignores all units and warns on every redraw;
    then every layer carries no units (napari's pixel) until they agree again."""
    layers = list(viewer.layers)
    for layer in layers:
        if layer not in _WANTED:
            want_units(layer, layer.units)
    if agree is None:
        agree = units_agree_with(viewer)
    for layer in layers:
        names = _WANTED[layer]
        target = names if agree else ("pixel",) * len(names)
        if tuple(str(u) for u in layer.units) != tuple(target):
            layer.units = target


_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()  # layer lists already watched


def keep_units_consistent(viewer: Any) -> None:
    """Watch ``viewer`` (once) so that its layers' units always agree (see
    :func:`reconcile_units`)."""
    layers = viewer.layers
    if layers in _WATCHED:
        return
    _WATCHED.add(layers)
    layers.events.inserted.connect(lambda event: reconcile_units(viewer))
    layers.events.removed.connect(lambda event: reconcile_units(viewer))
    reconcile_units(viewer)
