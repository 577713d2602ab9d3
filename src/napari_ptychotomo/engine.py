"""The contract every long-running engine follows (DESIGN.md, "Engines: one contract").

An engine is a generator that advances one iteration at a time and yields
:class:`Progress`; its final result is the generator's return value. :func:`run` drains a
generator for scripts. :func:`resolve_device` turns ``"auto"`` into a torch device and
:func:`check_memory` refuses work that would not fit, with a batch size that would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generator

import numpy as np

__all__ = ["Progress", "EngineError", "run", "resolve_device", "available_memory", "check_memory"]


class EngineError(RuntimeError):
    """A reconstruction could not go on (diverged, out of memory, bad state).

    ``partial`` holds the last good result when there is one.
    """

    def __init__(self, message: str, partial: Any = None):
        super().__init__(message)
        self.partial = partial


@dataclass
class Progress:
    """One step of an engine: ``step`` of ``total``, current ``loss``, an optional
    ``preview`` (a small numpy array or dict of arrays for live display), a short
    ``message`` and, on the last step, the ``result``."""

    step: int
    total: int
    loss: float = float("nan")
    preview: Any = None
    message: str = ""
    result: Any = None


def run(
    generator: Generator[Progress, None, Any],
    callback: Callable[[Progress], None] | None = None,
) -> Any:
    """Drain an engine generator and return its result (the generator's return value)."""
    result = None
    while True:
        try:
            progress = next(generator)
        except StopIteration as stop:
            return stop.value if stop.value is not None else result
        if progress.result is not None:
            result = progress.result
        if callback is not None:
            callback(progress)


def resolve_device(device: Any = "auto"):
    """``"auto"`` → CUDA when available, else CPU; anything else as ``torch.device``."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device = {device!r} is not a torch device ('auto', 'cpu', 'cuda:0')") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device = {device!r} but CUDA is not available here; use 'auto' or 'cpu'")
    return dev


def available_memory(device: Any) -> int:
    """Bytes that an engine may still allocate on ``device``."""
    import torch

    dev = resolve_device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024**3


def check_memory(
    what: str,
    fixed_bytes: float,
    bytes_per_item: float,
    batch_size: int,
    device: Any,
    fraction: float = 0.8,
) -> None:
    """Raise ``MemoryError`` with a batch size that fits when the estimate exceeds
    ``fraction`` of the memory available on ``device``."""
    budget = fraction * available_memory(device)
    need = fixed_bytes + bytes_per_item * batch_size
    if need <= budget:
        return
    fits = int(np.floor((budget - fixed_bytes) / max(bytes_per_item, 1)))
    gib = 1024**3
    if fits < 1:
        raise MemoryError(
            f"{what} needs {fixed_bytes / gib:.2f} GiB before any batch, more than the "
            f"{budget / gib:.2f} GiB available on {device}; reduce the object or volume size"
        )
    raise MemoryError(
        f"{what} with batch_size={batch_size} needs about {need / gib:.2f} GiB but only "
        f"{budget / gib:.2f} GiB is available on {device}; use batch_size={fits} or smaller"
    )
