"""What a user interface shows of an engine setting, kept beside the setting itself.

A parameter dataclass field carries its label, unit, range, step and tooltip in
``dataclasses.field(metadata=ui(...))`` (or :func:`param`); an engine function whose
settings are keywords carries them in ``@describes(name=ui(...))``. :func:`setting` reads
them back as one :class:`Setting`, with the default from the dataclass or the signature and
the tooltip, unless given, from the ``name : text`` entry of the docstring's Parameters
section. No GUI code here: the widgets of ``_napari/`` build their fields from it.

Sub-settings of a dict-valued field (the learning rates ``rates``, the ``aberrations``) are
named ``"field.key"`` and described in that field's ``ui(parts={key: ui(...)})``.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["Setting", "UI_KEY", "describes", "docstring_entries", "param", "setting", "ui"]

#: key of the metadata entry (dataclass fields) that holds the user-interface description
UI_KEY = "ui"

_NO_DEFAULT = dataclasses.MISSING


def ui(
    label: str,
    *,
    unit: str = "",
    min: float | None = None,  # noqa: A002 - the widget's own word
    max: float | None = None,  # noqa: A002
    step: float | None = None,
    tooltip: str = "",
    choices: tuple[str, ...] | None = None,
    none: Any = None,
    default: Any = _NO_DEFAULT,
    parts: dict[str, dict] | None = None,
) -> dict[str, dict[str, Any]]:
    """Field metadata ``{UI_KEY: description}``.

    ``label`` is the text the widget shows (the unit is appended in parentheses); ``min``,
    ``max``, ``step`` bound a number; ``choices`` list the allowed strings; ``none`` is
    the value the widget shows for a default ``None`` (e.g. 0 = "auto" / "off");
    ``default`` is for a setting whose owner has none to read (a keyword in ``**params``);
    ``parts`` describe the keys of a dict-valued field.
    """
    entry = dict(label=label, unit=unit, min=min, max=max, step=step, tooltip=tooltip, choices=choices, none=none)
    if default is not _NO_DEFAULT:
        entry["default"] = default
    if parts:
        entry["parts"] = {key: value[UI_KEY] for key, value in parts.items()}
    return {UI_KEY: entry}


def param(default: Any = _NO_DEFAULT, *, default_factory: Any = _NO_DEFAULT, **description: Any) -> Any:
    """``dataclasses.field`` with a default and the user-interface description of :func:`ui`."""
    if default_factory is not _NO_DEFAULT:
        return dataclasses.field(default_factory=default_factory, metadata=ui(**description))
    return dataclasses.field(default=default, metadata=ui(**description))


def describes(docs: str | None = None, **entries: dict[str, dict]) -> Callable[[Callable], Callable]:
    """Decorator: the user-interface description of an engine function's keywords.

    ``docs`` names a function of the same module whose docstring documents the keywords
    (e.g. the plain form of a generator engine); by default the function's own.
    """

    def decorate(function: Callable) -> Callable:
        function.__param_ui__ = {name: entry[UI_KEY] for name, entry in entries.items()}
        function.__param_docs__ = docs
        return function

    return decorate


def docstring_entries(obj: Any) -> dict[str, str]:
    """``name : text`` entries of a numpydoc Parameters section (``a, b : text`` gives both)."""
    doc = inspect.getdoc(obj) or ""
    found: dict[str, str] = {}
    for match in re.finditer(r"^([\w, ]+?) : (.+?)(?=^\S|\Z)", doc, re.M | re.S):
        text = " ".join(match.group(2).split())
        for name in match.group(1).split(","):
            found[name.strip()] = text
    return found


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting as a user interface shows it (see :func:`setting`)."""

    name: str
    default: Any
    label: str
    unit: str = ""
    min: float | None = None
    max: float | None = None
    step: float | None = None
    description: str = ""
    choices: tuple[str, ...] | None = None
    none: Any = None

    @property
    def text(self) -> str:
        """The label with its unit: ``"slice thickness (Å)"``."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def tooltip(self) -> str:
        """The description, with the unit named when the text does not name it."""
        text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([^`]+)`", r"\1", self.description).replace("``", "").strip()
        if self.unit and self.unit not in text:
            text = f"{text} Unit: {self.unit}." if text else f"Unit: {self.unit}."
        return text

    @property
    def value(self) -> Any:
        """The default as the widget shows it (``none`` in place of ``None``)."""
        return self.none if self.default is None else self.default


def _described(entry: dict[str, Any] | None, owner: str, name: str) -> dict[str, Any]:
    if entry is None:
        raise KeyError(f"{owner}.{name} has no user-interface description (ui metadata)")
    return entry


def setting(source: Any, name: str) -> Setting:
    """The :class:`Setting` ``name`` of a parameter dataclass or a ``@describes`` function.

    ``name`` may be ``"field.key"`` for a key of a dict-valued field (its ``parts``); a
    :class:`~napari_ptychotomo.engine.LearningRate` default gives its ``step``.
    """
    field_name, _, key = name.partition(".")
    owner = getattr(source, "__qualname__", repr(source))
    if dataclasses.is_dataclass(source):
        found = {f.name: f for f in dataclasses.fields(source)}
        if field_name not in found:
            raise KeyError(f"{owner} has no field {field_name!r}")
        f = found[field_name]
        entry = _described(f.metadata.get(UI_KEY), owner, field_name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = entry.get("default")
        docs = docstring_entries(source)
    else:
        entry = _described(getattr(source, "__param_ui__", {}).get(field_name), owner, field_name)
        parameter = inspect.signature(source).parameters.get(field_name)
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            default = parameter.default
        else:
            default = entry.get("default")
        docs_name = getattr(source, "__param_docs__", None)
        documented = getattr(sys.modules[source.__module__], docs_name) if docs_name else source
        docs = docstring_entries(documented)
    description = entry["tooltip"] or docs.get(field_name, "")
    if key:
        parts = entry.get("parts") or {}
        entry = _described(parts.get(key), owner, name)
        default = entry["default"] if "default" in entry else (default or {}).get(key)
        default = getattr(default, "step", default)  # a LearningRate: its step
        description = entry["tooltip"] or description
    return Setting(
        name=name,
        default=default,
        label=entry["label"],
        unit=entry["unit"],
        min=entry["min"],
        max=entry["max"],
        step=entry["step"],
        description=description,
        choices=entry["choices"],
        none=entry["none"],
    )
