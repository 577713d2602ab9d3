"""One factory for the fields of the widgets: an engine setting → its magicgui widget.

:func:`field_widget` reads the setting's label, unit, range, step and tooltip from the
parameter dataclass or the ``@describes`` engine function that owns it
(:func:`napari_ptychotomo.params_meta.setting`), so a widget holds no number of its own.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, SpinBox
from magicgui.widgets.bases import ValueWidget

from ...params_meta import Setting, setting

__all__ = ["device_field", "field_widget", "widget_setting"]


def device_field() -> ComboBox:
    """The device every engine runs on: ``"auto"`` (CUDA when there is one), CPU or CUDA."""
    return ComboBox(label="device", choices=["auto", "cpu", "cuda"], value="auto", name="device")


def widget_setting(widget: ValueWidget) -> Setting:
    """The :class:`Setting` a widget of :func:`field_widget` was built from."""
    return widget._ptychotomo_setting


def field_widget(source: Any, name: str, /, **overrides: Any) -> ValueWidget:
    """The widget of setting ``name`` of ``source`` (a parameter dataclass or a
    ``@describes`` engine function; ``"rates.object"`` for a key of a dict field).

    By the default's type: a ComboBox (the setting has ``choices``), CheckBox (bool),
    SpinBox (int), FloatSpinBox (float), else a LineEdit of the text. ``name=`` is the
    setting's name (dots as underscores) unless overridden; ``value`` and any other
    keyword of the widget may be overridden.
    """
    found = setting(source, name)
    value = overrides.pop("value", found.value)
    kwargs: dict[str, Any] = {"name": name.replace(".", "_"), "tooltip": found.tooltip or None}
    if found.choices:
        widget_type: type = ComboBox
        kwargs.update(label=found.text, choices=list(found.choices), value=value)
    elif isinstance(value, bool):
        widget_type = CheckBox
        kwargs.update(text=found.text, value=value)
    elif isinstance(value, (int, float)):
        widget_type = SpinBox if isinstance(value, int) else FloatSpinBox
        kwargs.update(label=found.text, value=value)
        kwargs.update({k: getattr(found, k) for k in ("min", "max", "step") if getattr(found, k) is not None})
    else:
        widget_type = LineEdit
        kwargs.update(label=found.text, value=str(value))
    kwargs.update(overrides)
    widget = widget_type(**kwargs)
    widget._ptychotomo_setting = found
    return widget
