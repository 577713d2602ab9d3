"""napari-ptychotomo: 3D phase-contrast electron microscopy from 4D-STEM tilt series.

Multislice ptychography, ptychographic tomography (sequential and end-to-end), resolution
and atom tracing, as plain Python engines on the data objects of :mod:`.data`, with napari
widgets in :mod:`._napari`. Importing this package imports neither napari nor Qt; the
engines below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__  # noqa: F401  (the package's version, public)
from .data import (
    Alignment,
    Atoms,
    Calibration,
    DefocusSeries,
    MSPResult,
    Project,
    Resolution,
    ScanData,
    TiltSeries,
    Volume,
)
from .engine import EngineError, Progress, run

# public name -> module that defines it (imported lazily, so `import napari_ptychotomo`
# stays fast and GUI-free)
_LAZY = {
    "load": ".io",
    "save": ".io",
    "append_result": ".io",
    "load_tilt_series": ".io",
    "PtychoFormatError": ".io",
    "reconstruct_msp": ".ptycho",
    "MSPParams": ".ptycho",
    "estimate_defocus": ".ptycho",
    "denoise_projections": ".tomo",
    "align_tilt_series": ".tomo",
    "reconstruct_linear": ".tomo",
    "make_support_mask": ".tomo",
    "projections_from_msp": ".tomo",
    "sequential_tomography": ".pipeline.sequential",
    "reconstruct_joint": ".joint",
    "JointParams": ".joint",
    "JointResult": ".joint",
    "fsc": ".analysis",
    "directional_fsc": ".analysis",
    "trace_atoms": ".analysis",
    "score_atoms": ".analysis",
    "register_lattice": ".analysis",
    "show": "._napari.show",
}

__all__ = [
    "Alignment",
    "Atoms",
    "Calibration",
    "DefocusSeries",
    "MSPResult",
    "Project",
    "Resolution",
    "ScanData",
    "TiltSeries",
    "Volume",
    "EngineError",
    "Progress",
    "run",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_ptychotomo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
