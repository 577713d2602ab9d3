"""Reading and writing every data object; the file extension picks the format.

=====================================  ==============================  =====================
extension                              read                            write
=====================================  ==============================  =====================
``.ptycho.h5``                         any data object / Project       any data object /
                                       (lazy 4D-STEM)                  Project (atomic)
``.h5`` ``.hdf5`` ``.emd``             project, or py4DSTEM / EMD 1.0  –
                                       datacube -> ScanData (lazy)
``.npy`` ``.npz``                      4D array -> ScanData (+ JSON    ScanData (+ JSON),
                                       sidecar / keywords)             ndarray
``.mrc`` ``.rec`` ``.map`` ``.st``     Volume; image stack -> ndarray  Volume, ndarray
``.ali``
``.tif`` ``.tiff``                     Volume; image stack -> ndarray  Volume, ndarray
``.xyz`` ``.extxyz``                   Atoms                           Atoms (extended XYZ)
``.csv``                               Atoms                           Atoms
``.mib`` ``.xml``/``.raw`` (EMPAD)     ScanData via rosettasciio       –
``.dm3`` ``.dm4`` ``.blo`` ...         (optional dependency)
folder                                 TiltSeries (load_tilt_series)   –
=====================================  ==============================  =====================

Every bad input raises :class:`PtychoFormatError` (a ``ValueError``) naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data import ScanData, Volume
from .errors import PtychoFormatError
from .lazy import LazyDataset
from .native import append_result, close, load_native, open_project, save_native, sidecar_path
from .tilt_series_files import load_tilt_series, read_angles

__all__ = [
    "load",
    "save",
    "load_tilt_series",
    "append_result",
    "open_project",
    "close",
    "PtychoFormatError",
    "LazyDataset",
    "sidecar_path",
    "read_angles",
    "is_supported",
    "may_hold_scans",
    "READ_EXTENSIONS",
    "WRITE_EXTENSIONS",
]

_HDF5 = (".h5", ".hdf5", ".hdf", ".emd")
_MRC = (".mrc", ".rec", ".map", ".st", ".ali")
_TIFF = (".tif", ".tiff")
_XYZ = (".xyz", ".extxyz")


def _detector_extensions() -> dict[str, str]:
    from .stem_detectors import DETECTOR_EXTENSIONS

    return DETECTOR_EXTENSIONS


READ_EXTENSIONS = (
    ".ptycho.h5",
    *_HDF5,
    ".npy",
    ".npz",
    *_MRC,
    *_TIFF,
    *_XYZ,
    ".csv",
    ".mib",
    ".xml",
    ".raw",
    ".dm3",
    ".dm4",
    ".blo",
    ".hspy",
    ".tvips",
    ".mrcz",
    ".zspy",
)
WRITE_EXTENSIONS = (".ptycho.h5", ".npy", *_MRC, *_TIFF, *_XYZ, ".csv")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".ptycho.h5"):
        return ".ptycho.h5"
    if name.endswith(".ptycho-results.h5"):
        return ".ptycho-results.h5"
    return path.suffix.lower()


def is_supported(path: Any) -> bool:
    """True when :func:`load` knows the file's extension."""
    return _suffix(Path(path)) in READ_EXTENSIONS


def may_hold_scans(path: Any) -> bool:
    """True unless the file's extension is a volume's or an atom list's (MRC, TIFF, XYZ,
    CSV): its reader may give 4D-STEM data and takes ``validate``."""
    return _suffix(Path(path)) not in (*_MRC, *_TIFF, *_XYZ, ".csv")


def load(path: Any, **kwargs: Any) -> Any:
    """Read a file (or a folder of scans) into the matching data object.

    Parameters
    ----------
    path : file or folder; see the table in this module's docstring.
    kwargs : passed to the reader: ``lazy``, ``validate`` (``"sample"``, ``"full"``,
        ``"none"``), ``as_project`` for projects; calibration (``energy_eV``,
        ``semiangle_mrad``, ``detector_sampling_mrad``, ``defocus``, ``scan_step``,
        ``tilt_deg``, ``positions``) for 4D-STEM files; ``voxel_size`` (Å) and
        ``as_array`` for MRC / TIFF; ``dataset`` for EMD files with several datacubes;
        ``angles`` for a folder.

    Raises
    ------
    PtychoFormatError : unsupported extension (the message lists the supported ones),
        missing, truncated or corrupt file, wrong shapes, NaN / inf / negative counts,
        missing calibration, tilt count not matching the angles.
    """
    path = Path(path)
    if path.is_dir():
        return load_tilt_series(path, **kwargs)
    suffix = _suffix(path)
    if suffix == ".ptycho.h5":
        return load_native(path, **kwargs)
    if suffix == ".ptycho-results.h5":
        raise PtychoFormatError(
            path, "this is the results sidecar of a project; open the project's .ptycho.h5 file next to it instead"
        )
    if suffix in _HDF5:
        return _load_hdf5(path, **kwargs)
    if kwargs.get("as_project"):
        raise _not_a_project(path)
    if suffix in (".npy", ".npz"):
        from .stem_numpy import load_stem_numpy

        return load_stem_numpy(path, **kwargs)
    if suffix in _MRC:
        from .volume_files import load_mrc

        return load_mrc(path, **kwargs)
    if suffix in _TIFF:
        from .volume_files import load_tiff

        return load_tiff(path, **kwargs)
    if suffix in _XYZ or suffix == ".csv":
        from .atom_files import load_csv, load_xyz

        return (load_csv if suffix == ".csv" else load_xyz)(path, **kwargs)
    if suffix in _detector_extensions():
        from .stem_detectors import load_detector

        return load_detector(path, **kwargs)
    raise PtychoFormatError(
        path,
        f"unsupported file type {suffix or '(no extension)'!r}; "
        f"supported: {', '.join(READ_EXTENSIONS)} or a folder of scans",
    )


def _not_a_project(path: Path) -> PtychoFormatError:
    """A data file where a project was asked for (the pipeline's run.project)."""
    return PtychoFormatError(
        path,
        "not a napari-ptychotomo project (.ptycho.h5) but a data file; import it into a new "
        f"project first: a run configuration with input.path = {str(path)!r} and run.project = "
        "'<name>.ptycho.h5' (ptychotomo config --template)",
    )


def _load_hdf5(path: Path, **kwargs: Any) -> Any:
    from .lazy import open_h5
    from .stem_emd import is_emd, load_emd

    with open_h5(path) as fh:
        native = "format_version" in fh.attrs and "members" in fh.attrs
        emd = not native and is_emd(fh)
    if native:
        return load_native(path, **kwargs)
    if (emd or path.suffix.lower() == ".emd") and kwargs.get("as_project"):
        raise _not_a_project(path)
    if emd:
        return load_emd(path, **kwargs)
    if path.suffix.lower() == ".emd":  # Velox / FEI EMD: a different format of the same name
        from .stem_detectors import load_detector

        return load_detector(path, **kwargs)
    raise PtychoFormatError(
        path,
        "HDF5 file is neither a napari-ptychotomo project (no "
        "format_version attribute) nor a py4DSTEM / EMD 1.0 file (no "
        "emd_group_type attributes)",
    )


def save(obj: Any, path: Any, **kwargs: Any) -> Path:
    """Write a data object; the extension of ``path`` picks the format.

    ``.ptycho.h5`` takes any data object or a Project (``name=`` keys a single result;
    a result saved to an existing project is added to it without rewriting its raw data);
    ``.mrc`` / ``.tif`` a Volume or an ndarray image stack (``voxel_size=`` in Å for
    arrays); ``.xyz`` / ``.csv`` Atoms (``cell=`` the box in Å for XYZ); ``.npy`` a
    ScanData (with a ``.json`` calibration sidecar) or an ndarray. Writes are atomic.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ".ptycho.h5":
        return save_native(obj, path, **kwargs)
    if suffix in _MRC or suffix in _TIFF:
        from .volume_files import save_mrc, save_tiff

        if not isinstance(obj, (Volume, np.ndarray)):
            raise PtychoFormatError(
                path, f"{suffix} holds a Volume or an image stack, not a {type(obj).__name__}; use .ptycho.h5"
            )
        return (save_mrc if suffix in _MRC else save_tiff)(obj, path, **kwargs)
    if suffix in _XYZ:
        from .atom_files import save_xyz

        return save_xyz(obj, path, **kwargs)
    if suffix == ".csv":
        from .atom_files import save_csv

        return save_csv(obj, path, **kwargs)
    if suffix == ".npy":
        from .stem_numpy import save_array, save_stem_numpy

        if isinstance(obj, ScanData):
            return save_stem_numpy(obj, path)
        if isinstance(obj, np.ndarray):
            return save_array(obj, path)
        raise PtychoFormatError(path, f".npy holds a ScanData or an ndarray, not a {type(obj).__name__}")
    raise PtychoFormatError(
        path, f"cannot write {suffix or '(no extension)'!r}; supported: {', '.join(WRITE_EXTENSIONS)}"
    )
