"""Lazy, file-backed arrays: big raw data stays on disk until a batch is asked for.

Lifetime: a :class:`LazyDataset` holds a reference to its open, read-only ``h5py.File``, so
the file stays open exactly as long as some lazy array of it is alive (or until
:meth:`LazyDataset.close` / :func:`napari_ptychotomo.io.close` is called). Many lazy arrays
share one file handle. Pickling (e.g. to a worker process) stores the path and dataset
name; the copy re-opens the file read-only.
"""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np

from .errors import PtychoFormatError
from .guards import check_fits, require_readable

__all__ = ["LazyDataset", "open_h5"]

_CHUNK_CACHE = 32 << 20  # bytes of decompressed chunks cached per dataset


def open_h5(path: Any) -> h5py.File:
    """Open an HDF5 file read-only with a chunk cache suited to batch reads.

    Raises :class:`PtychoFormatError` naming the file when it is missing, unreadable
    (permission denied), truncated, or not HDF5.
    """
    require_readable(path)
    try:
        return h5py.File(path, "r", rdcc_nbytes=_CHUNK_CACHE, locking=False)
    except Exception as exc:  # h5py raises OSError for truncated / foreign files
        raise PtychoFormatError(path, f"not a readable HDF5 file (truncated or corrupt?): {exc}") from None


def _reads_all(index: Any) -> bool:
    """True for the indices that read a whole dataset: ``()``, ``...``, ``:``."""
    whole = lambda i: i is Ellipsis or (isinstance(i, slice) and i == slice(None))
    return whole(index) or (isinstance(index, tuple) and all(whole(i) for i in index))


class LazyDataset:
    """An HDF5 dataset read on demand, with numpy-style ``shape``, ``dtype`` and indexing.

    Indexing (``a[()]``, ``a[3]``, ``a[y, x]``, ``a[2:10]``, ``a[[1, 4, 9]]`` with increasing
    indices) reads only the chunks touched and returns numpy arrays; read errors (damaged
    chunks, closed file) become :class:`PtychoFormatError` naming the file and dataset.
    ``np.asarray(a)`` reads everything.
    """

    def __init__(self, file: h5py.File, name: str) -> None:
        self._file = file
        self._path = os.fspath(file.filename)
        self._name = name
        try:
            self._dset = file[name]
            if not isinstance(self._dset, h5py.Dataset):
                raise TypeError("not a dataset")
            self.shape = tuple(int(s) for s in self._dset.shape)
            self.dtype = np.dtype(self._dset.dtype)
        except Exception as exc:
            raise PtychoFormatError(self._path, f"cannot open dataset {name}: {exc}") from None

    # numpy-like description -------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def chunks(self) -> tuple[int, ...] | None:
        return self._dset.chunks

    @property
    def path(self) -> str:
        """The file this array lives in."""
        return self._path

    @property
    def name(self) -> str:
        """The dataset's path inside the file."""
        return self._name

    @property
    def dataset(self) -> h5py.Dataset:
        """The underlying h5py dataset (valid while the file is open)."""
        return self._dset

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyDataset({self._path!r}, {self._name!r}, shape={self.shape}, dtype={self.dtype})"

    # reading ---------------------------------------------------------------------------
    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, np.ndarray) and index.dtype.kind in "iu":
            index = index.tolist()
        if _reads_all(index):
            check_fits(self._path, self._name, self.shape, self.dtype)
        try:
            return self._dset[index]
        except (OSError, RuntimeError, KeyError) as exc:
            raise PtychoFormatError(
                self._path, f"cannot read {self._name}[{index!r}] (damaged or closed file?): {exc}"
            ) from None

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[()]
        return out if dtype is None else out.astype(dtype, copy=False)

    def close(self) -> None:
        """Close the file for every lazy array sharing it."""
        try:
            self._file.close()
        except Exception:
            pass

    # pickling: re-open by path -------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"path": self._path, "name": self._name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(open_h5(state["path"]), state["name"])
