"""Exact, checksummed storage of nested Python values in HDF5 groups.

One group holds one value of type dict, list, tuple or a data object of :mod:`..data`.
Its members are listed, in order, by the group attribute ``members``: a JSON list of
``[hdf5_name, key, tag]`` where ``key`` is the original dict key (str or int) or field name
and ``tag`` says how to rebuild the member exactly:

==================  =========================================================================
tag                 stored as
==================  =========================================================================
``ndarray``         chunked dataset (gzip + shuffle + Fletcher-32 checksum); 0-d and empty
                    arrays as an attribute
``float`` ``int``   attribute (float64 / int64 / bool / complex128)
``bool`` ``complex``
``str``             attribute, fixed-length UTF-8 bytes
``none``            nothing (the entry in ``members`` is enough)
``np:<dtype>``      attribute holding a numpy scalar of that dtype
``list[float]``     one attribute (≤ 4 KiB) or dataset holding a homogeneous list or tuple
``tuple[int]`` ...  of Python numbers
``dict`` ``list``   subgroup, recursively
``tuple``
``obj:<Class>``     subgroup holding a data object of :mod:`..data`, field by field
``lazy``            a dataset read back lazily (4D-STEM intensities; see :mod:`.lazy`)
==================  =========================================================================

Strings are fixed-length (no variable-length strings on the global heap) and every piece of
metadata sits in an object header, so with ``libver >= v18`` all metadata is covered by
HDF5's own checksums and all bulk data by Fletcher-32: a damaged file is detected, not
misread. Each group also carries ``field_units``, a JSON map member key -> unit, and every
dataset a ``units`` attribute of its own.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np

from .errors import PtychoFormatError
from .guards import check_fits
from .h5datasets import (  # noqa: F401  (re-exported)
    COMPRESSION,
    copy_dataset,
    copy_group,
    get_text,
    set_text,
    write_dataset,
)

__all__ = [
    "write_value",
    "read_value",
    "write_dataset",
    "copy_dataset",
    "copy_group",
    "set_text",
    "get_text",
    "COMPRESSION",
]

_SMALL = 4096  # bytes: number lists up to this size are attributes
# attribute names with a meaning of their own; members never take them
RESERVED = {
    "members",
    "field_units",
    "ptycho_type",
    "format_version",
    "creator",
    "uuid",
    "root_object",
    "created",
    "parent_uuid",
    "description",
}


def _safe_name(key: Any, index: int, used: set[str]) -> str:
    name = str(key)
    if not name or "/" in name or name in (".", "..") or name.startswith("_m") or name in used or name in RESERVED:
        name = f"_m{index}"
    used.add(name)
    return name


def _homogeneous(value: list | tuple) -> str | None:
    kinds = {type(v) for v in value}
    if len(kinds) == 1 and kinds <= {float, int, bool, complex}:
        kind = kinds.pop().__name__
        if kind == "int" and not all(-(2**63) <= v < 2**63 for v in value):
            return None
        return kind
    return None


def write_value(
    group: h5py.Group,
    key: Any,
    value: Any,
    index: int,
    used: set[str],
    *,
    units: str | None = None,
    special: Callable[[h5py.Group, str, Any], str | None] | None = None,
) -> list | None:
    """Write one member ``key: value`` into ``group``; return its ``members`` entry.

    ``special(group, name, value)`` may write the value itself and return its tag (used for
    data objects and lazy intensities). Values that cannot be stored exactly (arbitrary
    Python objects) are skipped with a warning and ``None`` is returned.
    """
    name = _safe_name(key, index, used)
    if special is not None:
        tag = special(group, name, value)
        if tag is not None:
            if units is not None:
                _add_unit(group, key, units)
                member = group.get(name)
                if isinstance(member, h5py.Dataset) and "units" not in member.attrs:
                    set_text(member, "units", units)
            return [name, key, tag]
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if value is None:
        tag = "none"
    elif isinstance(value, bool):
        group.attrs[name], tag = np.bool_(value), "bool"
    elif isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            warnings.warn(f"{group.name}/{name}: integer {value} too large for HDF5; skipped")
            used.discard(name)
            return None
        group.attrs[name], tag = np.int64(value), "int"
    elif isinstance(value, float):
        group.attrs[name], tag = np.float64(value), "float"
    elif isinstance(value, complex):
        group.attrs[name], tag = np.complex128(value), "complex"
    elif isinstance(value, str):
        set_text(group, name, value)
        tag = "str"
    elif isinstance(value, np.generic) and value.dtype.kind in "biufc":
        group.attrs[name], tag = value, f"np:{value.dtype.str}"
    elif isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        if value.ndim == 0 or value.size == 0:
            group.attrs[name] = value
        else:
            write_dataset(group, name, value, units=units)
        tag = "ndarray"
    elif isinstance(value, (list, tuple)) and value and _homogeneous(value):
        kind = _homogeneous(value)
        array = np.asarray(
            value, dtype={"float": np.float64, "int": np.int64, "bool": np.bool_, "complex": np.complex128}[kind]
        )
        if array.nbytes <= _SMALL:
            group.attrs[name] = array
        else:
            write_dataset(group, name, array, units=units)
        tag = f"{type(value).__name__}[{kind}]"
    elif isinstance(value, (dict, list, tuple)):
        sub = group.create_group(name, track_order=True)
        if isinstance(value, dict):
            write_members(sub, value.items(), special=special)
        else:  # the items of a list / tuple share its unit (e.g. Volume.halves)
            per_item = {str(i): units for i in range(len(value))} if units else None
            write_members(sub, enumerate(value), units=per_item, special=special)
        tag = type(value).__name__
    else:
        warnings.warn(
            f"{group.name}/{name}: cannot store a {type(value).__name__} exactly; skipped "
            "(store arrays, numbers, strings, lists or dicts of them)"
        )
        used.discard(name)
        return None
    if units is not None and tag != "none":
        _add_unit(group, key, units)
    return [name, key, tag]


def _add_unit(group: h5py.Group, key: Any, unit: str) -> None:
    units = json.loads(get_text(group, "field_units", "{}"))
    units[str(key)] = unit
    set_text(group, "field_units", json.dumps(units, ensure_ascii=False))


def write_members(
    group: h5py.Group,
    items: Any,
    *,
    units: dict[str, str] | None = None,
    special: Callable | None = None,
) -> None:
    """Write ``(key, value)`` pairs into ``group`` and record them in ``members``."""
    used: set[str] = set()
    members = []
    for index, (key, value) in enumerate(items):
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            warnings.warn(f"{group.name}: key {key!r} is not a str or int; skipped")
            continue
        unit = (units or {}).get(str(key))
        entry = write_value(group, key, value, index, used, units=unit, special=special)
        if entry is not None:
            members.append(entry)
    set_text(group, "members", json.dumps(members, ensure_ascii=False))


def read_members(group: h5py.Group, *, special: Callable | None = None) -> list[tuple[Any, Any]]:
    """Read back the ``(key, value)`` pairs written by :func:`write_members`, in order."""
    text = get_text(group, "members")
    if text is None:
        raise KeyError(f"group {group.name} has no 'members' attribute")
    members = json.loads(text)
    if not isinstance(members, list):
        raise TypeError(f"group {group.name}: 'members' is not a list")
    return [(key, read_value(group, name, tag, special=special)) for name, key, tag in members]


def read_value(group: h5py.Group, name: str, tag: str, *, special: Callable | None = None) -> Any:
    """Rebuild one member of ``group`` from its tag (see the module docstring)."""
    if special is not None:
        found, value = special(group, name, tag)
        if found:
            return value
    if tag == "none":
        return None
    if tag in ("float", "int", "bool", "complex"):
        return {"float": float, "int": int, "bool": bool, "complex": complex}[tag](group.attrs[name].item())
    if tag == "str":
        return get_text(group, name)
    if tag.startswith("np:"):
        value = group.attrs[name]
        dtype = np.dtype(tag[3:])
        if np.dtype(value.dtype) != dtype or np.ndim(value) != 0:
            raise TypeError(f"{group.name}/{name}: expected a {dtype} scalar")
        return dtype.type(value)
    if tag == "ndarray":
        if name in group.attrs:
            return np.asarray(group.attrs[name])
        return _read_dataset(group, name)
    if "[" in tag and tag.endswith("]"):
        container, kind = tag[:-1].split("[", 1)
        array = group.attrs[name] if name in group.attrs else _read_dataset(group, name)
        convert = {"float": float, "int": int, "bool": bool, "complex": complex}[kind]
        values = [convert(v) for v in np.asarray(array).ravel().tolist()]
        return {"list": list, "tuple": tuple}[container](values)
    if tag in ("dict", "list", "tuple"):
        obj = group[name]
        if not isinstance(obj, h5py.Group):
            raise TypeError(f"{obj.name}: expected a group")
        pairs = read_members(obj, special=special)
        if tag == "dict":
            return dict(pairs)
        return (list if tag == "list" else tuple)(v for _, v in pairs)
    raise PtychoFormatError(group.file.filename, f"{group.name}/{name}: unknown tag {tag!r}")


def _read_dataset(group: h5py.Group, name: str) -> np.ndarray:
    obj = group[name]
    if not isinstance(obj, h5py.Dataset):
        raise TypeError(f"{obj.name}: expected a dataset")
    check_fits(group.file.filename, obj.name, obj.shape, obj.dtype)
    return obj[()]
