"""The contract every long-running engine follows (docs/conventions.md, "Engines").

An engine is a generator that advances one iteration at a time and yields
:class:`Progress`; its final result is the generator's return value. :func:`run` drains a
generator for scripts, with a progress bar unless told not to. :func:`resolve_device`
turns ``"auto"`` into a torch device (and, before any engine runs, keeps torch's CPU
threads within the CPUs the process may use and loads triton safely, see ``_triton``) and :func:`check_memory` refuses work that would not fit, with a batch
size that would.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Progress", "EngineError", "run", "show_progress", "resolve_device", "available_memory", "check_memory"]


@dataclass
class LearningRate:
    """Step size and first iteration (0-based) of one learned quantity, in every engine.

    ``step`` is in the quantity's unit per update: V·Å for an MSP object slice, V for a
    volume voxel, relative amplitude for a probe, Å for positions and shifts (px of the
    downsampled projections for the shifts of an alignment stage), mrad for a specimen
    tilt or tilt map, Å for a slice thickness, degrees for Euler angles. Every parameter
    class holds them as ``rates`` (name → LearningRate) and says whether a quantity is
    learned at all with a switch ``learn_<name>`` (docs/conventions.md, "Engines").
    """

    step: float
    start: int = 0


class EngineError(RuntimeError):
    """A reconstruction could not go on (diverged, out of memory, bad state).

    ``partial`` holds the last good result when there is one, as the engine's own result
    type. When an engine stops is decided in one place: :mod:`.engine_guards`.
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


def show_progress(enabled: bool | None = True) -> None:
    """Turn the progress bar of :func:`run` on (``True``) or off (``False``) for this
    process; ``None`` restores the default (see :func:`run`)."""
    global _progress_enabled
    _progress_enabled = enabled


_progress_enabled: bool | None = None


def _progress_wanted(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    if _progress_enabled is not None:
        return _progress_enabled
    if os.environ.get("PTYCHOTOMO_PROGRESS", "").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:  # a terminal or a notebook; not a log file, a pipe or a test's captured output
        return sys.stderr.isatty() or "ipykernel" in sys.modules
    except (AttributeError, ValueError):
        return False


def run(
    generator: Generator[Progress, None, Any],
    callback: Callable[[Progress], None] | None = None,
    progress: bool | None = None,
) -> Any:
    """Drain an engine generator and return its result (the generator's return value).

    Without a ``callback`` a progress bar (tqdm, on stderr) shows the steps and the loss
    when stderr is a terminal or the code runs in a notebook. ``progress=False`` (or
    :func:`show_progress` ``(False)``, or the environment variable
    ``PTYCHOTOMO_PROGRESS=0``) turns it off; ``progress=True`` shows it anywhere. With a
    ``callback`` the caller shows progress.
    """
    bar = None
    show = callback is None and _progress_wanted(progress)
    label = getattr(generator, "__name__", "engine").removesuffix("_steps")
    result = None
    try:
        while True:
            try:
                step = next(generator)
            except StopIteration as stop:
                return stop.value if stop.value is not None else result
            if step.result is not None:
                result = step.result
            if callback is not None:
                callback(step)
            if show and bar is None:  # made at the first step, which knows the total
                from tqdm import tqdm

                bar = tqdm(desc=label, total=step.total, file=sys.stderr, leave=False, dynamic_ncols=True)
            if bar is not None:
                if bar.total != step.total:
                    bar.reset(total=step.total)
                bar.n = step.step
                if step.loss == step.loss:  # not NaN
                    bar.set_postfix(loss=f"{step.loss:.4g}", refresh=False)
                bar.refresh()
    finally:
        if bar is not None:
            bar.close()


def resolve_device(device: Any = "auto"):
    """``"auto"`` → CUDA when available, else CPU; anything else as ``torch.device``."""
    import torch

    from ._triton import load_triton_safely
    from .threads import limit_torch_threads

    limit_torch_threads()
    load_triton_safely()  # before any optimiser imports it next to an OpenGL context
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
    """Bytes that an engine may still allocate on ``device``: the free memory of a CUDA
    device, or on the host :func:`napari_ptychotomo.io.guards.available_memory`."""
    import torch

    dev = resolve_device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free)
    from .io.guards import available_memory as host_memory

    return host_memory()  # MemAvailable, RLIMIT_AS and the cgroup limit, the smallest


def _binding_limit(device: Any) -> str:
    """Which host limit :func:`available_memory` met, as a note for messages."""
    if resolve_device(device).type == "cuda":
        return ""
    from .io.guards import memory_limit

    return f" (the smallest limit: {memory_limit()[1]})"


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
            f"{budget / gib:.2f} GiB available on {device}{_binding_limit(device)}; reduce the "
            "object or volume size"
        )
    raise MemoryError(
        f"{what} with batch_size={batch_size} needs about {need / gib:.2f} GiB but only "
        f"{budget / gib:.2f} GiB is available on {device}{_binding_limit(device)}; use "
        f"batch_size={fits} or smaller"
    )
