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
misread. Each group also carries ``units``, a JSON map member key -> unit, and every dataset
a ``units`` attribute of its own.
"""

from __future__ import annotations

import json
import warnings
from typing import Any, Callable

import h5py
import numpy as np

from .errors import PtychoFormatError

__all__ = ["write_value", "read_value", "write_dataset", "copy_dataset", "copy_group", "set_text", "get_text", "COMPRESSION"]

COMPRESSION: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
_SMALL = 4096  # bytes: number lists up to this size are attributes
_COPY_BATCH = 64 << 20  # bytes per slab when copying array-likes into a dataset
# attribute names with a meaning of their own; members never take them
RESERVED = {"members", "units", "ptycho_type", "format_version", "creator", "uuid",
            "root_object", "created", "parent_uuid", "description"}


def set_text(obj: h5py.HLObject, name: str, text: str) -> None:
    """Store ``text`` as a fixed-length UTF-8 attribute (checksummed object header)."""
    obj.attrs[name] = np.bytes_(text.encode("utf-8"))


def get_text(obj: h5py.HLObject, name: str, default: str | None = None) -> str | None:
    value = obj.attrs.get(name, None)
    if value is None:
        return default
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError(f"attribute {name!r} is {type(value).__name__}, expected text")


def write_dataset(
    group: h5py.Group,
    name: str,
    array: Any,
    *,
    units: str | None = None,
    chunks: Any = True,
    compression: dict[str, Any] | None = None,
) -> h5py.Dataset:
    """Create a chunked, compressed, checksummed dataset and fill it slab by slab.

    ``array`` may be a numpy array or any array-like with ``shape``, ``dtype`` and slicing
    (an h5py dataset, a memmap); it is copied in slabs of about 64 MiB along axis 0, so RAM
    use stays bounded whatever its size. An h5py source with the same chunking is copied
    chunk by chunk without decompression.
    """
    opts = COMPRESSION if compression is None else compression
    shape = tuple(int(s) for s in array.shape)
    dtype = np.dtype(array.dtype)
    if isinstance(chunks, tuple):
        chunks = tuple(min(c, s) for c, s in zip(chunks, shape))
    if isinstance(array, h5py.Dataset) and _same_layout(array, chunks, opts):
        dset = copy_dataset(array, group, name, with_attrs=False)
    else:
        dset = group.create_dataset(
            name, shape=shape, dtype=dtype, chunks=chunks, fletcher32=True, **opts
        )
        if isinstance(array, np.ndarray) and array.nbytes <= _COPY_BATCH:
            dset[()] = array
        else:
            row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)
            step = max(1, _COPY_BATCH // row)
            if dset.chunks:
                step = max(dset.chunks[0], step // dset.chunks[0] * dset.chunks[0])
            for start in range(0, shape[0], step):
                stop = min(shape[0], start + step)
                dset[start:stop] = np.asarray(array[start:stop], dtype=dtype)
    if units is not None:
        set_text(dset, "units", units)
    return dset


def copy_dataset(source: h5py.Dataset, group: h5py.Group, name: str, *,
                 with_attrs: bool = True) -> h5py.Dataset:
    """Copy a dataset chunk by chunk, compressed bytes as they are (no recompression).

    (``H5Ocopy`` would do the same, but in HDF5 2.0 / h5py 3.16 it corrupts the heap when
    the source's chunks were read before; direct chunk I/O is safe and as fast.)
    """
    if source.chunks is None:
        dset = group.create_dataset(name, data=source[()])
    else:
        if source.file.mode == "r+":
            source.file.flush()  # raw chunk reads see only what is on disk
        dset = group.create_dataset(
            name, shape=source.shape, dtype=source.dtype, chunks=source.chunks,
            compression=source.compression, compression_opts=source.compression_opts,
            shuffle=source.shuffle, fletcher32=source.fletcher32)
        for index in range(source.id.get_num_chunks()):
            offset = source.id.get_chunk_info(index).chunk_offset
            mask, data = source.id.read_direct_chunk(offset)
            dset.id.write_direct_chunk(offset, data, mask)
    if with_attrs:
        for key, value in source.attrs.items():
            dset.attrs[key] = value
    return dset


def copy_group(source: h5py.Group, group: h5py.Group, name: str) -> h5py.Group:
    """Copy a group recursively (attributes, subgroups, datasets chunk by chunk)."""
    out = group.create_group(name, track_order=True)
    for key, value in source.attrs.items():
        out.attrs[key] = value
    for key in source:
        member = source[key]
        if isinstance(member, h5py.Group):
            copy_group(member, out, key)
        elif isinstance(member, h5py.Dataset):
            copy_dataset(member, out, key)
    return out


def _same_layout(source: h5py.Dataset, chunks: Any, opts: dict[str, Any]) -> bool:
    if not isinstance(chunks, tuple) or source.chunks != chunks:
        return False
    return (
        source.fletcher32
        and source.compression == opts.get("compression")
        and source.compression_opts == opts.get("compression_opts")
        and bool(source.shuffle) == bool(opts.get("shuffle"))
    )


def _safe_name(key: Any, index: int, used: set[str]) -> str:
    name = str(key)
    if not name or "/" in name or name in (".", "..") or name.startswith("_m") or name in used \
            or name in RESERVED:
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
        array = np.asarray(value, dtype={"float": np.float64, "int": np.int64,
                                         "bool": np.bool_, "complex": np.complex128}[kind])
        if array.nbytes <= _SMALL:
            group.attrs[name] = array
        else:
            write_dataset(group, name, array, units=units)
        tag = f"{type(value).__name__}[{kind}]"
    elif isinstance(value, (dict, list, tuple)):
        sub = group.create_group(name, track_order=True)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        write_members(sub, items, special=special)
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
    units = json.loads(get_text(group, "units", "{}"))
    units[str(key)] = unit
    set_text(group, "units", json.dumps(units, ensure_ascii=False))


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
        return {"float": float, "int": int, "bool": bool, "complex": complex}[tag](
            group.attrs[name].item()
        )
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
    return obj[()]
