"""The checks of one configuration value (:mod:`.config`): its type against the engine's
default or annotation, its range (counts ≥ 1, lengths and weights ≥ 0, finite numbers),
the items of a list, and the fixed choices of a few settings; :class:`ConfigError` is the
error every check raises, naming the field.
"""

from __future__ import annotations

import re
from typing import Any

SAMPLES = ("default", "nanoparticle", "core_shell", "none")
CHOICES = {
    ("run", "device"): None,  # checked by engine.resolve_device
    ("input", "simulate"): SAMPLES,
    ("denoise", "method"): ("bm3d", "nlm", "tv"),
    ("msp", "optimizer"): ("adam", "sgd"),
}


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the field."""


#: settings that count things or iterations: integers of at least 1
POSITIVE_INTEGERS = {
    "iterations",
    "n_iter",
    "final_n_iter",
    "num_slices",
    "num_modes",
    "batch_size",
    "preview_every",
    "n_species",
}
#: settings that are a length, a weight or a step: numbers of at least 0
NON_NEGATIVE = (
    "_weight",
    "_smoothness",
    "_step",
    "slice_thickness",
    "strength",
    "tolerance",
    "threshold",
    "_window",
    "score_radius",
)
_NUMBER_TYPES = ("float", "int")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _matches(value: Any, annotation: str) -> bool | None:
    """Whether ``value`` fits a type annotation such as ``int | None`` or
    ``float | str | None`` (``None``: the annotation names no type checked here)."""
    members = [m.strip() for m in annotation.replace("Optional[", "").rstrip("]").split("|")]
    known = False
    for member in members:
        base = member.split("[", 1)[0].strip()
        if base == "None":
            continue
        if base == "bool":
            known = True
            if isinstance(value, bool):
                return True
        elif base == "int":
            known = True
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif base == "float":
            known = True
            if _is_number(value):
                return True
        elif base == "str":
            known = True
            if isinstance(value, str):
                return True
        elif base in ("tuple", "list", "Sequence"):
            known = True
            if isinstance(value, (list, tuple)):
                return True
        elif base == "dict":
            known = True
            if isinstance(value, dict):
                return True
    return False if known else None


def _want(annotation: str) -> str:
    words = {
        "int": "an integer",
        "float": "a number",
        "str": "a string",
        "bool": "true or false",
        "tuple": "a list",
        "list": "a list",
        "Sequence": "a list",
        "dict": "a table",
    }
    members = [m.strip().split("[", 1)[0] for m in annotation.split("|")]
    return " or ".join(dict.fromkeys(words[m] for m in members if m in words))


def _check_items(field: str, value: Any, default: Any, annotation: str) -> None:
    """The items of a list setting: numbers where the default or annotation has numbers."""
    numbers = (isinstance(default, (list, tuple)) and default and all(_is_number(v) for v in default)) or re.search(
        r"(tuple|list)\[(float|int)", annotation or ""
    )
    if numbers and isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            if not _is_number(item):
                raise ConfigError(f"{field}[{k}]: expected a number, got {_describe(item)}")


def _check_range(field: str, value: Any) -> None:
    key = field.split(".", 1)[1]
    if key in POSITIVE_INTEGERS and isinstance(value, int) and value < 1:
        raise ConfigError(f"{field} = {value}; expected an integer of at least 1")
    if _is_number(value):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{field} = {value}; expected a finite number")
        if (key.endswith(NON_NEGATIVE) or key in NON_NEGATIVE) and value < 0:
            raise ConfigError(f"{field} = {value}; expected a number ≥ 0")


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check_value(field: str, value: Any, default: Any, annotation: str | None = None) -> None:
    choices = CHOICES.get(tuple(field.split(".", 1)))  # type: ignore[arg-type]
    if choices and value not in choices:
        raise ConfigError(f"{field} = {value!r}; allowed values: {', '.join(map(repr, choices))}")
    _check_range(field, value)
    if annotation:
        _check_items(field, value, default, annotation)
    elif isinstance(default, (list, tuple)):
        _check_items(field, value, default, "")
    if annotation and _matches(value, annotation) is not None:
        if not _matches(value, annotation):
            raise ConfigError(f"{field}: expected {_want(annotation)}, got {_describe(value)}")
        if not (isinstance(default, (list, tuple)) and isinstance(value, (list, tuple))):
            return  # the annotation allows it (e.g. a number for defocus = "auto")
    if default is None:
        return
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif isinstance(default, str):
        ok, want = isinstance(value, str) or (field == "msp.tilts" and isinstance(value, list)), "a string"
        if default == "auto":
            ok, want = ok or _is_number(value), "'auto', 'off' or a number"
    elif isinstance(default, (tuple, list)):
        ok, want = isinstance(value, (list, tuple)), f"a list like {list(default)!r}"
        if ok and isinstance(default, tuple) and len(default) and len(value) != len(default):
            ok, want = False, f"a list of {len(default)} values like {list(default)!r}"
    elif isinstance(default, dict):
        ok, want = isinstance(value, dict), "a table"
    else:
        return
    if not ok:
        raise ConfigError(f"{field}: expected {want}, got {_describe(value)}")
