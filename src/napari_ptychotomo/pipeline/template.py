"""The commented configuration template (``ptychotomo config --template``): every setting
of every step with its default, its help taken from the engines' docstrings without markup,
each line valid TOML once its ``#`` is removed."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ..params_meta import docstring_entries
from .config import INPUT_KEYS, step_settings
from .step_table import STEP_ORDER, STEPS

__all__ = ["template", "plain_text", "toml_value"]

#: a value to show for a setting whose default is "not set" (TOML has no null): the line
#: must still be a valid setting when uncommented as it stands
EXAMPLES: dict[tuple[str, str], Any] = {
    ("msp", "batch_size"): 64,
    ("denoise", "sigma"): 0.05,
    ("denoise", "fourier_sparsity"): 0.1,
    ("linear", "shape"): [64, 64, 64],
    ("end_to_end", "batch_size"): 64,
    ("end_to_end", "volume_shape"): [64, 64, 64],
    ("end_to_end", "butterworth_cutoff"): 0.5,
    ("end_to_end", "butterworth_stop"): 5,
    ("atoms", "min_distance"): 1.0,
    ("atoms", "names"): ["O", "Pt"],
}

#: an example (TOML text) for a table setting whose default is empty
TABLE_EXAMPLES: dict[tuple[str, str], str] = {
    ("end_to_end", "optics"): (
        "{aperture_mrad = 19.0, aberrations = {C30 = 1.2e5, C12 = 20.0, "
        "phi12 = 0.5}, focal_spread = 30.0, illumination_semiangle_mrad = 0.2}"
    ),
}

#: what the engine's docstring leaves out and a user of this file needs to know
HELP_NOTES: dict[tuple[str, str], str] = {
    ("bright_field", "astigmatism"): "also estimate the two-fold astigmatism (C12 in Å and its azimuth).",
    ("linear", "preview_every"): "show a preview of the volume every this many iterations.",
    ("end_to_end", "half_data"): (
        " The halves share their start (and MSP probes, positions and "
        "alignment when those steps ran), so the resolution step "
        "reports them as not independent and prints no resolution."
    ),
}

#: settings that take a Python object (an array, an Alignment): set from Python only
PYTHON_ONLY: dict[str, tuple[str, ...]] = {
    "align": ("stages", "initial"),
    "linear": ("projection_mask", "support"),
    "resolution": ("mask",),
}


def plain_text(text: str) -> str:
    """Docstring text without Sphinx / reST markup: ````x```` → x, :func:`~a.b.c` → c;
    ````None```` reads "not set" (a TOML file has no None: a setting is left out)."""
    text = text.replace("``None``", "not set")
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    return re.sub(r"`([^`]+)`", r"\1", text)


def toml_value(value: Any) -> str:
    """``value`` (bool, str, number, list, dict) as TOML (a dict as an inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {toml_value(v)}" for key, v in value.items()) + "}"
    return repr(value)


def _help_lines(names: list[str], text: str) -> list[str]:
    import textwrap

    head = ", ".join(names) + ": " if len(names) > 1 else ""
    return textwrap.wrap(head + plain_text(text), width=86, initial_indent="## ", subsequent_indent="##   ")


def _section_lines(name: str, settings: dict[str, tuple[Any, str]]) -> list[str]:
    """``[name]`` and its settings. A setting's line is valid TOML when uncommented as it
    stands; its help, from the engine's docstring, stands above it on ``##`` lines (still
    comments when one ``#`` is removed), once for settings that share it."""
    lines = [f"[{name}]"]
    skipped = [key for key in PYTHON_ONLY.get(name, ()) if key in settings]
    keys = [key for key in settings if key not in skipped]
    k = 0
    while k < len(keys):
        text = settings[keys[k]][1]
        group = [keys[k]]
        while text and k + len(group) < len(keys) and settings[keys[k + len(group)]][1] == text:
            group.append(keys[k + len(group)])
        if text:
            lines += _help_lines(group, text)
        for key in group:
            default = settings[key][0]
            if (name, key) in TABLE_EXAMPLES:
                lines.append(f"# {key} = {TABLE_EXAMPLES[(name, key)]}  # an example; not set by default")
                continue
            if default is None:
                example = EXAMPLES.get((name, key))
                if example is None:
                    lines.append(f"## {key}: not set by default")
                    continue
                lines.append(f"# {key} = {toml_value(example)}  # an example; not set by default")
            elif dataclasses.is_dataclass(default) or (isinstance(default, dict) and default):
                lines.append(f"## {key}: a table, see the documentation")
            else:
                lines.append(f"# {key} = {toml_value(default)}")
        k += len(group)
    if skipped:
        lines.append(f"## from Python only (not in this file): {', '.join(skipped)}")
    return lines


def template() -> str:
    """A commented configuration template listing every setting with its default.

    Every line that starts with one ``#`` is a setting that is valid as it stands once
    that ``#`` is removed; ``##`` lines are help."""
    lines = [
        "## napari-ptychotomo run configuration (TOML). Lengths in Å, angles in degrees,",
        "## mistilt in mrad. Remove the leading # of a setting to change it from its default.",
        "",
        "[run]",
        "## the project file every step reads from and writes to",
        'project = "run.ptycho.h5"',
        '## "auto" (CUDA if available), "cpu", "cuda", "cuda:1", ...',
        '# device = "auto"',
        "## seed of every random choice (runs are reproducible)",
        "# seed = 0",
        "## steps to run (in pipeline order whatever the order here)",
        f"# steps = {toml_value(list(STEP_ORDER))}",
        "",
    ]
    lines += _section_lines("input", INPUT_KEYS)
    for step in STEP_ORDER:
        settings = step_settings(step)
        source = STEPS[step].docs
        if source is not None:
            helps = docstring_entries(source())
            settings = {key: (default, text or helps.get(key, "")) for key, (default, text) in settings.items()}
        settings = {key: (default, text + HELP_NOTES.get((step, key), "")) for key, (default, text) in settings.items()}
        lines += ["", *_section_lines(step, settings)]
    return "\n".join(lines) + "\n"
