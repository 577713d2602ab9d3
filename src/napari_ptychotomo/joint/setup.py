"""Starting state of the end-to-end step from a tilt series and whatever earlier steps gave.

``init`` may hold MSP results (probes, positions), an :class:`~napari_ptychotomo.data.Alignment`
and a starting :class:`~napari_ptychotomo.data.Volume` (in V, or a phase per Å from linear
tomography: :func:`start_potential`); what is missing starts from the calibration (probe),
the nominal tilt angles with zero shifts, and a zero volume.

Geometry: the volume has cubic voxels of the reconstruction pixel size of the detector
(``Calibration.pixel_size``); the centre of each tilt's scan (the mean of its positions)
sees the volume centre, the point about which the volume is rotated.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data import Alignment, MSPResult, TiltSeries, Volume
from ..physics import interaction_constant, make_probe, probe_modes

__all__ = [
    "StartState",
    "split_init",
    "halves_share",
    "start_state",
    "start_potential",
    "half_indices",
    "lateral_need",
    "check_start_memory",
]

#: units of a start volume that are a phase per Å (linear tomography of MSP phases; the
#: tomography engines call their output "projection unit per Å" since they take any stack)
PHASE_PER_ANGSTROM = ("rad/Å", "rad per Å", "projection unit per Å")


@dataclass
class StartState:
    """Everything a 4D-STEM joint run starts from (numpy, host)."""

    voxel_size: float
    shape: tuple[int, int, int]
    probes: list[np.ndarray]  # per tilt (M, n, n) complex, unit total power
    positions_px: list[np.ndarray]  # per tilt (K, 2) voxels in the rotated lateral grid
    centres: list[np.ndarray]  # per tilt (2,) Å, mean of the given positions
    alignment: Alignment
    volume: np.ndarray  # (nz, ny, nx) complex64 in V


def split_init(init: Any) -> tuple[dict[int, MSPResult], Alignment | None, Volume | None]:
    """Sort ``init`` (one object, a list or a dict) into MSP results, alignment and volume."""
    msp: dict[int, MSPResult] = {}
    alignment = volume = None
    items = init if isinstance(init, (list, tuple)) else [init]
    if isinstance(init, dict):
        items = []
        for key, value in init.items():
            if isinstance(key, (int, np.integer)) and isinstance(value, MSPResult):
                msp[int(key)] = value
            else:
                items.append(value)
    for k, item in enumerate(items):
        if item is None:
            continue
        if isinstance(item, MSPResult):
            msp[k] = item
        elif isinstance(item, Alignment):
            alignment = item
        elif isinstance(item, Volume):
            volume = item
        elif isinstance(item, (list, tuple)) and all(isinstance(m, MSPResult) for m in item):
            msp.update(enumerate(item))
        elif isinstance(item, dict) and all(isinstance(m, MSPResult) for m in item.values()):
            msp.update({int(key): value for key, value in item.items()})
        else:
            raise ValueError(
                f"init holds a {type(item).__name__}; expected MSPResult(s) (a dict tilt -> "
                "MSPResult or a list), an Alignment, a Volume, or a list of those"
            )
    return msp, alignment, volume


def halves_share(init: Any, uses_msp: bool = True) -> list[str]:
    """What the two half-data reconstructions of a run from ``init`` start from in common
    (both halves start from one state): each shared start correlates their errors, so the
    FSC of the halves then measures agreement, not resolution (recorded as the volume's
    ``provenance["halves_share"]``, which :func:`~napari_ptychotomo.analysis.resolution_of`
    reads). ``uses_msp``: whether the engine takes probes and positions from MSP results
    (the plane-wave engine does not)."""
    msp, alignment, volume = split_init(init)
    shared = ["one start volume (" + ("the one given in init" if volume is not None else "zero") + ")"]
    if msp and uses_msp:
        shared.append("the MSP probes and positions given in init")
    if alignment is not None:
        shared.append("the alignment given in init")
    return shared


def half_indices(n: int, scan_shape, half: int) -> np.ndarray:
    """Indices of one half (0 or 1) of ``n`` positions: a checkerboard on a raster scan,
    alternate positions otherwise."""
    index = np.arange(n)
    if scan_shape is not None and int(np.prod(scan_shape)) == n:
        iy, ix = np.divmod(index, scan_shape[1])
        return index[(iy + ix) % 2 == half]
    return index[index % 2 == half]


def lateral_need(positions_px: list[np.ndarray], shifts_px: np.ndarray, window: int) -> tuple[int, int]:
    """Smallest lateral volume size (ny, nx) in voxels in which every probe window fits.

    ``positions_px`` per tilt (K, 2) relative to the scan centre and ``shifts_px`` (n, 2),
    both in voxels: the window of centre ``p`` at ``(size − 1) / 2 + p − shift`` spans
    ``floor(·) − n//2 … + n`` and must stay inside, up to 1e-3 voxel (rounding of shifts
    given in Å), which the engine's clamp (:func:`.fit_state.keep_windows_inside`) takes
    back at the start: a state the engine kept inside is accepted again as a start.
    """
    rel = np.concatenate([p - s for p, s in zip(positions_px, shifts_px)])
    low, high = rel.min(0), rel.max(0)
    below = 2 * (window // 2 - low) + 1
    above = 2 * (high + window - window // 2 - 1) - 1
    need = np.ceil(np.maximum(below, above) - 2e-3)
    return int(need[0]), int(need[1])


def check_start_memory(
    shape,
    window: int,
    num_modes: int,
    num_slices: int,
    given: bool,
    device: Any = None,
    *,
    step: str = "end-to-end",
    change: str = "end_to_end.volume_shape, or bin the detector",
) -> None:
    """Refuse (``MemoryError``, naming the volume and what to ``change``) a start volume
    that would not fit, before it is allocated: on the host, the volume (complex64) and,
    for a given start volume, its converted copy; with ``device``, also the end-to-end
    step's fixed memory and one scan position there (:func:`~.memory.stem_bytes`)."""
    from ..engine import check_memory, resolve_device
    from .memory import stem_bytes

    dims = "×".join(str(int(n)) for n in shape)
    what = f"the {step} volume of {dims} voxels ({change})"
    check_memory(what, math.prod(shape) * 8 * (2 if given else 1), 0, 1, "cpu")
    if device is not None:
        fixed, per_position = stem_bytes(shape, window, num_modes, num_slices)
        check_memory(what, fixed, per_position, 1, resolve_device(device))


def start_state(
    series: TiltSeries, init: Any, num_modes: int, num_slices: int, volume_shape=None, device: Any = None
) -> StartState:
    """Check the series against ``init`` and build the starting state; a volume that would
    not fit in memory (on the host, and on ``device`` when given) is refused before it is
    allocated (:func:`check_start_memory`)."""
    msp, alignment, volume = split_init(init)
    scans = series.scans
    first = scans[0]
    det = first.detector_shape
    cal = first.calibration
    for k, scan in enumerate(scans):
        if scan.detector_shape != det:
            raise ValueError(f"scan {k} has detector shape {scan.detector_shape}; expected {det} like scan 0")
        if scan.calibration.energy_eV != cal.energy_eV:
            raise ValueError(
                f"scan {k} has energy {scan.calibration.energy_eV} eV; expected {cal.energy_eV} like scan 0"
            )
    if det[0] != det[1]:
        raise ValueError(f"detector shape {det}; the end-to-end step needs a square detector")
    dy, dx = cal.pixel_size(det)
    if not math.isclose(dy, dx, rel_tol=1e-4):
        raise ValueError(f"reconstruction pixels are {dy:.4g} × {dx:.4g} Å; expected square voxels")
    voxel = float(dx)
    n = det[0]
    bad = [k for k in msp if not 0 <= k < len(scans)]
    if bad:
        raise ValueError(f"init has MSP results for tilt(s) {bad}; the series has {len(scans)} tilts")
    positions, centres, probes = [], [], []
    for k, scan in enumerate(scans):
        pos = np.asarray(msp[k].positions if k in msp else scan.positions_angstrom(), float)
        if pos.shape != (scan.num_positions, 2):
            raise ValueError(
                f"init MSP result of tilt {k} has positions {pos.shape}; expected ({scan.num_positions}, 2)"
            )
        centre = pos.mean(0)
        positions.append((pos - centre) / voxel)
        centres.append(centre)
        if k in msp and np.shape(msp[k].probe)[-2:] == det:
            probe = torch.as_tensor(np.asarray(msp[k].probe), dtype=torch.complex64)
        else:
            aberrations = scan.calibration.aberration_dict()
            single = make_probe(det, voxel, cal.energy_eV, scan.calibration.semiangle_mrad, aberrations)
            probe = probe_modes(single, num_modes)
        probe = probe / torch.sqrt(torch.sum(torch.abs(probe) ** 2))
        probes.append(probe.numpy())
    if alignment is None:
        alignment = Alignment.from_angles(series.angles_deg)
    alignment.validate()
    if len(alignment.euler_deg) != len(scans):
        raise ValueError(f"init alignment has {len(alignment.euler_deg)} tilts; the series has {len(scans)}")
    extent = max(float(np.ptp(p, axis=0).max()) for p in positions)
    extent += 2 * float(np.abs(alignment.shifts).max(initial=0.0)) / voxel
    side = int(math.ceil(extent + n + 4))
    side += (-side) % num_slices
    shape = tuple(int(s) for s in volume_shape) if volume_shape is not None else (side, side, side)
    need = lateral_need(positions, np.asarray(alignment.shifts, float) / voxel, n)
    if shape[1] < need[0] or shape[2] < need[1]:
        raise ValueError(
            f"volume_shape {shape} is too small laterally for the scan and shifts ({extent:.0f} px) "
            f"plus the probe window ({n} px); use at least {need[0]} × {need[1]} voxels in y and x"
        )
    middle = np.array([(shape[1] - 1) / 2, (shape[2] - 1) / 2])
    positions = [p + middle for p in positions]
    check_start_memory(shape, n, num_modes, num_slices, volume is not None, device)
    data = np.zeros(shape, np.complex64) if volume is None else start_potential(volume, cal.energy_eV, shape, voxel)
    return StartState(
        voxel,
        shape,
        probes,
        positions,
        centres,
        Alignment(np.array(alignment.euler_deg, float), np.array(alignment.shifts, float)),
        data,
    )


def start_potential(volume: Volume, energy_eV: float, shape, voxel: float) -> np.ndarray:
    """A start volume as a complex potential in V on the ``shape`` grid of ``voxel`` Å.

    Units: ``V`` (or none, with a warning) as it is; a phase per Å (:data:`PHASE_PER_ANGSTROM`, e.g. the linear
    tomography of MSP phases) divided by the interaction constant σ(E) in rad/(V·Å). Shape:
    both grids are centred on the rotation centre, so a smaller volume is zero-padded and a
    larger one centre-cropped, as long as what the crop cuts off holds under 1 % of Σ|V|.
    The voxel size must match (no resampling).
    """
    volume.validate()
    if not math.isclose(volume.voxel_size, voxel, rel_tol=1e-3):
        raise ValueError(
            f"init volume has voxels of {volume.voxel_size:.4g} Å; expected {voxel:.4g} Å (the "
            "detector's reconstruction pixel size): resample it first"
        )
    data = np.asarray(volume.data).astype(np.complex64)
    if volume.units in PHASE_PER_ANGSTROM:
        data = data / np.float32(interaction_constant(energy_eV))
    elif not volume.units:  # e.g. an MRC file from another program
        warnings.warn("the start volume has no units; taken as a potential in V", stacklevel=3)
    elif volume.units != "V":
        raise ValueError(
            f"init volume is in {volume.units!r}; expected a potential in 'V' or a phase per Å "
            f"({', '.join(map(repr, PHASE_PER_ANGSTROM))}), which is divided by σ(E)"
        )
    if data.shape == tuple(shape):
        return data
    out = np.zeros(shape, np.complex64)
    src, dst = [], []
    for have, want in zip(data.shape, shape):
        size = min(have, want)
        lo, at = max((have - want) // 2, 0), max((want - have) // 2, 0)
        src.append(slice(lo, lo + size))
        dst.append(slice(at, at + size))
    out[tuple(dst)] = data[tuple(src)]
    total = float(np.abs(data).sum())
    if total and float(np.abs(out).sum()) < 0.99 * total:
        raise ValueError(
            f"init volume is {data.shape} voxels; cropping it to the {tuple(shape)} grid would cut "
            "off more than 1 % of it: give volume_shape to hold it"
        )
    return out
