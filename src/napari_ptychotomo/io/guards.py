"""Checks made before a file is read: that it can be read at all, and that what it
declares fits in memory.

A file's header may declare any size: a 24 KiB HDF5 file can hold a compressed (or never
written) dataset of 1200³ float32, 6.4 GiB once read. Readers ask :func:`check_fits` before
reading a member whole, so such a file is refused with its name and the member's size
instead of exhausting the machine. The memory available is the smallest of the kernel's
``MemAvailable``, the process's address-space limit (``RLIMIT_AS``) less what it maps
already, and the cgroup's limit less its usage (containers, batch schedulers); the
engines' memory checks use the same function.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PtychoFormatError

__all__ = ["require_readable", "available_memory", "memory_limit", "check_fits", "format_bytes"]

#: a member may take at most this fraction of the memory available when read whole
MEMORY_FRACTION = 0.8


def require_readable(path: Any) -> None:
    """Raise :class:`PtychoFormatError` when ``path`` is missing, a folder, or not readable
    by this process (a plain "permission denied", not a misleading "corrupt file")."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise PtychoFormatError(path, "file not found") from None
    except PermissionError:
        raise PtychoFormatError(
            path,
            "permission denied: this user may not read the file; "
            "fix its permissions (chmod u+r) or copy it somewhere "
            "readable",
        ) from None
    except IsADirectoryError:
        raise PtychoFormatError(path, "is a folder, not a file") from None
    except OSError as exc:
        if exc.errno == errno.EACCES:
            raise PtychoFormatError(path, "permission denied: this user may not read the file") from None
        raise PtychoFormatError(path, f"cannot open the file: {exc.strerror or exc}") from None
    os.close(fd)
    if path.is_dir():
        raise PtychoFormatError(path, "is a folder, not a file")


#: where the cgroup file systems are mounted, and this process's own entry (tests point
#: them at a fake tree)
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF = Path("/proc/self")
_NO_LIMIT = 1 << 62


def _read_number(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _proc_field(path: Path, key: str) -> int | None:
    """A ``key: <n> kB`` field of a /proc file, in bytes."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left() -> int | None:
    """``RLIMIT_AS`` less the address space this process already maps (``ulimit -v``)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    used = _proc_field(PROC_SELF / "status", "VmSize") or 0
    return max(0, int(soft) - used)


def _own_cgroups() -> list[Path]:
    """Folders holding this process's memory cgroup files: its own cgroup (v2 ``0::``
    line, v1 ``memory`` controller) and the mount's root (what a container sees)."""
    folders = []
    try:
        lines = (PROC_SELF / "cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, where = (line.split(":", 2) + ["", ""])[:3]
        where = where.strip().lstrip("/")
        if controllers == "":
            folders.append(CGROUP_ROOT / where)
        elif "memory" in controllers.split(","):
            folders.append(CGROUP_ROOT / "memory" / where)
    return list(dict.fromkeys([*folders, CGROUP_ROOT, CGROUP_ROOT / "memory"]))


def _reclaimable(folder: Path) -> int:
    """Page cache the kernel drops before it kills for memory (``inactive_file`` of
    ``memory.stat``; v1 ``total_inactive_file``): counted in the usage, yet available."""
    try:
        lines = (folder / "memory.stat").read_text().splitlines()
    except OSError:
        return 0
    stats = dict(line.split()[:2] for line in lines if len(line.split()) >= 2)
    value = stats.get("total_inactive_file", stats.get("inactive_file", "0"))
    return int(value) if value.isdigit() else 0


def _cgroup_left() -> int | None:
    """The tightest cgroup limit less its usage (without reclaimable page cache): v2
    ``memory.max`` − ``memory.current``, v1 ``memory.limit_in_bytes`` −
    ``memory.usage_in_bytes``."""
    left = []
    for folder in _own_cgroups():
        for limit, usage in (("memory.max", "memory.current"), ("memory.limit_in_bytes", "memory.usage_in_bytes")):
            cap = _read_number(folder / limit)  # None for "max" (unlimited) or no such file
            if cap is not None and cap < 1 << 60:  # v1 writes "unlimited" as ~2^63
                used = max(0, (_read_number(folder / usage) or 0) - _reclaimable(folder))
                left.append(max(0, cap - used))
    return min(left) if left else None


def memory_limit() -> tuple[int, str]:
    """(bytes, which limit) of the memory this process can still allocate on the host: the
    smallest of the kernel's ``MemAvailable``, ``RLIMIT_AS`` less the address space in use,
    and the cgroup's limit less its usage (``1 << 62`` and ``"no known limit"`` when none of
    them is known)."""
    limits = {
        "free memory (MemAvailable)": _proc_field(Path("/proc/meminfo"), "MemAvailable"),
        "the address-space limit (RLIMIT_AS, ulimit -v) less what this process maps": _address_space_left(),
        "the cgroup's memory limit less its usage (container or batch job)": _cgroup_left(),
    }
    known = {what: int(n) for what, n in limits.items() if n is not None}
    if not known:
        return _NO_LIMIT, "no known limit"
    what = min(known, key=known.get)
    return known[what], what


def available_memory() -> int:
    """Bytes this process can still allocate on the host (see :func:`memory_limit`)."""
    return memory_limit()[0]


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_fits(path: Any, what: str, shape: Any, dtype: Any) -> None:
    """Refuse to read ``what`` (a member of ``path`` of ``shape`` and ``dtype``) whole when
    it would not fit in the memory available."""
    try:
        count = int(np.prod([int(s) for s in shape], dtype=object))
        nbytes = count * np.dtype(dtype).itemsize
    except (TypeError, ValueError):
        raise PtychoFormatError(path, f"{what}: declares an invalid shape {shape!r} or dtype {dtype!r}") from None
    free = available_memory()
    if nbytes > MEMORY_FRACTION * free:
        dims = "×".join(str(int(s)) for s in shape)
        raise PtychoFormatError(
            path,
            f"{what}: declares {dims} {np.dtype(dtype)} ({format_bytes(nbytes)}), more "
            f"than the {format_bytes(free)} of memory available; the file is damaged or too "
            "big to read whole on this machine (free memory, or open it lazily)",
        )
