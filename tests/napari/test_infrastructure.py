"""The GUI test set-up itself draws: a real viewer renders an image layer."""

import numpy as np
import pytest


@pytest.mark.gui
def test_viewer_draws_an_image_layer_under_xvfb(viewer, not_blank):
    yy, xx = np.mgrid[:64, :64]
    viewer.add_image(np.sin(xx / 5.0) * np.cos(yy / 7.0), name="pattern")
    shot = not_blank(viewer)
    assert shot.shape[0] > 10 and shot.shape[1] > 10


@pytest.mark.gui
def test_blank_canvas_is_detected(viewer, not_blank):
    with pytest.raises(AssertionError):
        not_blank(viewer)
