"""What produced a result: parameters, package versions, device, time taken."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["provenance", "timed", "plain"]


def plain(value: Any) -> Any:
    """Parameters as plain, HDF5-storable values (dataclasses → dicts, tuples → lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None:
        return "none"
    if isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def provenance(step: str, parameters: Any, device: Any, seconds: float, seed: int) -> dict[str, Any]:
    """Provenance record of one step's result."""
    import numpy
    import torch

    from .._version import __version__

    return {
        "step": step,
        "parameters": plain(parameters),
        "device": str(device),
        "seconds": float(seconds),
        "seed": int(seed),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": {
            "napari_ptychotomo": __version__,
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "python": platform.python_version(),
        },
        "host": platform.node(),
    }


@contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` leaves the elapsed seconds in ``t[0]``."""
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - start


def settings_hash(settings: dict[str, Any]) -> str:
    """A short SHA-256 of the settings (keys sorted)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
