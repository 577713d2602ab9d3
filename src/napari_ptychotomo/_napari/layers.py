"""Data objects → napari layer-data tuples ``(data, kwargs, layer_type)``.

Pure functions, no napari import: readers, ``show`` and the widgets all build their layers
here, so every result looks the same wherever it comes from. Every layer has a physical
``scale`` (Å for real space, mrad for diffraction), ``axis_labels``, ``units`` and the data
object it shows in ``metadata["result"]`` (``metadata["kind"]`` names what it is).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import Alignment, Atoms, MSPResult, Project, Resolution, ScanData, TiltSeries, Volume
from .scan_views import scan_step_angstrom, scan_views

__all__ = [
    "LayerData",
    "scan_layers",
    "msp_layers",
    "summed_phase_layer",
    "volume_layers",
    "atoms_layers",
    "project_layers",
    "layers_for",
    "SPECIES_COLOURS",
]

LayerData = tuple[Any, dict[str, Any], str]

ANGSTROM = "angstrom"
MRAD = "milliradian"
INDEX = "pixel"

#: RGBA colour of species class 0, 1, 2, ... (light to heavy), cycling.
SPECIES_COLOURS = np.array(
    [
        [0.40, 0.76, 1.00, 1.0],
        [1.00, 0.35, 0.25, 1.0],
        [1.00, 0.85, 0.20, 1.0],
        [0.45, 0.90, 0.45, 1.0],
        [0.80, 0.45, 1.00, 1.0],
        [0.95, 0.95, 0.95, 1.0],
    ],
    dtype=np.float32,
)


#: RGBA colour of an element (Jmol-like), so traced and true atoms of one element match
ELEMENT_COLOURS = {
    "H": (1.00, 1.00, 1.00),
    "C": (0.56, 0.56, 0.56),
    "N": (0.19, 0.31, 0.97),
    "O": (1.00, 0.20, 0.15),
    "Al": (0.75, 0.65, 0.65),
    "Si": (0.94, 0.78, 0.63),
    "Ti": (0.75, 0.76, 0.78),
    "Sr": (0.00, 1.00, 0.00),
    "Pt": (0.95, 0.85, 0.30),
    "Au": (1.00, 0.82, 0.14),
    "Pd": (0.00, 0.41, 0.52),
    "Ag": (0.75, 0.75, 0.75),
    "Fe": (0.88, 0.40, 0.20),
    "Cu": (0.78, 0.50, 0.20),
    "Ce": (1.00, 1.00, 0.78),
}


def atom_colours(atoms: Atoms) -> np.ndarray:
    """(n, 4) RGBA per atom: by element where the atoms have element names (so a traced
    and a true set of the same element look alike), else by species class."""
    species = np.asarray(atoms.species, dtype=int).reshape(-1)
    colours = (
        SPECIES_COLOURS[np.mod(species, len(SPECIES_COLOURS))].copy() if len(species) else np.zeros((0, 4), np.float32)
    )
    if atoms.names:
        for k, symbol in enumerate(atoms.symbols()):
            if symbol in ELEMENT_COLOURS:
                colours[k, :3] = ELEMENT_COLOURS[symbol]
    return colours


def _meta(obj: Any, kind: str, **extra: Any) -> dict[str, Any]:
    return {"result": obj, "kind": kind, **extra}


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
    from ..optics import interaction_constant, phase_shift

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


def volume_layers(volume: Volume, name: str = "linear") -> list[LayerData]:
    """``Volume (name)`` ``(nz, ny, nx)`` scaled by the voxel size in Å and placed at its
    origin; a complex volume adds ``Volume (name, absorption)`` for its imaginary part."""
    data = volume.data
    s = float(volume.voxel_size)
    common = {
        "scale": (s, s, s),
        "translate": tuple(float(v) for v in np.asarray(volume.origin)),
        "axis_labels": ("z", "y", "x"),
        "units": (ANGSTROM, ANGSTROM, ANGSTROM),
    }
    meta = _meta(volume, "volume", volume_name=name)
    if str(volume.provenance.get("axes", "")).startswith("tilt"):
        # a projection stack (tilt, y, x): the tilt is an index, not a length
        origin = np.asarray(volume.origin, dtype=float)
        return [
            (
                np.asarray(data),
                {
                    "name": name[:1].upper() + name[1:],
                    "colormap": "gray",
                    "scale": (1.0, s, s),
                    "translate": (0.0, *map(float, origin[1:])),
                    "axis_labels": ("tilt", "y", "x"),
                    "units": (INDEX, ANGSTROM, ANGSTROM),
                    "metadata": _meta(volume, "projections", volume_name=name),
                },
                "image",
            )
        ]
    if np.iscomplexobj(np.empty(0, dtype=data.dtype)):
        values = np.asarray(data)
        return [
            (
                values.real.astype(np.float32),
                {"name": f"Volume ({name})", "colormap": "gray", "metadata": meta, **common},
                "image",
            ),
            (
                values.imag.astype(np.float32),
                {"name": f"Volume ({name}, absorption)", "colormap": "magma", "metadata": meta, **common},
                "image",
            ),
        ]
    return [(data, {"name": f"Volume ({name})", "colormap": "gray", "metadata": meta, **common}, "image")]


def atoms_layers(atoms: Atoms, name: str = "traced", translate=(0.0, 0.0, 0.0)) -> list[LayerData]:
    """``Atoms (name)``: Points at the atom positions (z, y, x) in Å, size 1 Å + 0.3 Å per
    species class, colour by species (:data:`SPECIES_COLOURS`); features ``species``,
    ``element``, ``intensity`` and ``width`` (Å, NaN when not fitted)."""
    positions = np.asarray(atoms.positions, dtype=np.float64).reshape(-1, 3)
    n = len(positions)
    species = np.asarray(atoms.species, dtype=int).reshape(n)
    nan = np.full(n, np.nan)
    features = {
        "species": species,
        "element": np.asarray(atoms.symbols(), dtype=object),
        "intensity": nan if atoms.intensities is None else np.asarray(atoms.intensities, float),
        "width": nan if atoms.widths is None else np.asarray(atoms.widths, float),
    }
    colours = atom_colours(atoms) if n else np.zeros((0, 4))
    return [
        (
            positions,
            {
                "name": f"Atoms ({name})",
                "ndim": 3,
                "features": features,
                "face_color": colours,
                # the element as text, off until "display text" is ticked (on, it would tick the
                # box with nothing to show when the string is empty)
                "text": {"string": "{element}", "visible": False, "size": 8, "color": "white"},
                "size": 1.0 + 0.3 * species if n else 1.0,
                "border_width": 0.0,
                "translate": tuple(float(v) for v in translate),
                "axis_labels": ("z", "y", "x"),
                "units": (ANGSTROM, ANGSTROM, ANGSTROM),
                "metadata": _meta(atoms, "atoms", atoms_name=name),
            },
            "points",
        )
    ]


def project_layers(project: Project) -> list[LayerData]:
    """Every layer of a project: the series, each MSP result, each volume (with the
    alignment and the resolution of the same name in its metadata) and each atom set
    (placed in the frame of the volume of the same name, else of the first volume)."""
    layers: list[LayerData] = []
    if project.series is not None:
        layers += scan_layers(project.series)
        for _data, kwargs, _type in layers:
            kwargs["metadata"]["alignment"] = project.alignment
    for k in sorted(project.msp):
        layers += msp_layers(project.msp[k], tilt_index=k)
    first = next(iter(project.volumes.values()), None)
    for name, volume in project.volumes.items():
        for data, kwargs, kind in volume_layers(volume, name):
            kwargs["metadata"]["alignment"] = project.alignment
            resolution = project.resolution.get(name)
            if resolution is None and len(project.volumes) == len(project.resolution) == 1:
                resolution = next(iter(project.resolution.values()))
            kwargs["metadata"]["resolution"] = resolution
            layers.append((data, kwargs, kind))
    for name, atoms in project.atoms.items():
        frame = project.volumes.get(name, first)
        origin = (0.0, 0.0, 0.0) if frame is None else np.asarray(frame.origin, dtype=float)
        layers += atoms_layers(atoms, name, translate=origin)
    _latest_visible(layers)
    return layers


#: volumes by pipeline stage, latest first
LATEST_VOLUMES = ("end-to-end", "linear", "aligned (low resolution)")


def _latest_visible(layers: list[LayerData]) -> None:
    """Leave visible only the atoms traced last and the volume they were traced in, else
    a project's latest volume (its real part); without a volume, the last MSP phase, else
    the raw data.
    The rest stays in the layer list, hidden: 31 overlapping layers show nothing."""

    def kind(item: LayerData) -> str:
        return item[1].get("metadata", {}).get("kind", "")

    volumes = {
        item[1]["metadata"].get("volume_name"): item
        for item in layers
        if kind(item) == "volume" and not item[1]["name"].endswith(", absorption)")
    }
    atoms = [item for item in layers if kind(item) == "atoms"]
    traced_in = [item[1]["metadata"].get("atoms_name") for item in atoms]
    # atom tracing is the last step: its atoms with the volume they were traced in (atoms
    # over another volume would sit in the wrong frame); else the latest volume
    latest = next((name for name in reversed(traced_in) if name in volumes), None) or next(
        (name for name in LATEST_VOLUMES if name in volumes), next(iter(volumes), None)
    )
    keep: list[LayerData] = []
    if latest is not None:
        keep.append(volumes[latest])
        keep += [item for item in atoms if item[1]["metadata"].get("atoms_name") == latest]
    else:
        phases = [item for item in layers if item[1]["name"].startswith("MSP phase")]
        keep += (phases or layers)[-1:]
    chosen = {id(item) for item in keep}
    for item in layers:
        item[1]["visible"] = id(item) in chosen


def layers_for(obj: Any, name: str | None = None) -> list[LayerData]:
    """Layers of any data object (``name`` names a volume or an atom set). Alignment and
    Resolution have no layer of their own: they travel in ``metadata`` (see
    :func:`project_layers`), so they give an empty list here."""
    if isinstance(obj, Project):
        return project_layers(obj)
    if isinstance(obj, (ScanData, TiltSeries)):
        return scan_layers(obj)
    if isinstance(obj, MSPResult):
        return msp_layers(obj, tilt_index=int(name) if name is not None else 0)
    if isinstance(obj, Volume):
        return volume_layers(obj, name or "linear")
    if isinstance(obj, Atoms):
        return atoms_layers(obj, name or "traced")
    if isinstance(obj, (Alignment, Resolution)):
        return []
    raise TypeError(
        f"cannot show a {type(obj).__name__}; expected a Project, ScanData, TiltSeries, "
        "MSPResult, Volume, Atoms, Alignment or Resolution"
    )
