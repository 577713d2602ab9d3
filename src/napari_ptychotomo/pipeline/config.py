"""The run configuration: one TOML file, validated in full before any computation.

Sections: ``[run]`` (project file, device, seed, steps), ``[input]`` (simulate a sample or
import a file) and one section per step. A step section's keys are the fields of that
engine's parameter dataclass or the keywords of its function, so the schema follows the
engines; types are checked against the defaults, unknown keys are refused with the allowed
ones (and the closest match), and every message names the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import tomllib
from pathlib import Path
from typing import Any

from ..params_meta import docstring_entries
from .config_values import SAMPLES, ConfigError, _check_value, _describe, _is_number, _matches, _want
from .step_table import STEP_ORDER, STEPS

__all__ = [
    "ConfigError",
    "STEP_ORDER",
    "SAMPLES",
    "load_config",
    "validate_config",
    "writable_folder",
    "check_optics",
    "OPTICS_KEYS",
]

RUN_KEYS: dict[str, tuple[Any, str]] = {
    "project": ("", "the .ptycho.h5 project every step reads from and writes to"),
    "device": ("auto", '"auto" (CUDA if available), "cpu", "cuda", "cuda:1", ...'),
    "seed": (0, "seed of every random choice (runs are reproducible)"),
    "steps": (list(STEP_ORDER), "steps to run, in pipeline order"),
}
INPUT_KEYS: dict[str, tuple[Any, str]] = {
    "simulate": ("default", f"simulate a sample: {', '.join(SAMPLES)}"),
    "path": ("", "or import data: a .ptycho.h5 / .npy / EMD file or a folder of scans"),
    "angles": ("", "angles file (degrees, one per line) for a folder of scans"),
}


def step_settings(step: str) -> dict[str, tuple[Any, str]]:
    """Allowed keys of a step section: name → (default, help)."""
    step_ = STEPS[step]
    source, filled, extra = step_.settings, step_.filled, step_.extra
    try:
        target = source()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"[{step}]: this installation cannot run the step ({exc})") from None
    helps = docstring_entries(target)
    settings: dict[str, tuple[Any, str]] = {}
    if isinstance(target, dict):
        for name, default in target.items():
            settings[name] = (default, "")
    elif dataclasses.is_dataclass(target):
        for f in dataclasses.fields(target):
            if f.name in filled:
                continue
            default = (
                f.default
                if f.default is not dataclasses.MISSING
                else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            )
            settings[f.name] = (default, helps.get(f.name, ""))
    else:
        for p in inspect.signature(target).parameters.values():
            if p.name in filled or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            default = None if p.default is inspect.Parameter.empty else p.default
            if p.name in ("device", "seed", "callback"):
                continue
            settings[p.name] = (default, helps.get(p.name, ""))
    settings.update(extra)
    return settings


def step_annotations(step: str) -> dict[str, str]:
    """Type annotation (as text) of each setting of a step, where the engine gives one."""
    source = STEPS[step].settings
    try:
        target = source()
    except (ImportError, AttributeError):
        return {}
    out: dict[str, str] = {}
    if dataclasses.is_dataclass(target):
        for f in dataclasses.fields(target):
            out[f.name] = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    elif callable(target) and not isinstance(target, dict):
        for p in inspect.signature(target).parameters.values():
            if p.annotation is not inspect.Parameter.empty:
                ann = p.annotation
                out[p.name] = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
    return out


# --- validation ------------------------------------------------------------------------

#: settings of earlier versions that were replaced: (section, key) → the settings now
REPLACED: dict[tuple[str, str], str] = {
    ("end_to_end", "learn"): "learn_probe, learn_positions, learn_euler, learn_shifts",
}


def _replaced(name: str, key: str, value: Any) -> ConfigError:
    """The error for a setting of an earlier version, naming the settings that replaced it."""
    new = REPLACED[(name, key)]
    message = f"{name}.{key} is no longer a setting: it was replaced by {new}"
    if (name, key) == ("end_to_end", "learn"):
        message += " (one switch each, true or false; the volume is always learned)"
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            switches = [f"learn_{v} = true" for v in value if v != "volume"]
            message += f". Write {', '.join(switches)} instead" if switches else ". Remove it: nothing else is learned"
    return ConfigError(message)


def _check_section(
    name: str, table: Any, allowed: dict[str, tuple[Any, str]], annotations: dict[str, str] | None = None
) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table of settings, got {_describe(table)}")
    for key, value in table.items():
        if (name, key) in REPLACED and key not in allowed:
            raise _replaced(name, key, value)
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{name}.{key} is not a setting{hint} Allowed: {', '.join(sorted(allowed))}")
        _check_value(f"{name}.{key}", value, allowed[key][0], (annotations or {}).get(key))


def validate_config(config: dict[str, Any], base: Path | None = None) -> dict[str, Any]:
    """Check a parsed configuration; return it with defaults filled in ``run`` and ``input``.

    Raises :class:`ConfigError` naming the first wrong field.
    """
    known = {"run", "input", *STEP_ORDER}
    for section in config:
        if section not in known:
            close = difflib.get_close_matches(section, known, n=1)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            raise ConfigError(f"[{section}] is not a section{hint} Allowed: {', '.join(sorted(known))}")
    run = dict(config.get("run", {}))
    _check_section("run", run, RUN_KEYS)
    if not run.get("project"):
        raise ConfigError("run.project is missing: the .ptycho.h5 file the steps read and write")
    steps = run.setdefault("steps", list(STEP_ORDER))
    for step in steps:
        if step not in STEP_ORDER:
            raise ConfigError(f"run.steps: {step!r} is not a step; allowed: {', '.join(STEP_ORDER)}")
    run["steps"] = [s for s in STEP_ORDER if s in steps]
    run.setdefault("device", "auto")
    run.setdefault("seed", 0)
    try:
        from ..engine import resolve_device

        resolve_device(run["device"])
    except ValueError as exc:
        raise ConfigError(f"run.device: {exc}") from None
    source = dict(config.get("input", {}))
    _check_section("input", source, INPUT_KEYS)
    if source.get("path"):
        source.setdefault("simulate", "none")
        path = Path(source["path"])
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.exists():
            raise ConfigError(f"input.path = {source['path']!r}: no such file or folder")
        source["path"] = str(path)
    else:
        source.setdefault("simulate", "default")
    if not isinstance(run["project"], str):
        raise ConfigError(f"run.project: expected a file path (a string), got {_describe(run['project'])}")
    project = Path(run["project"])
    if base is not None and not project.is_absolute():
        run["project"] = str(base / project)
    _check_project_path(Path(run["project"]))
    if source["simulate"] == "none" and not source.get("path") and not Path(run["project"]).exists():
        raise ConfigError("input: give input.path or input.simulate, or an existing run.project")
    if not Path(run["project"]).exists() and not run["project"].lower().endswith(".ptycho.h5"):
        # the input step would simulate or import first and only then fail to write it
        suggestion = Path(run["project"]).name.split(".")[0] or "run"
        raise ConfigError(
            f"run.project = {run['project']!r}: a new project is written as a .ptycho.h5 "
            f"file; name it e.g. {suggestion + '.ptycho.h5'!r}"
        )
    out = {"run": run, "input": source}
    for step in STEP_ORDER:
        table = config.get(step, {})
        if step in run["steps"] or table:
            _check_section(step, table, step_settings(step), step_annotations(step))
        out[step] = dict(table)
    for step in ("msp", "end_to_end"):
        rates = out.get(step, {}).get("rates", {})
        learned = sorted(STEPS[step].settings()().rates) if rates else []
        for key, value in rates.items():
            if key not in learned:
                close = difflib.get_close_matches(key, learned, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{step}.rates.{key} is not a learned quantity{hint} Allowed: {', '.join(learned)}")
            if not (isinstance(value, list) and len(value) == 2):
                raise ConfigError(f"{step}.rates.{key}: expected [step, start iteration], got {_describe(value)}")
            if not (
                _is_number(value[0])
                and isinstance(value[1], int)
                and not isinstance(value[1], bool)
                and value[0] >= 0
                and value[1] >= 0
            ):
                raise ConfigError(
                    f"{step}.rates.{key} = {value!r}; expected [step ≥ 0, start iteration ≥ 0 (an integer)]"
                )
        if out.get(step):
            _check_engine_params(step, out[step])
    if "optics" in out.get("end_to_end", {}):
        check_optics(out["end_to_end"]["optics"], "end_to_end.optics")
    return out


#: the objective-lens settings of plane-wave data (fields of DefocusSeries) and their types
OPTICS_KEYS: dict[str, str] = {
    "aperture_mrad": "float",
    "aberrations": "dict",
    "focal_spread": "float",
    "illumination_semiangle_mrad": "float",
    "defocus_reference": "str",
}


def check_optics(table: Any, field: str) -> dict[str, Any]:
    """Check an optics table (keys of :data:`OPTICS_KEYS`) with DefocusSeries' own rules;
    raise :class:`ConfigError` naming ``field.key``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{field}: expected a table such as {{aperture_mrad = 19.0}}, got {_describe(table)}")
    for key, value in table.items():
        if key not in OPTICS_KEYS:
            close = difflib.get_close_matches(key, OPTICS_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{field}.{key} is not an optics setting{hint} Allowed: {', '.join(OPTICS_KEYS)}")
        if not _matches(value, OPTICS_KEYS[key]):
            raise ConfigError(f"{field}.{key}: expected {_want(OPTICS_KEYS[key])}, got {_describe(value)}")
    import numpy as np

    from ..data import DefocusSeries

    probe = DefocusSeries(np.zeros((1, 1, 1), np.float32), np.zeros(1), 1.0, 300e3, **table)
    try:
        probe.validate()
    except ValueError as exc:
        raise ConfigError(f"{field}.{exc}") from None
    return table


def _check_engine_params(step: str, table: dict[str, Any]) -> None:
    """Let the engine's own parameter class check the values together (ranges, combinations)."""
    extra = STEPS[step].extra
    options = {k: (tuple(v) if isinstance(v, list) else v) for k, v in table.items() if k not in extra}
    try:
        params_class = STEPS[step].settings()
        params = params_class(**options)
        params.validate()
    except (ImportError, AttributeError):
        return
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{step}.{exc}") from None


def writable_folder(folder: Path) -> Path | None:
    """``None`` when files can be created in ``folder`` (or in the folders that would be
    created for it); else the existing folder that refuses it."""
    import os

    folder = Path(os.path.abspath(folder))
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return existing
    return None


def _check_project_path(project: Path) -> None:
    if project.is_dir():
        raise ConfigError(
            f"run.project = {str(project)!r} is a folder; expected the path of a "
            "project file, e.g. run.ptycho.h5 inside it"
        )
    if project.exists() and not project.is_file():
        raise ConfigError(f"run.project = {str(project)!r} is not a regular file")
    refused = writable_folder(project.parent)
    if refused is not None:
        raise ConfigError(
            f"run.project = {str(project)!r}: cannot write in {str(refused)!r} "
            "(permission denied or not a folder); choose a folder you can write "
            "to, or fix its permissions"
        )


def load_config(path: Any) -> dict[str, Any]:
    """Read and validate a TOML configuration file (paths in it are relative to it)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path}: is a folder; give the configuration file (a .toml), e.g. {path / 'run.toml'}"
        ) from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied reading the configuration file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text (UTF-8) TOML file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return validate_config(raw, base=path.parent)
