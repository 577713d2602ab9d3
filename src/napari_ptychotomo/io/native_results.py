"""Results of a project in a sidecar file, replaced atomically (see :mod:`.native`)."""

from __future__ import annotations

import datetime
import json
import warnings
from pathlib import Path
from typing import Any

import h5py

from ..data import Alignment, MSPResult, Project
from .errors import PtychoFormatError
from .h5tree import copy_group, get_text, set_text, write_value
from .lazy import open_h5
from .native_files import NAMED, RESULT_FIELDS, atomic_h5, check, results_lock, sidecar_path
from .native_schema import FORMAT_VERSION, Codec

__all__ = ["append_result", "read_sidecar", "write_results"]


def _result_slot(obj: Any, name: Any) -> tuple[str, Any]:
    if isinstance(obj, MSPResult):
        if name is None:
            raise TypeError("give name=<tilt index> (an int) for an MSPResult")
        return "msp", int(name)
    if isinstance(obj, Alignment):
        return "alignment", None
    for cls, field, default in NAMED:
        if isinstance(obj, cls):
            return field, default if name is None else str(name)
    raise TypeError(f"{type(obj).__name__} is not a result; expected MSPResult, Alignment, Volume, Resolution or Atoms")


def append_result(path: Any, obj: Any, *, name: Any = None, compression: dict | None = None) -> Path:
    """Add (or replace) one result in an existing project without touching its raw data.

    The results sidecar (see the module docstring) is rewritten atomically: earlier
    results are copied chunk by chunk, ``obj`` is added under ``name`` (tilt index for an
    MSPResult; name for a Volume, Resolution or Atoms; none for the Alignment). A crash at
    any moment leaves the project file untouched and the previous sidecar intact. Writers
    in several processes take turns (:func:`~.native_files.results_lock`), so none loses
    another's result.
    """
    path = Path(path)
    field, key = _result_slot(obj, name)
    check(obj, path)
    if not path.exists():
        raise PtychoFormatError(path, "no project file to add a result to; save the project first")
    with results_lock(path):
        return _append(path, field, key, obj, Codec(compression))


def _append(path: Path, field: str, key: Any, obj: Any, codec: Codec) -> Path:
    with open_h5(path) as fh:
        file_id = get_text(fh, "uuid")
        if get_text(fh, "format_version") is None or file_id is None:
            raise PtychoFormatError(path, "not a napari-ptychotomo project file")
        side = sidecar_path(path)
        source = fh
        try:
            sfh = open_h5(side) if side.exists() else None
        except PtychoFormatError as exc:
            raise PtychoFormatError(
                side,
                f"{exc.reason}; cannot add a result next to a damaged "
                "results sidecar: move it away (or delete it) first",
            ) from None
        try:
            if sfh is not None and get_text(sfh, "parent_uuid") == file_id:
                source = sfh
            with atomic_h5(side) as out:
                _start_sidecar(out, file_id)
                entries = json.loads(get_text(source, "members"))
                members = []
                for field_name in RESULT_FIELDS:
                    entry = next((e for e in entries if e[1] == field_name), None)
                    if entry is not None and entry[2] != "none":
                        copy_group(source[entry[0]], out, field_name)
                        members.append([field_name, field_name, entry[2]])
                    else:
                        empty = {} if field_name != "alignment" else None
                        members.append(write_value(out, field_name, empty, 0, set()))
                    if field_name == field:
                        members[-1] = _put(out, members[-1], key, obj, codec)
                set_text(out, "members", json.dumps(members, ensure_ascii=False))
        finally:
            if sfh is not None:
                sfh.close()
    return path


def _start_sidecar(out: h5py.File, file_id: str) -> None:
    set_text(out, "format_version", FORMAT_VERSION)
    set_text(out, "ptycho_type", "ProjectResults")
    set_text(out, "parent_uuid", file_id)
    set_text(out, "created", datetime.datetime.now(datetime.UTC).isoformat())


def _put(out: h5py.File, entry: list, key: Any, obj: Any, codec: Codec) -> list:
    """Put ``obj`` into result field ``entry`` (a dict group, or the alignment slot)."""
    field = entry[1]
    if key is None:  # the alignment: replace the whole member
        if field in out:
            del out[field]
        return write_value(out, field, obj, 0, set(), special=codec._special_write)
    group = out[field]
    members = json.loads(get_text(group, "members"))
    for old in [m for m in members if m[1] == key]:
        if old[0] in group:
            del group[old[0]]
        if old[0] in group.attrs:
            del group.attrs[old[0]]
    members = [m for m in members if m[1] != key]
    used = {m[0] for m in members}
    index = len(members)
    while f"_m{index}" in used:
        index += 1
    members.append(write_value(group, key, obj, index, used, special=codec._special_write))
    set_text(group, "members", json.dumps(members, ensure_ascii=False))
    return entry


def write_results(path: Path, project: Project, compression: dict | None) -> Path:
    """Rewrite the sidecar with all results of ``project`` (raw data unchanged)."""
    codec = Codec(compression)
    with open_h5(path) as fh:
        file_id = get_text(fh, "uuid")
    with results_lock(path), atomic_h5(sidecar_path(path)) as out:
        _start_sidecar(out, file_id)
        codec.write_members(out, [(f, getattr(project, f)) for f in RESULT_FIELDS])
    return path


def read_sidecar(path: Any, file_id: str | None, codec: Codec) -> dict[str, Any] | None:
    """The results of the sidecar of project ``path``, or ``None``.

    ``None`` (with a warning naming the sidecar) when it belongs to an older project file
    of the same name or is damaged: the raw data in the project file stay readable, and
    the results stored in the project file itself are used.
    """
    side = sidecar_path(path)
    if not side.exists():
        return None
    try:
        sfh = open_h5(side)
    except PtychoFormatError as exc:
        _warn_damaged(side, exc.reason)
        return None
    with sfh:
        try:
            parent = get_text(sfh, "parent_uuid")
        except Exception as exc:  # a damaged attribute
            _warn_damaged(side, f"{type(exc).__name__}: {exc}")
            return None
        if parent != file_id:
            warnings.warn(f"{side}: results sidecar belongs to an older {Path(path).name}; ignored")
            return None
        try:
            return {k: v for k, v in codec.read_members(sfh) if k in RESULT_FIELDS}
        except Exception as exc:
            reason = exc.reason if isinstance(exc, PtychoFormatError) else f"{type(exc).__name__}: {exc}"
            _warn_damaged(side, reason)
            return None


def _warn_damaged(side: Path, reason: str) -> None:
    warnings.warn(
        f"{side}: results sidecar is damaged ({reason}); opening the project "
        "without the results added to it. Move the sidecar away (or delete it) to "
        "silence this and to add results again",
        UserWarning,
        stacklevel=4,
    )
