"""The setup of an MSP run (:func:`_setup`): what :mod:`.msp`'s loop fixes before its
first iteration: the geometry, the batch size (checked against memory), the measured
amplitudes, the start probe and state (:class:`~.msp_update.State`), and the constants of
the iteration (:class:`~.msp_update.Setup`)."""

from __future__ import annotations

import numpy as np
import torch

from ..data import ScanData
from ..engine_guards import checked_counts, warn_negative
from ..physics import (
    interaction_constant,
    wavelength,
)
from . import msp_update as update
from .batches import adjacent_batches, neighbour_pairs
from .bright_field import check_disc_on_detector, start_defocus
from .params import MSPParams
from .state import MSPGeometry, choose_batch_size, initial_probe, make_geometry

#: px kept between a learned probe window and the object's edge on each side: a spare pixel
#: against the rounding of the window's corner floor(p) − n//2
_POSITION_MARGIN_PX = 1.0
#: adjacent slices' drift is registered on the scanned area when it spans at least this many
#: px along each axis, else on the whole object (too few pixels to register on)
_MIN_REGISTRATION_PX = 8


def _setup(scan: ScanData, params: MSPParams, dev: torch.device, seed: int) -> tuple[update.Setup, update.State]:
    """Geometry, batch size (checked against memory before the data are read), measured
    amplitudes, start probe and state, and the constants of the iteration."""
    check_disc_on_detector(scan.calibration, scan.detector_shape)
    geometry = make_geometry(scan, params)
    n_pos = scan.num_positions
    batch_size = choose_batch_size(params, geometry, n_pos, dev)
    cal = scan.calibration
    amplitudes = _measured_amplitudes(scan, dev)
    total_power = float(torch.sum(amplitudes**2))
    mean_counts = total_power / n_pos
    defocus, defocus_source = start_defocus(scan, params)
    probe = initial_probe(scan, geometry, params, defocus, mean_counts, dev)
    state = _start_state(params, geometry, probe, n_pos, dev)
    window = torch.tensor(geometry.window, device=dev)
    position_lo = window // 2 + _POSITION_MARGIN_PX
    register_lo, register_hi = _registration_area(geometry)
    provenance = {
        "engine": "msp",
        "params": params.to_dict(),
        "seed": int(seed),
        "batch_size": batch_size,
        "defocus_start": defocus,
        "defocus_source": defocus_source,
        "object_origin": [float(v) for v in geometry.origin],
        "start_positions": (state.positions.detach().cpu().numpy() * geometry.pixel_size).tolist(),
        "converged": False,
    }
    run = update.Setup(
        params=params,
        geometry=geometry,
        device=dev,
        sigma=float(interaction_constant(cal.energy_eV)),
        wavelength=float(wavelength(cal.energy_eV)),
        amplitudes=amplitudes,
        total_power=total_power,
        mean_counts=mean_counts,
        # the 2/3 antialias only where it lies beyond the detector's edge: on the detector's own
        # grid it would cut every measured pixel past 2/3 of the edge (2.6-19 % of the counts)
        band_limit=geometry.oversampling >= 2,
        batches=adjacent_batches(geometry.positions_px, batch_size),
        pairs=torch.as_tensor(neighbour_pairs(geometry.positions_px), device=dev),
        window_px=window,
        object_px=torch.tensor(geometry.object_shape, device=dev),
        max_step_px=params.max_position_step / geometry.pixel_size,
        position_lo=position_lo,
        position_hi=torch.tensor(geometry.object_shape, device=dev) - position_lo - _POSITION_MARGIN_PX,
        register_lo=register_lo,
        register_hi=register_hi,
        provenance=provenance,
    )
    return run, state


def _measured_amplitudes(scan: ScanData, dev: torch.device) -> torch.Tensor:
    """√counts ``(n, K, K)`` of the patterns, checked (finite, with counts) and with negative
    counts set to 0 (one warning)."""
    patterns, negative = checked_counts(torch.as_tensor(scan.patterns(), device=dev), "intensities")
    warn_negative(negative, patterns.numel(), "intensities")
    return torch.sqrt(patterns)


def _start_state(params: MSPParams, geometry: MSPGeometry, probe: torch.Tensor, n_pos: int, dev) -> update.State:
    """Zero object (V·Å), the start probe, positions (px), tilt (mrad), thickness (Å), and a
    zero tilt map (mrad)."""
    S, (H, W) = params.num_slices, geometry.object_shape
    return update.State(
        object=torch.zeros((S, H, W), dtype=torch.complex64, device=dev),
        probe=probe,
        positions=torch.as_tensor(geometry.positions_px, dtype=torch.float32, device=dev).clone(),
        tilt=torch.as_tensor(params.tilt_mrad, dtype=torch.float32, device=dev).clone(),
        thickness=torch.tensor(float(params.slice_thickness), dtype=torch.float32, device=dev),
        tilt_map=torch.zeros((n_pos, 2), dtype=torch.float32, device=dev),
    )


def _registration_area(geometry: MSPGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Pixel bounds (lo, hi) of the scanned area, on which the drift of adjacent slices is
    measured; the whole object when the scan spans fewer than ``_MIN_REGISTRATION_PX``."""
    lo = np.floor(geometry.positions_px.min(0)).astype(int)
    hi = np.ceil(geometry.positions_px.max(0)).astype(int) + 1
    if np.any(hi - lo < _MIN_REGISTRATION_PX):
        return np.zeros(2, int), np.array(geometry.object_shape)
    return lo, hi
