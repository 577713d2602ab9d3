"""MSP of several tilts, one after another.

The one loop over tilts that the napari widget, the pipeline and sequential tomography
share: each caller builds its ``(tilt index, scan, MSPParams)`` jobs (all checked before
the first runs) and handles a finished tilt as it needs (a layer, a checkpoint, a list).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from typing import Any

from ..data import MSPResult, ScanData
from ..engine import Progress
from .msp import msp_steps
from .params import MSPParams

__all__ = ["msp_series_steps"]


def msp_series_steps(
    jobs: Iterable[tuple[int, ScanData, MSPParams]],
    *,
    device: Any = "auto",
    seed: int = 0,
) -> Generator[Progress, None, dict[int, MSPResult]]:
    """Run :func:`~.msp.msp_steps` for each ``(k, scan, params)`` in order, tilt k with
    seed ``seed + k`` (so a tilt's result does not depend on which others run with it).

    Yields every iteration's :class:`Progress` counted over the whole series (each tilt
    counts its ``params.iterations``, the most it may run), with ``preview["tilt_index"]``
    and the message prefixed ``"tilt k: "``; after each tilt one more whose preview holds
    ``tilt_index``, ``result`` (its :class:`MSPResult`) and ``seconds`` (its wall time).
    Returns ``{k: MSPResult}``.
    """
    jobs = list(jobs)
    total = sum(params.iterations for _, _, params in jobs)
    done = 0
    results: dict[int, MSPResult] = {}
    for k, scan, params in jobs:
        started = time.perf_counter()
        steps = msp_steps(scan, params, device=device, seed=seed + k)
        result = yield from _counted_in_series(steps, k, done, total)
        results[k] = result
        done += params.iterations
        yield Progress(
            step=done,
            total=total,
            message=f"tilt {k} done",
            preview={"tilt_index": k, "result": result, "seconds": time.perf_counter() - started},
        )
    return results


def _counted_in_series(steps: Generator, k: int, done: int, total: int) -> Generator:
    """One tilt's progress, its steps offset by the iterations of the tilts before it."""
    while True:
        try:
            progress = next(steps)
        except StopIteration as stop:
            return stop.value
        yield Progress(
            step=done + progress.step,
            total=total,
            loss=progress.loss,
            preview=dict(progress.preview or {}, tilt_index=k),
            message=f"tilt {k}: {progress.message}",
        )
