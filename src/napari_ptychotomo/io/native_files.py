"""File-level helpers of the native format: atomic writes, the sidecar name, wrapping
single objects into a Project and back."""

from __future__ import annotations

import contextlib
import os
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py

from ..data import (
    Alignment,
    Atoms,
    DefocusSeries,
    MSPResult,
    Project,
    Resolution,
    ScanData,
    TiltSeries,
    Volume,
)
from .errors import PtychoFormatError

__all__ = [
    "atomic_h5",
    "atomic_file",
    "results_lock",
    "remove_stale_temps",
    "sidecar_path",
    "wrap",
    "unwrap",
    "check",
    "RESULT_FIELDS",
    "NAMED",
]

RESULT_FIELDS = ("msp", "alignment", "volumes", "resolution", "atoms", "provenance")
_LIBVER = ("v110", "v110")  # readable by HDF5 >= 1.10, checksummed metadata
_SUFFIX = ".ptycho.h5"


def sidecar_path(path: Any) -> Path:
    """The results sidecar of project file ``path``: ``<stem>.ptycho-results.h5``."""
    path = Path(path)
    name = path.name
    stem = name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else name
    return path.with_name(f"{stem}.ptycho-results.h5")


@contextlib.contextmanager
def results_lock(path: Any) -> Iterator[None]:
    """Hold the lock of project ``path``'s results while reading and rewriting its sidecar.

    Adding a result reads the sidecar, copies it with the new result and renames the copy
    into place; two processes doing so at once would each drop the other's result. The
    lock (``flock`` on the hidden file ``.<sidecar name>.lock`` next to the project, which
    stays) makes them take turns; where ``flock`` is missing (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    side = sidecar_path(path)
    fd = os.open(side.with_name(f".{side.name}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def atomic_h5(path: Path) -> Iterator[h5py.File]:
    """Write an HDF5 file to a temporary name in the same folder, then rename it in place."""
    with atomic_file(path) as tmp:
        with h5py.File(tmp, "w", libver=_LIBVER, track_order=True, locking=False) as fh:
            yield fh
            fh.flush()


@contextlib.contextmanager
def atomic_file(path: Any) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it to ``path``.

    The temporary file is named ``.<name>.<pid>.<random>.tmp`` in the same folder (so the
    rename is atomic on one file system); on any error it is removed and ``path`` is left
    as it was. A process killed mid-write leaves the temporary file behind, never a
    damaged ``path``.
    """
    path = Path(path)
    if not path.parent.is_dir():
        # else the writer fails naming the temporary file, which the caller never chose
        hint = " (a leading ~ is not expanded; give the full path)" if str(path).startswith("~") else ""
        raise PtychoFormatError(path, f"cannot write: the folder {str(path.parent)!r} does not exist{hint}")
    remove_stale_temps(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuidlib.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # make the rename durable (POSIX)
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (owned by someone else), or cannot tell: keep its file
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files that killed saves of ``path`` left behind.

    Only files named as :func:`atomic_file` names them (``.<name>.<pid>.<hex>.tmp``) whose
    writer process no longer exists are removed (with a warning naming each), so a save
    running in another process is never disturbed. Returns the files removed.
    """
    import re
    import warnings

    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}\.tmp")
    removed = []
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return removed
    for candidate in candidates:
        match = pattern.fullmatch(candidate.name)
        if match is None or int(match.group(1)) == os.getpid() or _process_alive(int(match.group(1))):
            continue
        try:
            size = candidate.stat().st_size
            candidate.unlink()
        except OSError:
            continue
        removed.append(candidate)
        warnings.warn(
            f"{candidate}: removed the temporary file ({size} bytes) of an earlier "
            f"save of {path.name} that did not finish (process {match.group(1)} is "
            "gone)",
            UserWarning,
            stacklevel=4,
        )
    return removed


def wrap(obj: Any, name: Any) -> tuple[Project, str]:
    """Put a single data object into a Project; return it and the object's kind."""
    kind = type(obj).__name__
    if isinstance(obj, Project):
        return obj, kind
    if isinstance(obj, TiltSeries):
        return Project(series=obj), kind
    if isinstance(obj, (ScanData, DefocusSeries)):
        return Project(series=TiltSeries(scans=[obj], angles_deg=[float(obj.tilt_deg)])), kind
    if isinstance(obj, MSPResult):
        return Project(msp={0 if name is None else int(name): obj}), kind
    if isinstance(obj, Alignment):
        return Project(alignment=obj), kind
    for cls, field, default in NAMED:
        if isinstance(obj, cls):
            return Project(**{field: {default if name is None else str(name): obj}}), kind
    raise TypeError(f"cannot save a {kind}; expected a data object of napari_ptychotomo.data")


NAMED = ((Volume, "volumes", "volume"), (Resolution, "resolution", "resolution"), (Atoms, "atoms", "atoms"))


def unwrap(project: Project, kind: str) -> Any:
    if kind == "Project":
        return project
    if kind == "TiltSeries":
        return project.series
    if kind in ("ScanData", "DefocusSeries"):
        return project.series.scans[0]
    if kind == "MSPResult":
        return next(iter(project.msp.values()))
    if kind == "Alignment":
        return project.alignment
    for cls, field, _ in NAMED:
        if kind == cls.__name__:
            return next(iter(getattr(project, field).values()))
    raise KeyError(f"unknown root_object {kind!r}")


def check(obj: Any, path: Any) -> None:
    try:
        obj.validate()
    except ValueError as exc:
        raise PtychoFormatError(path, f"cannot save an invalid {type(obj).__name__}: {exc}") from None
