"""How many CPU threads torch uses.

torch starts one intra-op thread per physical core of the machine. In a container, a
SLURM job or under ``taskset`` the process may use far fewer: the CPUs it may run on
(``sched_getaffinity``) and the CPU time its cgroup may spend (``cpu.max`` / CFS quota).
More threads than that only wait for each other at every operation's barrier, so
:func:`limit_torch_threads` lowers torch's count to what the process can use.

The simulator's operations are small (a batch of 64×64 waves is a few MB), so torch's
intra-op threads gain little on them, while every operation ends in a barrier where the
threads wait for each other. On a shared machine one of them is often descheduled and the
others spin: on 2 busy cores the issue's benchmark took 73 s with 2 threads and 9 s with 1.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

__all__ = ["available_cpus", "cpu_threads", "limit_torch_threads"]

_CGROUP = Path("/sys/fs/cgroup")


def _cgroup_cpu_limit(root: Path = _CGROUP) -> float | None:
    """CPUs' worth of time the cgroup may use (cgroup v2 ``cpu.max``, else v1 CFS quota);
    ``None`` when unlimited or unknown."""
    candidates = [(root / "cpu.max", None),
                  (root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"),
                  (root / "cpu,cpuacct" / "cpu.cfs_quota_us", root / "cpu,cpuacct" / "cpu.cfs_period_us")]
    for quota_file, period_file in candidates:
        try:
            if period_file is None:
                quota, period = quota_file.read_text().split()[:2]
            else:
                quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
        except (OSError, ValueError):
            continue
        if quota in ("max", "-1"):
            return None
        try:
            return max(float(quota) / float(period), 0.0) or None
        except (ValueError, ZeroDivisionError):
            return None
    return None


def available_cpus() -> int:
    """CPUs this process can keep busy: the CPUs it may run on, capped by its cgroup's
    CPU quota (rounded up), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_limit()
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def limit_torch_threads() -> int:
    """Lower torch's intra-op thread count to :func:`available_cpus` (never raise it, so an
    explicit ``torch.set_num_threads`` or ``OMP_NUM_THREADS`` below that stays); returns
    the count in use."""
    usable = available_cpus()
    if torch.get_num_threads() > usable:
        torch.set_num_threads(usable)
    return torch.get_num_threads()


@contextmanager
def cpu_threads(num_threads: int | None, device: torch.device) -> Iterator[None]:
    """Run the body with ``num_threads`` torch intra-op threads when ``device`` is a CPU.

    ``None`` (or a GPU device) leaves torch's setting alone. The previous setting is
    restored on exit. torch's thread count is process-wide: torch work started meanwhile
    from other Python threads runs with the same count.
    """
    if num_threads is None or torch.device(device).type != "cpu":
        yield
        return
    if int(num_threads) < 1:
        raise ValueError(f"num_threads = {num_threads!r}; expected a positive count or None")
    before = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
