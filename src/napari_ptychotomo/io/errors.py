"""The one error type of the file readers and writers."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["PtychoFormatError"]


class PtychoFormatError(ValueError):
    """A file cannot be read or written as asked: names the file and what is wrong.

    Subclasses ``ValueError`` so callers that already catch bad input keep working.

    Parameters
    ----------
    path : the file (or folder) concerned.
    message : what is wrong with it and, where possible, what was expected.
    """

    def __init__(self, path: Any, message: str) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.reason = message if self.path is None else _without_path(self.path, message)
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}{self.reason}")

    def __reduce__(self):  # picklable across processes (torch.distributed, napari workers)
        return (type(self), (self.path, self.reason))


def _without_path(path: str, message: str) -> str:
    """``message`` less a leading ``"<path>: "``: a lazily read data object names its file
    itself (:meth:`~napari_ptychotomo.data.ScanData.patterns`), and the path is said once."""
    for prefix in (path, os.path.abspath(path)):
        if message.startswith(f"{prefix}: "):
            return message[len(prefix) + 2 :]
    return message
