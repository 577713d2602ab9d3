"""napari reader (npe2 ``napari_get_reader``) for projects, 4D-STEM ``.npy`` and MRC files.

Pure functions: ``read_path(path)`` returns napari layer-data tuples and needs no viewer.
File parsing is delegated to :func:`napari_ptychotomo.load`; a 4D-STEM scan opens as its
virtual bright field and mean diffraction pattern (never as a 4D hyper-stack), a project as
every result in it (see :mod:`.layers`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .layers import LayerData, layers_for

__all__ = ["napari_get_reader", "read_path", "read_project", "read_stem_numpy", "read_mrc", "DEFAULT_CALIBRATION"]

#: Calibration used (with a warning) when a ``.npy`` file comes without one.
DEFAULT_CALIBRATION = {"energy_eV": 300e3, "semiangle_mrad": 25.0, "detector_sampling_mrad": 1.0, "scan_step": 1.0}

_MRC = (".mrc", ".rec", ".map", ".st", ".ali")


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".ptycho.h5"):
        return "project"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(_MRC):
        return "mrc"
    return None


def napari_get_reader(path: Any) -> Callable[[Any], list[LayerData]] | None:
    """npe2 reader hook: :func:`read_path` for files this plugin understands, else ``None``.

    ``.npy`` files are claimed only when they hold a 3D or 4D array (a stack of diffraction
    patterns); other arrays are left to napari's built-in reader.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        return None
    for item in paths:
        item = Path(item)
        kind = _kind(item)
        if kind is None:
            return None
        if kind == "npy":
            try:
                ndim = np.load(item, mmap_mode="r", allow_pickle=False).ndim
            except Exception:  # noqa: BLE001 - damaged headers raise SyntaxError and kin
                continue  # unreadable (empty, damaged, no permission): load() says why
            if ndim not in (3, 4):
                return None
    return read_path


def read_path(path: Any) -> list[LayerData]:
    """Layers of one file or of a list of files (concatenated).

    Raises :class:`~napari_ptychotomo.io.PtychoFormatError` naming the file for anything
    wrong with it (napari shows the message).
    """
    from ..io import PtychoFormatError

    if not isinstance(path, (str, Path)):
        return [layer for item in path for layer in read_path(item)]
    path = Path(path)
    try:
        return _read_one(path)
    except PtychoFormatError:
        raise
    except (ValueError, OSError, EOFError, KeyError, MemoryError) as exc:
        raise PtychoFormatError(path, str(exc)) from None


def _read_one(path: Path) -> list[LayerData]:
    kind = _kind(path)
    if kind == "project":
        return read_project(path)
    if kind == "npy":
        return read_stem_numpy(path)
    if kind == "mrc":
        return read_mrc(path)
    raise ValueError("not a file napari-ptychotomo reads (.ptycho.h5, .npy, .mrc)")


def read_project(path: Any) -> list[LayerData]:
    """A ``.ptycho.h5`` file (lazy): every object in it as layers."""
    from ..io import load

    return layers_for(load(path))


def read_stem_numpy(path: Any) -> list[LayerData]:
    """A 4D-STEM ``.npy`` file with its ``<stem>.json`` calibration sidecar; missing
    calibration values are taken from :data:`DEFAULT_CALIBRATION` with a warning."""
    from ..io import load
    from ..io.scan_input import read_sidecar_json

    path = Path(path)
    given = read_sidecar_json(path)
    missing = {k: v for k, v in DEFAULT_CALIBRATION.items() if given.get(k) is None}
    if given.get("positions") is not None:
        missing.pop("scan_step", None)
    if missing:
        warnings.warn(
            f"{path.name}: no calibration for {', '.join(missing)} (give it in "
            f"{path.name.split('.')[0]}.json next to the file); showing it with "
            f"{missing}, which are placeholders, not measurements",
            UserWarning,
            stacklevel=2,
        )
    return layers_for(load(path, **missing))


def read_mrc(path: Any) -> list[LayerData]:
    """An MRC volume (``Volume (<file stem>)``, voxel size from the header) or an image /
    tilt stack (tilt as the slider axis, pixel size from the header)."""
    import mrcfile

    from ..data import Volume
    from ..io import load

    path = Path(path)
    stem = path.name.split(".")[0]
    obj = load(path)
    if isinstance(obj, Volume):
        return layers_for(obj, stem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.open(path, header_only=True, permissive=True) as mrc:
            pixel = float(mrc.voxel_size.x) or 1.0
    data = np.asarray(obj)
    labels = ("tilt", "y", "x")[-data.ndim :]
    scale = (1.0,) * (data.ndim - 2) + (pixel, pixel)
    units = ("pixel",) * (data.ndim - 2) + ("angstrom", "angstrom")
    return [
        (
            data,
            {
                "name": stem,
                "scale": scale,
                "axis_labels": labels,
                "units": units,
                "colormap": "gray",
                "metadata": {"result": data, "kind": "stack"},
            },
            "image",
        )
    ]
