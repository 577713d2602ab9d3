"""The demo run of ``make demo`` / ``ptychotomo demo``: the whole chain on the default
simulated sample, and its results as files other tools read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import Project
from .config import STEP_ORDER, validate_config
from .template import toml_value

__all__ = ["demo_config", "demo_settings", "demo_toml", "write_outputs"]


def demo_config(output: Any, device: str = "auto", fast: bool = False) -> dict[str, Any]:
    """Configuration of the demo (``fast`` cuts iterations further, for tests)."""
    return validate_config(demo_settings(output, device, fast))


def demo_toml() -> str:
    """The demo's settings as a configuration file (``ptychotomo config --demo``): a
    start for one's own runs that, as it stands, runs the demo's chain into
    ``run.ptycho.h5``."""
    raw = demo_settings(".")
    raw["run"] = {key: value for key, value in raw["run"].items() if key not in ("device", "seed")}
    raw["run"]["project"] = "run.ptycho.h5"
    lines = [
        "## napari-ptychotomo: the settings of `ptychotomo demo` for its bundled sample (a ~14 Å Pt",
        "## particle, 7 tilts). Every other setting has its default (`ptychotomo config --template`",
        "## lists them with their help). Lengths in Å, angles in degrees, mistilt in mrad.",
    ]
    for section, settings in raw.items():
        lines += ["", f"[{section}]"]
        lines += [f"{key} = {toml_value(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def demo_settings(output: Any, device: str = "auto", fast: bool = False) -> dict[str, Any]:
    """The demo's configuration as written, before defaults are filled in."""
    scale = 0.34 if fast else 1.0

    def its(n: int) -> int:
        return max(2, int(round(n * scale)))

    raw = {
        "run": {
            "project": str(Path(output) / "demo.ptycho.h5"),
            "device": device,
            "seed": 0,
            "steps": list(STEP_ORDER),
        },
        "input": {"simulate": "default"},
        # the particle is ~14 Å thick: 2 slices of 8 Å; Pt columns reach ~1000 V·Å, so the
        # object step is large and constant (the recipe of tests/tomo/test_sequential.py: too
        # few iterations to decay it); the untilted particle needs no learned tilt or thickness
        "msp": {
            "iterations": its(20),
            "num_slices": 2,
            "slice_thickness": 8.0,
            "learn_tilt": False,
            "learn_thickness": False,
            "rates": {"object": [50.0, 0]},
            "object_step_decay": 1.0,
        },
        "denoise": {"method": "tv"},
        # the engine's default: projection matching for this particle in vacuum
        "align": {"final_n_iter": its(20)},
        "linear": {"n_iter": its(80)},
        # half data from a zero start; the halves still share that start, the MSP probes
        # and positions and the alignment, so the resolution step prints no resolution
        # from them and reports the FSC against the simulator's truth instead. 20 passes
        # bring out the atoms in every plane (6 left streaks along the tilts' beams)
        "end_to_end": {"iterations": its(20), "half_data": True},
        "resolution": {"volume": "end-to-end"},
        "atoms": {"volume": "linear", "min_relative_intensity": 0.25},
    }
    return raw


def write_outputs(project: Project, folder: Path) -> list[Path]:
    """Volumes as MRC and atoms as extended XYZ next to the project file."""
    from ..io import save

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, volume in project.volumes.items():
        if volume.provenance.get("axes", "").startswith("tilt"):
            continue  # projection stacks stay in the project
        path = folder / f"volume-{name.replace(' ', '-').replace('(', '').replace(')', '')}.mrc"
        if volume.data.dtype.kind == "c":
            import dataclasses

            import numpy as np

            volume = dataclasses.replace(volume, data=np.real(np.asarray(volume.data)), halves=None)
        written.append(save(volume, path))
    for name, atoms in project.atoms.items():
        written.append(save(atoms, folder / f"atoms-{name.replace(' ', '-')}.xyz"))
    return written
