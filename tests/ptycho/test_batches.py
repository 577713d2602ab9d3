"""Minibatches of adjacent scan positions: equal sizes, compact tiles, full cover."""

import numpy as np
import pytest

from napari_ptychotomo.ptycho.batches import adjacent_batches


def _raster(ny, nx, step=0.4):
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], 1) * step


def test_32x32_raster_with_batch_64_gives_16_square_tiles_of_64():
    batches = adjacent_batches(_raster(32, 32), 64)
    assert len(batches) == 16
    assert {len(b) for b in batches} == {64}
    positions = _raster(32, 32)
    for b in batches:  # 8 × 8 positions of 0.4 Å: each tile spans 2.8 Å both ways
        assert np.allclose(np.ptp(positions[b], axis=0), 2.8)


@pytest.mark.parametrize("shape, batch", [((32, 32), 50), ((17, 9), 16), ((40, 7), 33), ((5, 5), 24)])
def test_tiles_cover_every_position_once_with_near_equal_sizes(shape, batch):
    positions = _raster(*shape)
    batches = adjacent_batches(positions, batch)
    indices = np.concatenate(batches)
    assert np.array_equal(np.sort(indices), np.arange(len(positions)))
    sizes = [len(b) for b in batches]
    assert len(batches) == int(np.ceil(len(positions) / batch))
    assert max(sizes) <= batch and max(sizes) - min(sizes) <= 2


def test_random_positions_give_compact_tiles():
    positions = np.random.default_rng(1).uniform(0, 20, (400, 2))
    batches = adjacent_batches(positions, 25)
    assert len(batches) == 16
    # each tile is a compact patch: far smaller than the field
    assert max(float(np.max(np.ptp(positions[b], axis=0))) for b in batches) < 9.0


def test_batch_larger_than_scan_is_one_batch():
    assert [len(b) for b in adjacent_batches(_raster(3, 3), 100)] == [9]
