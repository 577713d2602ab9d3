"""GUI test set-up: napari's ``make_napari_viewer`` under pytest-xvfb's virtual X server.

torch is imported by ``tests/conftest.py`` before any QApplication exists. Screenshots are
taken with ``canvas_only=True`` and checked to be not blank, so a test fails when a layer
silently draws nothing (which is what ``QT_QPA_PLATFORM=offscreen`` would do).
"""

from __future__ import annotations

import numpy as np
import pytest


def assert_not_blank(viewer, min_levels: int = 2, min_fraction: float = 0.01) -> np.ndarray:
    """Take a canvas screenshot and assert it shows something.

    The screenshot must contain at least ``min_levels`` distinct grey levels and at least
    ``min_fraction`` of its pixels must differ from the most common (background) colour.
    Returns the RGBA screenshot ``(h, w, 4)`` uint8.
    """
    viewer.reset_view()
    shot = np.asarray(viewer.screenshot(canvas_only=True, flash=False))
    assert shot.ndim == 3 and shot.shape[-1] in (3, 4), f"screenshot shape {shot.shape}"
    grey = shot[..., :3].astype(np.int32) @ np.array([1, 256, 65536])
    values, counts = np.unique(grey, return_counts=True)
    assert len(values) >= min_levels, "screenshot is blank: a single colour"
    foreground = 1.0 - counts.max() / grey.size
    assert foreground >= min_fraction, (
        f"screenshot is nearly blank: only {foreground:.2%} of pixels differ from the background"
    )
    return shot


@pytest.fixture
def not_blank():
    """The :func:`assert_not_blank` check, for tests (conftest modules are not importable)."""
    return assert_not_blank


@pytest.fixture
def viewer(make_napari_viewer):
    """A real napari viewer, shown on the virtual display (a hidden viewer screenshots blank)."""
    return make_napari_viewer(show=True)
