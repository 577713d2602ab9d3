"""Chemical elements and their electron scattering factors.

Two published parameterisations of the elastic electron scattering factor f_e(q) of a
neutral atom are available for Z = 1 (H) to 103 (Lr), with q = |k| the spatial frequency in
1/Å (no factor 2π, q = 2 sin(θ)/λ) and f_e in Å:

* ``"lobato"``: Lobato & Van Dyck, Acta Cryst. A70, 636 (2014), eq. 16,
  f_e(q) = Σ_i a_i (2 + b_i q²) / (1 + b_i q²)²  (five terms).
* ``"kirkland"``: Kirkland, *Advanced Computing in Electron Microscopy* (2010), eq. C.15,
  f_e(q) = Σ_i a_i / (q² + b_i) + c_i exp(−d_i q²)  (three + three terms).

The potential of the atom follows from f_e by V(r) = C ∫ f_e(q) exp(2πi q·r) d³q with
C = h² / (2π m₀ e) = 2π a₀ e/(4πε₀) ≈ 47.878 V·Å² (Kirkland eq. 5.9); see
:mod:`.potentials`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..optics import ELECTRON_MASS, ELEMENTARY_CHARGE, PLANCK
from .element_data import SYMBOLS
from .kirkland_data import KIRKLAND
from .lobato_data import LOBATO

__all__ = [
    "PARAMETERISATIONS",
    "POTENTIAL_PREFACTOR",
    "atomic_number",
    "chemical_symbol",
    "atomic_numbers",
    "parameters",
    "scattering_factor",
]

PARAMETERISATIONS = ("lobato", "kirkland")

#: C = h² / (2π m₀ e) in V·Å²: converts a scattering factor in Å into a potential.
POTENTIAL_PREFACTOR = PLANCK**2 / (2.0 * math.pi * ELECTRON_MASS * ELEMENTARY_CHARGE) * 1e20

_NUMBER = {symbol: z for z, symbol in enumerate(SYMBOLS, start=1)}


def atomic_number(element: str | int) -> int:
    """Atomic number of an element given by symbol (``"Pt"``) or number (``78``)."""
    if isinstance(element, (int, np.integer)):
        z = int(element)
        if not 1 <= z <= len(SYMBOLS):
            raise ValueError(f"atomic number {z} is out of range; expected 1 (H) to {len(SYMBOLS)} (Lr)")
        return z
    key = str(element).strip()
    key = key[:1].upper() + key[1:].lower()
    if key not in _NUMBER:
        raise ValueError(f"unknown chemical symbol {element!r}; expected e.g. 'O', 'Si', 'Pt'")
    return _NUMBER[key]


def chemical_symbol(number: int) -> str:
    """Chemical symbol of atomic number ``number``."""
    return SYMBOLS[atomic_number(int(number)) - 1]


def atomic_numbers(elements: Any) -> np.ndarray:
    """Atomic numbers ``(n,)`` int64 of a sequence of symbols and / or numbers."""
    if isinstance(elements, np.ndarray) and np.issubdtype(elements.dtype, np.integer):
        z = elements.astype(np.int64).ravel()
        bad = (z < 1) | (z > len(SYMBOLS))
        if np.any(bad):
            raise ValueError(
                f"numbers contains {int(bad.sum())} atomic number(s) outside 1..{len(SYMBOLS)}, e.g. {int(z[bad][0])}"
            )
        return z
    return np.array([atomic_number(e) for e in np.ravel(elements)], dtype=np.int64)


def _check_parameterisation(name: str) -> str:
    key = str(name).lower()
    if key not in PARAMETERISATIONS:
        raise ValueError(f"parameterisation = {name!r}; expected one of {PARAMETERISATIONS}")
    return key


def parameters(element: str | int, parameterisation: str = "lobato") -> np.ndarray:
    """Published coefficients of one element, float64.

    Returns ``(2, 5)`` rows (a, b) for Lobato or ``(4, 3)`` rows (a, b, c, d) for Kirkland,
    in the units of the module docstring.
    """
    key = _check_parameterisation(parameterisation)
    symbol = chemical_symbol(atomic_number(element))
    table = LOBATO if key == "lobato" else KIRKLAND
    return np.asarray(table[symbol], dtype=np.float64)


def scattering_factor(q: Any, element: str | int, parameterisation: str = "lobato") -> Any:
    """Electron scattering factor f_e(q) in Å at spatial frequency q = |k| in 1/Å.

    ``q`` may be a number, a numpy array or a torch tensor; the result has the same kind
    (and, for torch, the same dtype and device).
    """
    key = _check_parameterisation(parameterisation)
    p = parameters(element, key).tolist()  # Python floats keep torch dtypes unchanged
    q2 = q * q
    if key == "lobato":
        a, b = p
        return sum(a[i] * (2.0 + b[i] * q2) / (1.0 + b[i] * q2) ** 2 for i in range(5))
    a, b, c, d = p
    exp = np.exp if not hasattr(q2, "exp") else (lambda x: x.exp())
    return sum(a[i] / (q2 + b[i]) + c[i] * exp(-d[i] * q2) for i in range(3))
