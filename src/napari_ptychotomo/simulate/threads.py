"""How many CPU threads torch uses while the simulator runs.

The simulator's operations are small (a batch of 64×64 waves is a few MB), so torch's
intra-op threads gain little on them, while every operation ends in a barrier where the
threads wait for each other. On a shared machine one of them is often descheduled and the
others spin: on 2 busy cores the issue's benchmark took 73 s with 2 threads and 9 s with 1.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

__all__ = ["cpu_threads"]


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
