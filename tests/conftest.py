"""Shared test set-up.

torch is imported before any QApplication exists (DESIGN.md), and the reference data of
``../shared/reference/`` is located once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  (must come before Qt)

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("PTYCHOTOMO_REFERENCE", REPO.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def abtem_reference():
    """The abTEM oracle file (``../shared/reference/abtem_reference.h5``), opened read-only."""
    import h5py

    path = REFERENCE / "abtem_reference.h5"
    if not path.exists():
        pytest.fail(f"abTEM reference not found at {path}; set PTYCHOTOMO_REFERENCE")
    with h5py.File(path, "r") as fh:
        yield fh


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
