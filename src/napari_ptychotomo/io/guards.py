"""Checks made before a file is read: that it can be read at all, and that what it
declares fits in memory.

A file's header may declare any size: a 24 KiB HDF5 file can hold a compressed (or never
written) dataset of 1200³ float32, 6.4 GiB once read. Readers ask :func:`check_fits` before
reading a member whole, so such a file is refused with its name and the member's size
instead of exhausting the machine. The memory available is the smallest of the kernel's
``MemAvailable``, the process's address-space limit (``RLIMIT_AS``) and the cgroup's
``memory.max`` less ``memory.current`` (containers, batch schedulers).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PtychoFormatError

__all__ = ["require_readable", "available_memory", "check_fits", "format_bytes"]

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
        raise PtychoFormatError(path, "permission denied: this user may not read the file; "
                                "fix its permissions (chmod u+r) or copy it somewhere "
                                "readable") from None
    except IsADirectoryError:
        raise PtychoFormatError(path, "is a folder, not a file") from None
    except OSError as exc:
        if exc.errno == errno.EACCES:
            raise PtychoFormatError(path, "permission denied: this user may not read the "
                                    "file") from None
        raise PtychoFormatError(path, f"cannot open the file: {exc.strerror or exc}") from None
    os.close(fd)
    if path.is_dir():
        raise PtychoFormatError(path, "is a folder, not a file")


def _read_number(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int:
    """Bytes this process can still allocate: the smallest of the known limits."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            limits.append(int(soft))
    except (ImportError, OSError, ValueError):
        pass
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # v2
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",  # v1
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cgroup_max = _read_number(limit)  # None for "max" (unlimited) or no such file
        if cgroup_max is not None and cgroup_max < 1 << 60:
            limits.append(max(0, cgroup_max - (_read_number(usage) or 0)))
            break
    return min(limits) if limits else 1 << 62


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
        raise PtychoFormatError(path, f"{what}: declares an invalid shape {shape!r} or "
                                f"dtype {dtype!r}") from None
    free = available_memory()
    if nbytes > MEMORY_FRACTION * free:
        dims = "×".join(str(int(s)) for s in shape)
        raise PtychoFormatError(
            path, f"{what}: declares {dims} {np.dtype(dtype)} ({format_bytes(nbytes)}), more "
            f"than the {format_bytes(free)} of memory available; the file is damaged or too "
            "big to read whole on this machine (free memory, or open it lazily)")
