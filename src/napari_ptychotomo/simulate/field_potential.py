"""The potential of the atoms within a simulated field: periodic slices on the field padded by
the reach of an atom's potential, cropped back to it (:mod:`.potentials` builds the slices).
Used by the scan (:mod:`.stem`)."""

from __future__ import annotations

import math

import numpy as np
from scipy.fft import next_fast_len

from .potentials import slices_tensor

_TAIL = 3.0  # Å of atoms outside the field whose potential still reaches into it


def _field_potential(atoms, numbers, shape, pixel, dz, n_slices, parameterisation, device):
    """Slices (S, H, W) V·Å of the atoms within the field of ``shape`` pixels.

    The slices are periodic, so they are built on the field padded by at least ``_TAIL``
    Å and cropped: atoms just outside the field add their tails, atoms farther out are
    left out instead of wrapping around into it.
    """
    pad = (int(math.ceil(_TAIL / pixel[0])), int(math.ceil(_TAIL / pixel[1])))
    lo = -np.array(pad) * pixel
    hi = (np.array(shape) + pad) * pixel
    inside = np.all((atoms[:, 1:] >= lo) & (atoms[:, 1:] < hi), axis=1)
    moved = atoms[inside] + np.array([0.0, pad[0] * pixel[0], pad[1] * pixel[1]])
    # at least the padded field, grown to a size whose FFT is quick (a prime factor such as
    # 41 in 2050 makes it several times slower); the growth is empty space
    big = tuple(next_fast_len(n + 2 * p) for n, p in zip(shape, pad))
    slices = slices_tensor(moved, numbers[inside], big, pixel, dz, n_slices, parameterisation, device)
    return slices[:, pad[0] : pad[0] + shape[0], pad[1] : pad[1] + shape[1]].contiguous()
