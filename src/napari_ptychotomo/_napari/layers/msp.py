"""Layers of a multislice-ptychography (MSP) result: per-slice phase, probe modes,
positions and tilt map, and the slice-summed phase the MSP and inspect widgets show.
"""

from __future__ import annotations

import numpy as np

from ...data import MSPResult
from .common import ANGSTROM, LayerData, _meta


def _raster(positions: np.ndarray, scan_shape: tuple[int, int] | None):
    """(translate, step) in Å of positions lying on a ``scan_shape`` raster, else None."""
    if scan_shape is None or int(np.prod(scan_shape)) != len(positions):
        return None
    ny, nx = scan_shape
    grid = np.asarray(positions, dtype=np.float64).reshape(ny, nx, 2)
    dy = np.median(np.diff(grid[:, :, 0], axis=0)) if ny > 1 else np.nan
    dx = np.median(np.diff(grid[:, :, 1], axis=1)) if nx > 1 else np.nan
    dy, dx = (dx if not dy > 0 else dy), (dy if not dx > 0 else dx)
    if not (dy > 0 and dx > 0):
        return None
    return tuple(float(v) for v in grid[0, 0]), (float(dy), float(dx))


def msp_layers(result: MSPResult, tilt_index: int = 0) -> list[LayerData]:
    """Layers of one multislice-ptychography result.

    ``MSP phase [tilt k]``: per-slice phase σ·Re V ``(n_slices, ny, nx)`` in rad, z scaled
    by the slice thickness; ``MSP probe [tilt k]``: the probe-mode amplitudes side by side
    ``(Ky, n_modes·Kx)`` (2D, so it never shares a slider with z); ``MSP positions [tilt
    k]``: probe positions (Points, Å); when a tilt map is present, ``MSP tilt map θx [tilt
    k]`` and ``MSP tilt map θy [tilt k]``: ``(Ny, Nx)`` in mrad on the scan raster with a
    diverging colormap centred on zero (Points coloured by θx off a raster).
    """
    from ...optics import interaction_constant, phase_shift

    sigma = float(interaction_constant(result.energy_eV))
    p, dz = float(result.pixel_size), float(result.slice_thickness)
    tag = f" [tilt {tilt_index}]"
    meta = _meta(result, "msp", tilt_index=tilt_index, tilt_deg=float(result.tilt_deg))
    phase = phase_shift(np.asarray(result.object), sigma).astype(np.float32)
    modes = np.abs(np.asarray(result.probe)).astype(np.float32)
    probe = np.concatenate(list(modes), axis=-1)
    positions = np.asarray(result.positions, dtype=np.float64)
    plane = {"axis_labels": ("y", "x"), "units": (ANGSTROM, ANGSTROM)}
    layers: list[LayerData] = [
        (
            phase,
            {
                "name": f"MSP phase{tag}",
                "scale": (dz, p, p),
                "axis_labels": ("z", "y", "x"),
                "units": (ANGSTROM, ANGSTROM, ANGSTROM),
                "colormap": "gray",
                "metadata": meta,
            },
            "image",
        ),
        (
            probe,
            {"name": f"MSP probe{tag}", "scale": (p, p), "colormap": "inferno", "metadata": meta, **plane},
            "image",
        ),
        (
            positions,
            {
                "name": f"MSP positions{tag}",
                "size": max(2 * p, 0.1),
                "face_color": "cyan",
                "border_width": 0.0,
                "opacity": 0.6,
                "metadata": meta,
                **plane,
            },
            "points",
        ),
    ]
    if result.tilt_map is not None:
        tilt_map = np.asarray(result.tilt_map, dtype=np.float32)
        limit = float(np.max(np.abs(tilt_map))) or 1.0
        raster = _raster(positions, result.scan_shape)
        if raster is None:
            layers.append(
                (
                    positions,
                    {
                        "name": f"MSP tilt map{tag}",
                        "size": max(4 * p, 0.2),
                        "features": {"theta_x_mrad": tilt_map[:, 0], "theta_y_mrad": tilt_map[:, 1]},
                        "face_color": "theta_x_mrad",
                        "face_colormap": "PiYG",
                        "face_contrast_limits": (-limit, limit),
                        "metadata": meta,
                        **plane,
                    },
                    "points",
                )
            )
            return layers
        translate, step = raster
        grid = tilt_map.reshape(*result.scan_shape, 2)
        for axis, label in enumerate(("θx", "θy")):
            layers.append(
                (
                    grid[..., axis],
                    {
                        "name": f"MSP tilt map {label}{tag}",
                        "scale": step,
                        "translate": translate,
                        "colormap": "PiYG",
                        "contrast_limits": (-limit, limit),
                        "metadata": meta,
                        **plane,
                    },
                    "image",
                )
            )
    return layers


def summed_phase_layer(
    phase: np.ndarray, pixel_size: float, tilt_index: int, result: MSPResult | None = None
) -> LayerData:
    """``MSP summed phase [tilt k]``: the object phase summed over slices ``(ny, nx)`` in
    rad (σ · Σ Re V), 2D at the object pixel size in Å."""
    p = float(pixel_size)
    return (
        np.asarray(phase, dtype=np.float32),
        {
            "name": f"MSP summed phase [tilt {tilt_index}]",
            "scale": (p, p),
            "axis_labels": ("y", "x"),
            "units": (ANGSTROM, ANGSTROM),
            "colormap": "gray",
            "metadata": _meta(result, "msp" if result is not None else "msp-preview", tilt_index=tilt_index),
        },
        "image",
    )
