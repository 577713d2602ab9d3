"""What a stored result was made with, for ``--resume``: the settings that shape a step's
results, and the differences between a result's record and the configuration."""

from __future__ import annotations

import json
from typing import Any

from ..data import Project
from .config import step_settings
from .provenance import plain, settings_hash
from .step_table import STEPS

__all__ = ["NOT_SHAPING", "shaping_settings", "settings_changes", "recorded_changes"]


#: settings that choose what to compute or how often to report, not what comes out
NOT_SHAPING = frozenset({"msp.tilts", "linear.preview_every", "end_to_end.preview_every"})


def shaping_settings(step: str, config: dict[str, Any]) -> dict[str, Any]:
    """The settings that shape ``step``'s results, flat (``"msp.iterations"``), defaults
    filled in: the step's section and the seed; for MSP also the bright-field section when
    that step runs (it gives MSP its start defocus). The device, threads and progress
    display are not among them."""
    sections = [step]
    if step == "msp" and "bright_field" in config["run"]["steps"]:
        sections.append("bright_field")
    out: dict[str, Any] = {"run.seed": int(config["run"]["seed"])}
    for section in sections:
        defaults = {key: default for key, (default, _help) in step_settings(section).items()}
        for key, value in {**defaults, **config.get(section, {})}.items():
            if f"{section}.{key}" not in NOT_SHAPING:
                out[f"{section}.{key}"] = plain(value)
    return out


def settings_changes(recorded: dict[str, Any], now: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, old value, new value) of every setting that differs; a missing one is
    ``"(not set)"``. Numbers compare by value (2 and 2.0 are the same setting)."""
    missing = "(not set)"
    changes = []
    for key in sorted(set(recorded) | set(now)):
        old, new = recorded.get(key, missing), now.get(key, missing)
        if old != new:
            changes.append((key, old, new))
    return changes


def recorded_changes(step: str, project: Project, config: dict[str, Any]) -> tuple[str, list] | None:
    """The first of ``step``'s stored results whose recorded settings differ from the
    configuration's: (what, changes), else None. Results stored without a record (made
    by an older version) are taken as they are."""
    now = shaping_settings(step, config)
    for what, result in STEPS[step].stored(project, config.get(step, {})):
        record = getattr(result, "provenance", None)
        text = record.get("settings") if isinstance(record, dict) else None
        if not isinstance(text, str) or record.get("settings_hash") == settings_hash(now):
            continue
        changes = settings_changes(json.loads(text), now)
        if changes:
            return what, changes
    return None
