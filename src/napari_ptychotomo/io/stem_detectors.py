"""Detector formats (MIB, EMPAD, DM3/DM4, blockfile, ...) through rosettasciio.

rosettasciio (``pip install rosettasciio``, the ``formats`` extra) is optional: without
it these formats raise :class:`PtychoFormatError` saying how to install it. The data are
read lazily where the reader supports it; calibration comes from the file's axes (scan
step in nm or Å; detector sampling in mrad, or in 1/nm or 1/Å with the beam energy),
then from keywords and the ``<stem>.json`` sidecar.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..data import ScanData
from ..optics import inverse_angstrom_to_mrad
from .errors import PtychoFormatError
from .scan_input import length_to_angstrom, make_scan

__all__ = ["DETECTOR_EXTENSIONS", "load_detector"]

#: file extension -> rosettasciio plugin
DETECTOR_EXTENSIONS = {
    ".mib": "quantumdetector",
    ".xml": "empad",
    ".raw": "empad",
    ".dm3": "digitalmicrograph",
    ".dm4": "digitalmicrograph",
    ".blo": "blockfile",
    ".hspy": "hspy",
    ".emd": "emd",
    ".tvips": "tvips",
    ".mrcz": "mrcz",
    ".zspy": "zspy",
}
_INVERSE = {"1/nm": 0.1, "nm^-1": 0.1, "1/a": 1.0, "a^-1": 1.0, "1/å": 1.0, "å^-1": 1.0}


def _reader(path: Path, plugin: str) -> Any:
    try:
        module = importlib.import_module(f"rsciio.{plugin}")
    except ImportError:
        raise PtychoFormatError(
            path,
            f"reading {path.suffix} files needs rosettasciio: pip install rosettasciio "
            "(or pip install 'napari-ptychotomo[formats]')",
        ) from None
    return module.file_reader


def _empad_xml(path: Path) -> Path:
    if path.suffix.lower() == ".xml":
        return path
    candidates = [path.with_suffix(".xml")] + sorted(path.parent.glob("*.xml"))
    for xml in candidates:
        if xml.exists():
            return xml
    raise PtychoFormatError(path, "an EMPAD .raw file needs its .xml header next to it")


def load_detector(path: Any, *, validate: str = "sample", **kwargs: Any) -> ScanData:
    """Read a 4D-STEM detector file with rosettasciio as a ScanData.

    ``kwargs`` are calibration values (``energy_eV``, ``semiangle_mrad``,
    ``detector_sampling_mrad``, ``scan_step``, ``defocus``, ``tilt_deg``, ...) that
    override what the file records.
    """
    path = Path(path)
    if not path.exists():
        raise PtychoFormatError(path, "file not found")
    plugin = DETECTOR_EXTENSIONS.get(path.suffix.lower())
    if plugin is None:
        raise PtychoFormatError(path, f"not a detector format {sorted(DETECTOR_EXTENSIONS)}")
    reader = _reader(path, plugin)
    source = _empad_xml(path) if plugin == "empad" else path
    try:
        signals = reader(str(source), lazy=True)
    except Exception as exc:
        raise PtychoFormatError(path, f"rosettasciio could not read it ({type(exc).__name__}: {exc})") from None
    cubes = [s for s in signals if getattr(s.get("data"), "ndim", 0) in (3, 4)]
    if not cubes:
        shapes = [tuple(getattr(s.get("data"), "shape", ())) for s in signals]
        raise PtychoFormatError(path, f"holds no 4D-STEM data (arrays of shape {shapes})")
    signal = cubes[0]
    return make_scan(path, signal["data"], _calibration(signal, kwargs.get("energy_eV")), kwargs, validate)


def _calibration(signal: dict[str, Any], energy_eV: float | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    beam = signal.get("metadata", {}).get("Acquisition_instrument", {}).get("TEM", {}).get("beam_energy")
    if beam:
        values["energy_eV"] = float(beam) * 1e3  # HyperSpy stores keV
    energy = energy_eV or values.get("energy_eV")
    axes = sorted(signal.get("axes", []), key=lambda a: a.get("index_in_array", 0))
    nav = [a for a in axes if a.get("navigate")]
    sig = [a for a in axes if not a.get("navigate")]
    if nav:
        factor = length_to_angstrom(nav[-1].get("units") or "")
        if factor and nav[-1].get("scale"):
            values["scan_step"] = abs(float(nav[-1]["scale"])) * factor
    if sig and sig[-1].get("scale"):
        units = str(sig[-1].get("units") or "").strip().lower()
        scale = abs(float(sig[-1]["scale"]))
        if units == "mrad":
            values["detector_sampling_mrad"] = scale
        elif units in _INVERSE and energy:
            values["detector_sampling_mrad"] = inverse_angstrom_to_mrad(scale * _INVERSE[units], float(energy))
    return values
