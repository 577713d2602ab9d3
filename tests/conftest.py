"""Shared test set-up.

torch is imported before any QApplication exists (DESIGN.md), and the independent abTEM
reference data in ``tests/data/`` (see its README) are opened once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  (must come before Qt)

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("PTYCHOTOMO_REFERENCE", Path(__file__).resolve().parent / "data"))


def _open_reference(name: str):
    import h5py

    path = REFERENCE / name
    if not path.exists():
        pytest.fail(f"abTEM reference {name} not found in {REFERENCE} (tests/data/ of the repository)")
    return h5py.File(path, "r")


@pytest.fixture(scope="session")
def abtem_reference():
    """The abTEM oracle on a detector-sized grid (``tests/data/abtem_reference.h5``), read-only."""
    with _open_reference("abtem_reference.h5") as fh:
        yield fh


@pytest.fixture(scope="session")
def abtem_detector_reference():
    """abTEM 4D-STEM of Au [001] simulated finely and cropped to a 64² detector
    (``tests/data/abtem_detector_reference.h5``), read-only."""
    with _open_reference("abtem_detector_reference.h5") as fh:
        yield fh


@pytest.fixture(scope="session")
def abtem_detector_converged():
    """The same case by abTEM on a grid fine enough to have converged (1536² pixels of
    0.016 Å), at the four corner positions (``tests/data/abtem_detector_converged.h5``)."""
    with _open_reference("abtem_detector_converged.h5") as fh:
        yield fh


@pytest.fixture(scope="session")
def abtem_srtio3_reference():
    """abTEM 4D-STEM of 117 Å of SrTiO3 [001] at 300 keV, mistilt (4, 0) mrad, converged in
    the sampling and cropped to a 64² detector (``tests/data/abtem_srtio3_reference.h5``)."""
    with _open_reference("abtem_srtio3_reference.h5") as fh:
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
