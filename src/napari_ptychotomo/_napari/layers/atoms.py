"""Layers of traced or true atoms: Points in Å coloured by element (else by species class),
with the colour tables they use.
"""

from __future__ import annotations

import numpy as np

from ...data import Atoms
from .common import ANGSTROM, LayerData, _meta

#: RGBA colour of species class 0, 1, 2, ... (light to heavy), cycling.
SPECIES_COLOURS = np.array(
    [
        [0.40, 0.76, 1.00, 1.0],
        [1.00, 0.35, 0.25, 1.0],
        [1.00, 0.85, 0.20, 1.0],
        [0.45, 0.90, 0.45, 1.0],
        [0.80, 0.45, 1.00, 1.0],
        [0.95, 0.95, 0.95, 1.0],
    ],
    dtype=np.float32,
)


#: RGBA colour of an element (Jmol-like), so traced and true atoms of one element match
ELEMENT_COLOURS = {
    "H": (1.00, 1.00, 1.00),
    "C": (0.56, 0.56, 0.56),
    "N": (0.19, 0.31, 0.97),
    "O": (1.00, 0.20, 0.15),
    "Al": (0.75, 0.65, 0.65),
    "Si": (0.94, 0.78, 0.63),
    "Ti": (0.75, 0.76, 0.78),
    "Sr": (0.00, 1.00, 0.00),
    "Pt": (0.95, 0.85, 0.30),
    "Au": (1.00, 0.82, 0.14),
    "Pd": (0.00, 0.41, 0.52),
    "Ag": (0.75, 0.75, 0.75),
    "Fe": (0.88, 0.40, 0.20),
    "Cu": (0.78, 0.50, 0.20),
    "Ce": (1.00, 1.00, 0.78),
}


def atom_colours(atoms: Atoms) -> np.ndarray:
    """(n, 4) RGBA per atom: by element where the atoms have element names (so a traced
    and a true set of the same element look alike), else by species class."""
    species = np.asarray(atoms.species, dtype=int).reshape(-1)
    colours = (
        SPECIES_COLOURS[np.mod(species, len(SPECIES_COLOURS))].copy() if len(species) else np.zeros((0, 4), np.float32)
    )
    if atoms.names:
        for k, symbol in enumerate(atoms.symbols()):
            if symbol in ELEMENT_COLOURS:
                colours[k, :3] = ELEMENT_COLOURS[symbol]
    return colours


def atoms_layers(atoms: Atoms, name: str = "traced") -> list[LayerData]:
    """``Atoms (name)``: Points at the atom positions (z, y, x) in Å, in the frame of the
    volume layers (the positions include a Volume's origin, as the layers' translate does),
    size 1 Å + 0.3 Å per
    species class, colour by species (:data:`SPECIES_COLOURS`); features ``species``,
    ``element``, ``intensity`` and ``width`` (Å, NaN when not fitted)."""
    positions = np.asarray(atoms.positions, dtype=np.float64).reshape(-1, 3)
    n = len(positions)
    species = np.asarray(atoms.species, dtype=int).reshape(n)
    nan = np.full(n, np.nan)
    features = {
        "species": species,
        "element": np.asarray(atoms.symbols(), dtype=object),
        "intensity": nan if atoms.intensities is None else np.asarray(atoms.intensities, float),
        "width": nan if atoms.widths is None else np.asarray(atoms.widths, float),
    }
    # napari cannot take an empty colour array: a trace that found nothing gets a colour name
    colours = atom_colours(atoms) if n else "white"
    return [
        (
            positions,
            {
                "name": f"Atoms ({name})",
                "ndim": 3,
                "features": features,
                "face_color": colours,
                # the element as text, off until "display text" is ticked (on, it would tick the
                # box with nothing to show when the string is empty)
                "text": {"string": "{element}", "visible": False, "size": 8, "color": "white"},
                "size": 1.0 + 0.3 * species if n else 1.0,
                "border_width": 0.0,
                "axis_labels": ("z", "y", "x"),
                "units": (ANGSTROM, ANGSTROM, ANGSTROM),
                "metadata": _meta(atoms, "atoms", atoms_name=name),
            },
            "points",
        )
    ]
