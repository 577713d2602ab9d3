"""What every pipeline step is given, and what the step modules share: the
:class:`StepContext` (project, settings, device, seed, callbacks, and ``save`` into the
project), the project's tilt series, and a step's provenance on top of its engine's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import Project
from ..engine import Progress
from .provenance import settings_hash

__all__ = ["StepContext", "with_engine"]


@dataclass
class StepContext:
    """What a step needs: the project (path and loaded view), its settings, the device,
    the seed, resume mode, this process's rank, and callbacks for messages and progress."""

    path: Path
    project: Project
    options: dict[str, Any]
    device: Any
    seed: int
    resume: bool = False
    rank: int = 0
    world: int = 1
    report: Callable[[str], None] = print
    progress: Callable[[str, Progress], None] = lambda label, p: None
    state: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # what shapes this step's results

    def save(self, obj: Any, name: Any = None) -> None:
        """Write ``obj`` into the project, its provenance stamped with the settings that
        shaped it (what ``--resume`` compares against)."""
        from ..io import append_result

        record = getattr(obj, "provenance", None)
        if self.settings and isinstance(record, dict):
            record["settings"] = json.dumps(self.settings, sort_keys=True)
            record["settings_hash"] = settings_hash(self.settings)
        if self.rank == 0:
            append_result(self.path, obj, name=name)

    def reload(self) -> None:
        from ..io import load

        self.project = load(self.path, as_project=True, validate="none")


def _series(ctx: StepContext):
    if ctx.project.series is None:
        raise ValueError(f"{ctx.path}: the project holds no tilt series to reconstruct")
    return ctx.project.series


def with_engine(engine: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """A step's provenance record on top of what the engine recorded of its result (e.g.
    the alignment's method and history, a plane-wave volume's tilt range, which the atom
    tracer reads): the step's keys win, engine values they replace are kept under
    ``"engine"``."""
    replaced = {key: value for key, value in engine.items() if key in record and record[key] != value}
    merged = {**engine, **record}
    if replaced:
        merged["engine"] = replaced
    return merged
