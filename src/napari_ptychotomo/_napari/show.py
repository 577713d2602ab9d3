"""``show(obj, viewer)``: put any data object into napari as scaled, named layers.

Re-showing replaces the layers of the same name (their data, scale and metadata are
updated in place where the layer type and dimensionality match), so a workflow run twice
never piles up layers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import LayerData, layers_for

__all__ = ["show", "put_layer", "put_layers"]

# keyword arguments that may be updated on an existing layer of the same type
_UPDATABLE = ("scale", "translate", "metadata", "axis_labels")  # and units: see put_layer


def put_layer(viewer: Any, layer_data: LayerData) -> Any:
    """Add one ``(data, kwargs, layer_type)`` to ``viewer``, replacing a layer of the
    same name; returns the napari layer."""
    from .view import keep_units_consistent, reconcile_units, units_agree_with, want_units

    keep_units_consistent(viewer)
    data, kwargs, layer_type = layer_data
    units = tuple(kwargs["units"]) if "units" in kwargs else None
    if units is None:
        return _add(viewer, layer_data)
    # a layer carries its units only while they agree with every other layer's; else all
    # carry none. Settled before the layer arrives: napari warns at the next redraw.
    if name_in(viewer, kwargs.get("name")):
        want_units(viewer.layers[kwargs["name"]], units)
        agree = units_agree_with(viewer)
    else:
        agree = units_agree_with(viewer, units)
    reconcile_units(viewer, agree=agree)
    layer = _add(viewer, (data, {**kwargs, "units": units if agree else ("pixel",) * len(units)}, layer_type))
    want_units(layer, units)
    return layer


def _add(viewer: Any, layer_data: LayerData) -> Any:
    data, kwargs, layer_type = layer_data
    name = kwargs.get("name")
    if name is not None and name in viewer.layers:
        old = viewer.layers[name]
        if (
            type(old).__name__.lower() == layer_type
            and np.ndim(old.data) == np.ndim(data)
            and (layer_type != "points" or np.shape(old.data)[-1:] == np.shape(data)[-1:])
        ):
            for key in (*_UPDATABLE, "units"):
                if key in kwargs:
                    setattr(old, key, kwargs[key])
            if layer_type == "points":
                _update_points(old, data, kwargs)
            else:
                old.data = data
                if "contrast_limits" in kwargs:
                    old.contrast_limits = kwargs["contrast_limits"]
                elif layer_type == "image":
                    # from all the data: a hidden layer has no slice to measure
                    old.reset_contrast_limits_range(mode="data")
                    old.reset_contrast_limits(mode="data")
            old.refresh()
            return old
        index = viewer.layers.index(old)
        viewer.layers.remove(old)
        layer = getattr(viewer, f"add_{layer_type}")(data, **kwargs)
        viewer.layers.move(viewer.layers.index(layer), index)
        return layer
    return getattr(viewer, f"add_{layer_type}")(data, **kwargs)


def name_in(viewer: Any, name: Any) -> bool:
    return name is not None and name in viewer.layers


def _update_points(layer: Any, data: Any, kwargs: dict[str, Any]) -> None:
    import pandas as pd

    features = kwargs.get("features")
    layer.data = data
    if features is not None:
        layer.features = pd.DataFrame(features)
    for key in ("size", "face_color"):
        value = kwargs.get(key)
        if value is not None and not isinstance(value, str):
            setattr(layer, key, value)


def put_layers(viewer: Any, layers: list[LayerData]) -> list[Any]:
    """:func:`put_layer` for each item; returns the napari layers."""
    return [put_layer(viewer, item) for item in layers]


def show(obj: Any, viewer: Any = None, *, name: str | None = None) -> list[Any]:
    """Show a data object in napari.

    Parameters
    ----------
    obj : a :class:`~napari_ptychotomo.data.Project` (every result in it), ``ScanData`` /
        ``TiltSeries`` (virtual bright field + mean diffraction), ``MSPResult``,
        ``Volume``, ``Atoms``; an ``Alignment`` or ``Resolution`` is attached to the
        ``metadata`` of the volume layers already in the viewer.
    viewer : a ``napari.Viewer``; ``None`` uses the current viewer or opens one.
    name : volume / atom-set name, or the tilt index of an ``MSPResult``.

    Returns
    -------
    The napari layers added or updated.
    """
    import napari

    from ..data import Alignment, Resolution

    if viewer is None:
        viewer = napari.current_viewer() or napari.Viewer()
    if isinstance(obj, (Alignment, Resolution)):
        key = "alignment" if isinstance(obj, Alignment) else "resolution"
        touched = [layer for layer in viewer.layers if layer.metadata.get("kind") == "volume"]
        for layer in touched:
            layer.metadata[key] = obj
        return touched
    from ..data import Project
    from .view import centre_sliders, fit_to_visible

    items = layers_for(obj, name)
    layers = put_layers(viewer, items)
    if isinstance(obj, Project):  # its latest results (see project_layers), in the middle, filling the view
        for layer, (_data, kwargs, _kind) in zip(layers, items):
            layer.visible = kwargs.get("visible", True)  # also on a re-show
        centre_sliders(viewer)
        fit_to_visible(viewer)
    return layers
