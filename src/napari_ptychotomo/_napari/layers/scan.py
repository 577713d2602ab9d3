"""Layers of the measured data: a 4D-STEM scan or tilt series (virtual bright field,
mean diffraction) and a plane-wave (HRTEM) defocus series.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...data import ScanData, TiltSeries
from ..scan_views import scan_step_angstrom, scan_views
from .common import ANGSTROM, INDEX, MRAD, LayerData, _meta


def scan_layers(data: ScanData | TiltSeries, diffraction: bool = False) -> list[LayerData]:
    """Virtual bright-field image(s) and mean diffraction pattern(s) of a scan or series.

    A series whose scans share one raster becomes ``Virtual bright field``
    ``(n_tilts, Ny, Nx)`` and ``Mean diffraction`` ``(n_tilts, Ky, Kx)`` with the tilt as
    the slider axis; otherwise one pair of layers per tilt (``… [tilt k]``). Scan axes are
    scaled by the scan step in Å, detector axes by the detector sampling in mrad.

    The diffraction layers only with ``diffraction=True``: napari has one world and one
    set of units for all layers, so a pattern in mrad beside images in Å makes the units
    inconsistent (napari then ignores them and says so on every redraw) and ~100 mrad
    would dwarf an image a few Å across. The mean pattern is kept in the bright-field
    layer's ``metadata["mean_diffraction"]`` (with ``"detector_sampling_mrad"``).
    Plane-wave (defocus) series show their images ``(n_defocus, ny, nx)`` per tilt.
    """
    scans = list(data.scans) if isinstance(data, TiltSeries) else [data]
    angles = (
        [float(a) for a in np.asarray(data.angles_deg, dtype=float)]
        if isinstance(data, TiltSeries)
        else [float(data.tilt_deg)]
    )
    if not all(isinstance(s, ScanData) for s in scans):
        return _defocus_layers(data, scans, angles)
    views = [scan_views(s) for s in scans]
    steps = [scan_step_angstrom(s) for s in scans]
    shapes = {(v[0].shape, v[1].shape, st) for v, st in zip(views, steps)}
    common = {"metadata": _meta(data, "scan", angles_deg=angles)}
    if len(scans) > 1 and len(shapes) == 1 and views[0][0].ndim == 2:
        (dy, dx), dk = steps[0], scans[0].calibration.detector_sampling_mrad
        bright = np.stack([v[0] for v in views])
        mean = np.stack([v[1] for v in views])
        bright_meta = {
            "metadata": _meta(data, "scan", angles_deg=angles, mean_diffraction=mean, detector_sampling_mrad=dk)
        }
        out: list[LayerData] = [
            (
                bright,
                {
                    "name": "Virtual bright field",
                    "scale": (1.0, dy, dx),
                    "axis_labels": ("tilt", "y", "x"),
                    "units": (INDEX, ANGSTROM, ANGSTROM),
                    "colormap": "gray",
                    **bright_meta,
                },
                "image",
            )
        ]
        if diffraction:
            out.append(
                (
                    mean,
                    {
                        "name": "Mean diffraction",
                        "scale": (1.0, dk, dk),
                        "axis_labels": ("tilt", "k_y", "k_x"),
                        "units": (INDEX, MRAD, MRAD),
                        "colormap": "magma",
                        "gamma": 0.5,
                        "visible": False,
                        **common,
                    },
                    "image",
                )
            )
        return out
    layers: list[LayerData] = []
    for k, (scan, (bright, mean), (dy, dx)) in enumerate(zip(scans, views, steps)):
        suffix = f" [tilt {k}]" if len(scans) > 1 else ""
        dk = scan.calibration.detector_sampling_mrad
        bright_meta = {
            "metadata": _meta(data, "scan", angles_deg=angles, mean_diffraction=mean, detector_sampling_mrad=dk)
        }
        if bright.ndim == 2:
            layers.append(
                (
                    bright,
                    {
                        "name": f"Virtual bright field{suffix}",
                        "scale": (dy, dx),
                        "axis_labels": ("y", "x"),
                        "units": (ANGSTROM, ANGSTROM),
                        "colormap": "gray",
                        **bright_meta,
                    },
                    "image",
                )
            )
        else:  # scattered positions: one point per pattern, coloured by its bright field
            layers.append(
                (
                    scan.positions_angstrom(),
                    {
                        "name": f"Virtual bright field{suffix}",
                        "features": {"bright_field": bright},
                        "face_color": "bright_field",
                        "face_colormap": "gray",
                        "size": dy,
                        "axis_labels": ("y", "x"),
                        "units": (ANGSTROM, ANGSTROM),
                        **bright_meta,
                    },
                    "points",
                )
            )
        if diffraction:
            layers.append(
                (
                    mean,
                    {
                        "name": f"Mean diffraction{suffix}",
                        "scale": (dk, dk),
                        "axis_labels": ("k_y", "k_x"),
                        "units": (MRAD, MRAD),
                        "colormap": "magma",
                        "gamma": 0.5,
                        "visible": False,
                        **common,
                    },
                    "image",
                )
            )
    return layers


def _defocus_layers(data: Any, series: list[Any], angles: list[float]) -> list[LayerData]:
    """One ``Defocus images`` layer (tilt, defocus, y, x) when every tilt has the same
    stack shape and pixel size, else one ``Defocus images [tilt k]`` per tilt."""

    def limits(images: Any) -> tuple[float, float]:
        # the images are near 1 with a few % of contrast and a bright edge or two: the
        # 0.5-99.5 % range shows the specimen where min-max would show a flat grey
        low, high = np.percentile(np.asarray(images, dtype=np.float32), [0.5, 99.5])
        return (float(low), float(high)) if high > low else (float(low), float(low) + 1.0)

    shapes = {(tuple(np.shape(item.images)), float(item.pixel_size)) for item in series}
    if len(series) > 1 and len(shapes) == 1:
        p = float(series[0].pixel_size)
        return [
            (
                np.stack([np.asarray(item.images) for item in series]),
                {
                    "name": "Defocus images",
                    "scale": (1.0, 1.0, p, p),
                    "axis_labels": ("tilt", "defocus", "y", "x"),
                    "units": (INDEX, INDEX, ANGSTROM, ANGSTROM),
                    "colormap": "gray",
                    "contrast_limits": limits([item.images for item in series]),
                    "metadata": _meta(data, "defocus", angles_deg=angles),
                },
                "image",
            )
        ]
    layers = []
    for k, item in enumerate(series):
        p = float(item.pixel_size)
        layers.append(
            (
                np.asarray(item.images),
                {
                    "name": f"Defocus images [tilt {k}]",
                    "scale": (1.0, p, p),
                    "axis_labels": ("defocus", "y", "x"),
                    "units": (INDEX, ANGSTROM, ANGSTROM),
                    "colormap": "gray",
                    "contrast_limits": limits(item.images),
                    "metadata": _meta(data, "defocus", angles_deg=angles),
                },
                "image",
            )
        )
    return layers
