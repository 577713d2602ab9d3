"""HDF5 datasets of the native format: text attributes, chunked checksummed datasets
filled in bounded slabs, and chunk-by-chunk copies."""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

__all__ = ["COMPRESSION", "set_text", "get_text", "write_dataset", "copy_dataset", "copy_group"]

COMPRESSION: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
_COPY_BATCH = 64 << 20  # bytes per slab when copying array-likes into a dataset


def set_text(obj: h5py.HLObject, name: str, text: str) -> None:
    """Store ``text`` as a fixed-length UTF-8 attribute (checksummed object header)."""
    obj.attrs[name] = np.bytes_(text.encode("utf-8"))


def get_text(obj: h5py.HLObject, name: str, default: str | None = None) -> str | None:
    value = obj.attrs.get(name, None)
    if value is None:
        return default
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError(f"attribute {name!r} is {type(value).__name__}, expected text")


def write_dataset(
    group: h5py.Group,
    name: str,
    array: Any,
    *,
    units: str | None = None,
    chunks: Any = True,
    compression: dict[str, Any] | None = None,
) -> h5py.Dataset:
    """Create a chunked, compressed, checksummed dataset and fill it slab by slab.

    ``array`` may be a numpy array or any array-like with ``shape``, ``dtype`` and slicing
    (an h5py dataset, a memmap); it is copied in slabs of about 64 MiB along axis 0, so RAM
    use stays bounded whatever its size. An h5py source with the same chunking is copied
    chunk by chunk without decompression.
    """
    opts = COMPRESSION if compression is None else compression
    shape = tuple(int(s) for s in array.shape)
    dtype = np.dtype(array.dtype)
    if isinstance(chunks, tuple):
        chunks = tuple(min(c, s) for c, s in zip(chunks, shape))
    if isinstance(array, h5py.Dataset) and _same_layout(array, chunks, opts):
        dset = copy_dataset(array, group, name, with_attrs=False)
    else:
        dset = group.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, fletcher32=True, **opts)
        if isinstance(array, np.ndarray) and array.nbytes <= _COPY_BATCH:
            dset[()] = array
        else:
            row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)
            step = max(1, _COPY_BATCH // row)
            if dset.chunks:
                step = max(dset.chunks[0], step // dset.chunks[0] * dset.chunks[0])
            for start in range(0, shape[0], step):
                stop = min(shape[0], start + step)
                dset[start:stop] = np.asarray(array[start:stop], dtype=dtype)
    if units is not None:
        set_text(dset, "units", units)
    return dset


def copy_dataset(source: h5py.Dataset, group: h5py.Group, name: str, *, with_attrs: bool = True) -> h5py.Dataset:
    """Copy a dataset chunk by chunk, compressed bytes as they are (no recompression).

    (``H5Ocopy`` would do the same, but in HDF5 2.0 / h5py 3.16 it corrupts the heap when
    the source's chunks were read before; direct chunk I/O is safe and as fast.)
    """
    if source.chunks is None:
        dset = group.create_dataset(name, data=source[()])
    else:
        if source.file.mode == "r+":
            source.file.flush()  # raw chunk reads see only what is on disk
        dset = group.create_dataset(
            name,
            shape=source.shape,
            dtype=source.dtype,
            chunks=source.chunks,
            compression=source.compression,
            compression_opts=source.compression_opts,
            shuffle=source.shuffle,
            fletcher32=source.fletcher32,
        )
        for index in range(source.id.get_num_chunks()):
            offset = source.id.get_chunk_info(index).chunk_offset
            mask, data = source.id.read_direct_chunk(offset)
            dset.id.write_direct_chunk(offset, data, mask)
    if with_attrs:
        for key, value in source.attrs.items():
            dset.attrs[key] = value
    return dset


def copy_group(source: h5py.Group, group: h5py.Group, name: str) -> h5py.Group:
    """Copy a group recursively (attributes, subgroups, datasets chunk by chunk)."""
    out = group.create_group(name, track_order=True)
    for key, value in source.attrs.items():
        out.attrs[key] = value
    for key in source:
        member = source[key]
        if isinstance(member, h5py.Group):
            copy_group(member, out, key)
        elif isinstance(member, h5py.Dataset):
            copy_dataset(member, out, key)
    return out


def _same_layout(source: h5py.Dataset, chunks: Any, opts: dict[str, Any]) -> bool:
    if not isinstance(chunks, tuple) or source.chunks != chunks:
        return False
    return (
        source.fletcher32
        and source.compression == opts.get("compression")
        and source.compression_opts == opts.get("compression_opts")
        and bool(source.shuffle) == bool(opts.get("shuffle"))
    )
