"""A plain-text description of a project or data object (``ptychotomo info``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import Alignment, Atoms, MSPResult, Project, Resolution, ScanData, TiltSeries, Volume

__all__ = ["describe"]


def _scan_line(scan: Any) -> str:
    if isinstance(scan, ScanData):
        cal = scan.calibration
        return (
            f"{scan.num_positions} patterns {scan.detector_shape[0]}×{scan.detector_shape[1]} px, "
            f"{cal.energy_eV / 1e3:g} keV, {cal.semiangle_mrad:g} mrad, "
            f"{cal.detector_sampling_mrad:g} mrad/px, defocus {cal.defocus:g} Å"
        )
    return f"{type(scan).__name__} {tuple(getattr(scan, 'images', np.zeros(0)).shape)}"


def _lines(obj: Any) -> list[str]:
    if isinstance(obj, Project):
        out = []
        if obj.series is not None:
            out += _lines(obj.series)
        for k in sorted(obj.msp):
            out.append(f"MSP [tilt {k}]: " + _lines(obj.msp[k])[0])
        if obj.alignment is not None:
            out += _lines(obj.alignment)
        for name, vol in obj.volumes.items():
            out.append(f"volume {name!r}: " + _lines(vol)[0])
        for name, res in obj.resolution.items():
            out.append(f"resolution {name!r}: " + _lines(res)[0])
        for name, atoms in obj.atoms.items():
            out.append(f"atoms {name!r}: " + _lines(atoms)[0])
        return out or ["empty project"]
    if isinstance(obj, TiltSeries):
        angles = np.asarray(obj.angles_deg, dtype=float)
        out = [
            f"tilt series: {len(obj)} tilts from {angles.min():g}° to {angles.max():g}°"
            + (" (with ground truth)" if obj.truth else "")
        ]
        out += [f"  tilt {k} ({angles[k]:g}°): {_scan_line(s)}" for k, s in enumerate(obj.scans)]
        return out
    if isinstance(obj, ScanData):
        return ["4D-STEM scan: " + _scan_line(obj)]
    if isinstance(obj, MSPResult):
        return [
            f"{obj.object.shape[0]} slices of {obj.slice_thickness:.2f} Å, {obj.probe.shape[0]} "
            f"probe mode(s), tilt ({obj.tilt_mrad[0]:.2f}, {obj.tilt_mrad[1]:.2f}) mrad, "
            f"final loss {obj.loss_history[-1] if obj.loss_history else float('nan'):.4g}"
        ]
    if isinstance(obj, Alignment):
        shifts = np.asarray(obj.shifts)
        return [f"alignment: {len(shifts)} tilts, shifts RMS {np.sqrt(np.mean(shifts**2)):.2f} Å"]
    if isinstance(obj, Volume):
        return [
            f"{'×'.join(map(str, obj.shape))} voxels of {obj.voxel_size:.3g} Å ({obj.units})"
            + (", with half-data volumes" if obj.halves is not None else "")
        ]
    if isinstance(obj, Resolution):
        return [_resolution_line(obj)]
    if isinstance(obj, Atoms):
        classes, counts = np.unique(np.asarray(obj.species), return_counts=True)
        line = f"{len(obj)} atoms (" + ", ".join(f"class {c}: {n}" for c, n in zip(classes, counts)) + ")"
        score = (obj.provenance or {}).get("score")
        if score:
            line += (
                f"; against {int(score['n_truth'])} true atoms: recall {score['recall']:.2f}, "
                f"{int(score['false_positives'])} false positives, RMS error "
                f"{score['rms_error_3d']:.2f} Å"
            )
        return [line]
    return [f"{type(obj).__name__}: {getattr(obj, 'shape', '')}"]


def _resolution_line(res: Resolution) -> str:
    """Crossings as resolutions in Å, never ``nan Å``: a curve that stays above a threshold
    up to Nyquist reads "< Nyquist"; halves that are not independent give no resolution."""
    prov = res.provenance or {}
    frequency = np.asarray(res.frequency, dtype=float)
    nyquist = 1.0 / frequency.max() if frequency.size and frequency.max() > 0 else float("nan")
    if prov.get("independent") is False:
        shared = "; ".join(prov.get("halves_share") or [])
        return f"FSC of half-data volumes that are not independent (they share {shared}): no resolution"
    truth = prov.get("against") == "simulator truth"
    parts = []
    for name, value in res.crossings.items():
        value = float(value)
        if np.isfinite(value):
            parts.append(f"{name} {'at ' if truth else ''}{value:.2f} Å")
        elif np.isfinite(nyquist):
            parts.append(f"{name} < {nyquist:.2f} Å (no crossing up to Nyquist)")
        else:
            parts.append(f"{name}: no crossing")
    head = "FSC against the simulator's truth: " if truth else ""
    if "pearson_r" in prov:
        parts.append(f"Pearson r {float(prov['pearson_r']):.2f}")
    return head + (", ".join(parts) or "no crossings")


def describe(obj: Any, path: Any = None) -> str:
    head = [str(path)] if path is not None else []
    return "\n".join(head + _lines(obj))
