"""How many CPU threads torch uses.

torch starts one intra-op thread per physical core of the machine. In a container, a
SLURM job or under ``taskset`` the process may use far fewer: the CPUs it may run on
(``sched_getaffinity``) and the CPU time its cgroup may spend (``cpu.max`` / CFS quota).
On a shared machine other processes keep some of those CPUs busy too. More threads than
there are free CPUs only wait for each other at every operation's barrier: with 2 threads
on 2 cores at a load average of 6-8 the demo's MSP step took 128 s, with 1 thread at a
load of 5-6 it took 8 s. :func:`limit_torch_threads` lowers torch's count to the CPUs
that are free when the first engine starts.

The simulator's operations are small (a batch of 64×64 waves is a few MB), so torch's
intra-op threads gain little on them, while every operation ends in a barrier where the
threads wait for each other. On a shared machine one of them is often descheduled and the
others spin: on 2 busy cores the issue's benchmark took 73 s with 2 threads and 9 s with 1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

__all__ = ["available_cpus", "cpu_threads", "free_cpus", "limit_torch_threads"]

_CGROUP = Path("/sys/fs/cgroup")


def _cgroup_cpu_limit(root: Path = _CGROUP) -> float | None:
    """CPUs' worth of time the cgroup may use (cgroup v2 ``cpu.max``, else v1 CFS quota);
    ``None`` when unlimited or unknown."""
    candidates = [
        (root / "cpu.max", None),
        (root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"),
        (root / "cpu,cpuacct" / "cpu.cfs_quota_us", root / "cpu,cpuacct" / "cpu.cfs_period_us"),
    ]
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


def free_cpus(usable: int | None = None) -> int:
    """Of ``usable`` CPUs (default :func:`available_cpus`), those that other work leaves
    free: the machine's 1-minute load average taken as the busy fraction of all its CPUs,
    at least 1."""
    usable = available_cpus() if usable is None else int(usable)
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this system
        return max(1, usable)
    busy = min(1.0, load / max(os.cpu_count() or 1, 1))
    return max(1, min(usable, round(usable * (1.0 - busy))))


_limited = False


def limit_torch_threads(once: bool = True) -> int:
    """Lower torch's intra-op thread count to :func:`free_cpus` (never raise it, so an
    explicit ``torch.set_num_threads`` or ``OMP_NUM_THREADS`` below that stays); returns
    the count in use. With ``once`` only the first call in a process decides, before the
    process's own work counts in the load, and a later ``torch.set_num_threads`` stays."""
    global _limited
    if once and _limited:
        return torch.get_num_threads()
    _limited = True
    usable = free_cpus()
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
