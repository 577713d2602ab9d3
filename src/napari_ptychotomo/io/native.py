"""The native project file ``.ptycho.h5``: save, load lazily, append results safely.

Layout (HDF5 ≥ 1.10 object headers, so all metadata is checksummed)::

    /                         root = the Project; attributes format_version, creator,
                              uuid, created, root_object, ptycho_type="Project",
                              members (JSON: field order and type tags)
    /series                   TiltSeries: angles_deg (deg), truth, scans/<k>
    /series/scans/<k>         ScanData: intensities (lazy, chunked per pattern), positions
                              (angstrom), tilt_deg, scan_shape, truth, calibration/
                              (attributes energy_eV, semiangle_mrad, ..., aberrations/)
                              or DefocusSeries: images, defocus (angstrom), pixel_size, ...
    /msp/<tilt index>         MSPResult
    /alignment                Alignment
    /volumes/<name>           Volume (data, halves/0, halves/1, origin, provenance)
    /resolution/<name>        Resolution
    /atoms/<name>             Atoms
    /provenance               dict
    /appended_results         external link to the results sidecar (may dangle)

Safe writes. Every file is written to a temporary file in the same folder, flushed,
fsync'ed and renamed over the target with :func:`os.replace`, so a writer killed at any
moment leaves either the old file or the new one, never a mixture.

Adding results (:func:`append_result`) never opens the project file for writing: HDF5 has
no journal, and a process killed while it updates a file in place can leave the metadata
half-written and the whole file (raw data included) unreadable. Instead the results live
in a sidecar ``<stem>.ptycho-results.h5`` next to the project, which holds the *complete*
current set of results (msp, alignment, volumes, resolution, atoms, provenance) and is
itself replaced atomically: earlier results are copied chunk by chunk (no
recompression), the raw intensities are never copied or touched. The sidecar records
the ``uuid`` of the project file it belongs to; when present and matching, its results
supersede those stored in the project file; a sidecar left from an older project file of
the same name is ignored. A full :func:`save_native` writes one self-contained file and
removes the sidecar. Keep the sidecar next to the project when moving it (or call
``save_native(load_native(path), new_path)`` to consolidate into one file). Appends are
not meant to run concurrently: two processes appending at once may lose one result
(the last rename wins); neither file is damaged. On Windows, a project cannot be
replaced while it is open (lazy arrays alive): close it first (:func:`close`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..data import Alignment, Atoms, MSPResult, Project, Resolution, ScanData, TiltSeries, Volume, check_negative_counts
from .errors import PtychoFormatError
from .h5tree import get_text, set_text
from .lazy import LazyDataset, open_h5
from .native_files import RESULT_FIELDS, atomic_h5, check, sidecar_path, unwrap, wrap
from .native_results import append_result, read_sidecar, write_results
from .native_schema import FORMAT_VERSION, Codec

__all__ = ["save_native", "load_native", "append_result", "sidecar_path", "close", "open_project", "RESULT_FIELDS"]


def save_native(obj: Any, path: Any, *, name: Any = None, compression: dict | None = None) -> Path:
    """Save a data object or a :class:`Project` as one self-contained ``.ptycho.h5`` file.

    When ``path`` is an existing project and ``obj`` is a result (MSPResult, Alignment,
    Volume, Resolution, Atoms) the result is added with :func:`append_result` instead
    (an existing file that holds just one object of ``obj``'s kind, as saving it alone
    wrote it, is replaced: saving a result again where it was saved overwrites it); a
    Project whose tilt series was loaded lazily from ``path`` itself and is unchanged is
    saved by rewriting the results sidecar only. Otherwise the file is written anew
    (atomically), copying raw intensities in bounded slabs or, from a file written by this
    package, chunk by chunk without recompression.

    Parameters
    ----------
    obj : Project, TiltSeries, ScanData, DefocusSeries, MSPResult, Alignment, Volume,
        Resolution or Atoms.
    path : target file, normally ending in ``.ptycho.h5``.
    name : key of a single result in the project (tilt index for MSPResult, name for
        Volume / Resolution / Atoms).
    compression : h5py dataset options; default gzip level 4 with shuffle.
    """
    path = Path(path)
    is_result = isinstance(obj, (MSPResult, Alignment, Volume, Resolution, Atoms))
    if path.exists() and is_result and not _holds_one(path, type(obj).__name__):
        return append_result(path, obj, name=name, compression=compression)
    project, kind = wrap(obj, name)
    check(project, path)
    if path.exists() and kind == "Project" and _series_is_from(project, path):
        return write_results(path, project, compression)
    file_id = uuidlib.uuid4().hex
    with atomic_h5(path) as fh:
        set_text(fh, "format_version", FORMAT_VERSION)
        set_text(fh, "creator", f"napari-ptychotomo {_version()}")
        set_text(fh, "uuid", file_id)
        set_text(fh, "created", datetime.datetime.now(datetime.UTC).isoformat())
        set_text(fh, "root_object", kind)
        Codec(compression).write_object(fh, project)
        fh["appended_results"] = h5py.ExternalLink(sidecar_path(path).name, "/")
    with contextlib.suppress(OSError):
        sidecar_path(path).unlink()  # stale now (uuid changed); removed for tidiness
    return path


def _version() -> str:
    from .._version import __version__

    return __version__


def _series_is_from(project: Project, path: Path) -> bool:
    """True when every raw array of the project's series is lazily read from ``path``."""
    series = project.series
    if series is None or not series.scans:
        return False
    for scan in series.scans:
        data = getattr(scan, "intensities", None)
        if not isinstance(data, LazyDataset):
            return False
        try:
            if not os.path.samefile(data.path, path):
                return False
        except OSError:
            return False
    try:  # the metadata (calibration, angles, ...) must also be unchanged
        on_disk = load_native(path, as_project=True, validate="none").series
    except PtychoFormatError:
        return False
    return _same(series, on_disk)


def _same(a: Any, b: Any) -> bool:
    import dataclasses

    if isinstance(a, LazyDataset) and isinstance(b, LazyDataset):
        return a.name == b.name and a.shape == b.shape
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    return type(a) is type(b) and (a == b or (a != a and b != b))


def _holds_one(path: Path, kind: str) -> bool:
    """Whether ``path`` is a file of this package that holds a single object of ``kind``
    (saved alone, no result added since). Anything else, a foreign or damaged file
    included, is not, so it is never overwritten by a result."""
    try:
        with open_h5(path) as fh:
            alone = get_text(fh, "root_object", "Project") == kind and get_text(fh, "uuid") is not None
    except (OSError, PtychoFormatError):
        return False
    return alone and not sidecar_path(path).exists()


# ---------------------------------------------------------------------------- reading
def load_native(path: Any, *, lazy: bool = True, validate: str = "sample", as_project: bool = False) -> Any:
    """Open a ``.ptycho.h5`` file; 4D-STEM intensities stay on disk (lazy).

    Parameters
    ----------
    path : the project file; its results sidecar, if any, is merged in.
    lazy : keep intensities as :class:`LazyDataset` (the file stays open while they are
        alive; see :func:`close`). ``False`` reads everything into memory and closes it.
    validate : ``"sample"`` checks every object and a sample of the patterns of each scan
        for NaN / inf / negative counts; ``"full"`` checks every pattern (reads all data);
        ``"none"`` checks only the scans' shapes, dtypes and calibration (no data read).
    as_project : return the :class:`Project` even when the file holds a single object.

    Returns
    -------
    The object that was saved (a Project, or e.g. a Volume saved on its own).

    Raises
    ------
    PtychoFormatError : the file is missing, truncated, damaged, not a project file, or
        holds invalid data; the message names the file and the problem.
    """
    if validate not in ("sample", "full", "none"):
        raise ValueError(f"validate = {validate!r}; expected 'sample', 'full' or 'none'")
    fh = open_h5(path)
    try:
        version = get_text(fh, "format_version")
        if version is None:
            raise PtychoFormatError(
                path, "not a napari-ptychotomo project: no format_version attribute on the root group"
            )
        if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
            raise PtychoFormatError(
                path, f"format_version {version} is not supported (this version reads {FORMAT_VERSION})"
            )
        codec = Codec(lazy=lazy)
        values = dict(codec.read_members(fh))
        kind = get_text(fh, "root_object", "Project")
        side = read_sidecar(path, get_text(fh, "uuid"), codec)
        if side is not None:
            values.update(side)
            kind = "Project"
        project = Project(**{k: values[k] for k in values if k in Project.__dataclass_fields__})
        if validate == "none":
            _check_structure(project, path)
        else:
            _validate_loaded(project, path, full=validate == "full")
        result = project if as_project else unwrap(project, kind)
    except PtychoFormatError:
        fh.close()
        raise
    except Exception as exc:  # anything h5py / json raise on a damaged file
        fh.close()
        raise PtychoFormatError(
            path, f"damaged or not a napari-ptychotomo project ({type(exc).__name__}: {exc})"
        ) from None
    if not _has_lazy(project):
        fh.close()
    return result


def _check_structure(project: Project, path: Any) -> None:
    """Shapes, dtypes and calibration of the scans: what engines rely on, read from the
    metadata alone (no intensities are read)."""
    if project.series is None:
        return
    for k, scan in enumerate(project.series.scans):
        if isinstance(scan, ScanData):
            try:
                scan.validate(check_values=False)
            except ValueError as exc:
                raise PtychoFormatError(path, f"invalid content: scan {k}: {exc}") from None


def _validate_loaded(project: Project, path: Any, full: bool) -> None:
    try:
        project.validate()
    except ValueError as exc:
        raise PtychoFormatError(path, f"invalid content: {exc}") from None
    if project.series is None:
        return
    for k, scan in enumerate(project.series.scans):
        if isinstance(scan, ScanData):
            _check_counts(scan, path, k, full)


def _check_counts(scan: ScanData, path: Any, k: int, full: bool) -> None:
    """Check counts are finite and >= 0: every pattern, or a few spread over the scan."""
    data = scan.intensities
    n = scan.num_positions
    pattern_bytes = int(np.prod(scan.detector_shape)) * np.dtype(data.dtype).itemsize
    if full:
        batches: list[Any] = [slice(i, min(n, i + 256)) for i in range(0, n, 256)]
    else:  # up to 8 patterns and about 4 MiB per scan, so opening stays fast
        count = min(n, 8, max(2, (4 << 20) // max(1, pattern_bytes)))
        batches = np.unique(np.linspace(0, n - 1, count).astype(int)).tolist()
    for index in batches:
        if isinstance(index, slice):
            values = scan.patterns(index)
        else:
            values = np.asarray(data[divmod(index, data.shape[1]) if len(data.shape) == 4 else index])
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            raise PtychoFormatError(path, f"scan {k}: intensities contain NaN or inf")
        if values.size:
            try:
                check_negative_counts(values, f"scan {k}: intensities")
            except ValueError as exc:
                raise PtychoFormatError(path, str(exc)) from None


def _lazy_arrays(obj: Any) -> Iterator[LazyDataset]:
    if isinstance(obj, LazyDataset):
        yield obj
    elif isinstance(obj, Project) and obj.series is not None:
        yield from _lazy_arrays(obj.series)
    elif isinstance(obj, TiltSeries):
        for scan in obj.scans:
            yield from _lazy_arrays(scan)
    elif isinstance(obj, ScanData):
        yield from _lazy_arrays(obj.intensities)


def _has_lazy(obj: Any) -> bool:
    return next(_lazy_arrays(obj), None) is not None


def close(obj: Any) -> None:
    """Close the files behind the lazy arrays of ``obj`` (Project, TiltSeries, ScanData).

    Afterwards reading those intensities raises :class:`PtychoFormatError`. Files are also
    closed automatically once no lazy array refers to them any more.
    """
    for array in _lazy_arrays(obj):
        array.close()


@contextlib.contextmanager
def open_project(path: Any, **kwargs: Any) -> Iterator[Project]:
    """``with open_project(path) as project:`` load lazily and close the file afterwards."""
    project = load_native(path, as_project=True, **kwargs)
    try:
        yield project
    finally:
        close(project)
