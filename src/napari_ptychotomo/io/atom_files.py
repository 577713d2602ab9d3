"""Atoms as extended XYZ (readable by ASE, OVITO) and CSV.

Extended XYZ: line 1 the atom count, line 2 ``key=value`` pairs with
``Lattice="ax ay az bx by bz cx cy cz"`` (Å; an orthogonal box, by default the extent of
the positions), ``Properties=species:S:1:pos:R:3:class_index:I:1[:intensity:R:1]
[:width:R:1]``, ``pbc="F F F"`` and ``ptycho_names="O,Ti"`` (the class names); then one
line per atom. Positions are written x y z in Å (our arrays are (z, y, x)); unnamed
classes get the dummy symbol ``X``. Numbers are written with ``repr`` precision, so float64
positions come back exactly.

CSV: a header ``symbol,class_index,z_angstrom,y_angstrom,x_angstrom[,intensity][,width]``
and one row per atom.
"""

from __future__ import annotations

import csv
import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Atoms
from .errors import PtychoFormatError
from .native_files import atomic_file

__all__ = ["save_xyz", "load_xyz", "save_csv", "load_csv"]


def _checked(atoms: Any, path: Path) -> Atoms:
    if not isinstance(atoms, Atoms):
        raise PtychoFormatError(path, f"{path.suffix} files hold Atoms, not {type(atoms).__name__}")
    try:
        return atoms.validate()
    except ValueError as exc:
        raise PtychoFormatError(path, f"cannot save invalid Atoms: {exc}") from None


def _symbols(atoms: Atoms) -> list[str]:
    species = np.asarray(atoms.species, dtype=int)
    names = atoms.names or []
    return [names[s] if 0 <= s < len(names) else "X" for s in species]


def _columns(atoms: Atoms) -> list[tuple[str, np.ndarray]]:
    cols = [("intensity", atoms.intensities), ("width", atoms.widths)]
    return [(n, np.asarray(v, dtype=float)) for n, v in cols if v is not None]


def save_xyz(atoms: Atoms, path: Any, *, cell: Any = None) -> Path:
    """Write extended XYZ; ``cell`` is the box (x, y, z) in Å (default: the extent)."""
    path = Path(path)
    atoms = _checked(atoms, path)
    pos = np.asarray(atoms.positions, dtype=float)
    extent = (
        np.asarray(cell, float)
        if cell is not None
        else (np.maximum(pos[:, ::-1].max(axis=0), 1.0) if len(pos) else np.ones(3))
    )
    lattice = np.diag(extent)
    extra = _columns(atoms)
    props = "species:S:1:pos:R:3:class_index:I:1" + "".join(f":{n}:R:1" for n, _ in extra)
    head = f'Lattice="{" ".join(repr(float(v)) for v in lattice.ravel())}" Properties={props} pbc="F F F"'
    if atoms.names:
        head += f' ptycho_names="{",".join(atoms.names)}"'
    lines = [str(len(pos)), head]
    species = np.asarray(atoms.species, dtype=int)
    for i, symbol in enumerate(_symbols(atoms)):
        z, y, x = pos[i]
        row = [symbol, repr(float(x)), repr(float(y)), repr(float(z)), str(int(species[i]))]
        row += [repr(float(v[i])) for _, v in extra]
        lines.append(" ".join(row))
    with atomic_file(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _names_from(symbols: list[str], classes: np.ndarray, given: list[str] | None) -> list[str] | None:
    if given:
        return given
    if all(s == "X" or re.fullmatch(r"X\d+", s) for s in symbols):
        return None
    names = [f"X{c}" for c in range(int(classes.max()) + 1)] if len(classes) else []
    for s, c in zip(symbols, classes):
        names[int(c)] = s
    return names


def load_xyz(path: Any) -> Atoms:
    """Read the first frame of an extended XYZ file into Atoms (positions (z, y, x) Å)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        n = int(lines[0].split()[0])
        info = dict(item.split("=", 1) for item in shlex.split(lines[1]) if "=" in item)
        props = info.get("Properties", "species:S:1:pos:R:3").split(":")
        fields = [(props[i], props[i + 1], int(props[i + 2])) for i in range(0, len(props), 3)]
        rows = [line.split() for line in lines[2 : 2 + n]]
        width = sum(f[2] for f in fields)
        if len(rows) != n or any(len(r) != width for r in rows):
            raise ValueError(f"expected {n} atom lines of {width} columns")
        cols: dict[str, list] = {}
        start = 0
        for name, _kind, count in fields:
            cols[name] = [r[start : start + count] for r in rows]
            start += count
        pos = np.array(cols["pos"], dtype=float).reshape(n, 3)[:, ::-1]
        symbols = [c[0] for c in cols.get("species", [["X"]] * n)]
        classes = (
            np.array(cols["class_index"], dtype=int).reshape(n)
            if "class_index" in cols
            else _classes_from_symbols(symbols)
        )
        given = info["ptycho_names"].split(",") if info.get("ptycho_names") else None
        extra = {k: np.array(cols[k], dtype=float).reshape(n) for k in ("intensity", "width") if k in cols}
    except (OSError, UnicodeDecodeError) as exc:
        raise PtychoFormatError(path, f"cannot read: {exc}") from None
    except (ValueError, IndexError, KeyError) as exc:
        raise PtychoFormatError(path, f"not a valid extended XYZ file: {exc}") from None
    return Atoms(
        positions=pos,
        species=classes,
        intensities=extra.get("intensity"),
        widths=extra.get("width"),
        names=_names_from(symbols, classes, given),
    )


def _classes_from_symbols(symbols: list[str]) -> np.ndarray:
    order = list(dict.fromkeys(symbols))
    return np.array([order.index(s) for s in symbols], dtype=int)


def save_csv(atoms: Atoms, path: Any) -> Path:
    """Write one row per atom: symbol, class, z y x in Å, intensity and width if present."""
    path = Path(path)
    atoms = _checked(atoms, path)
    extra = _columns(atoms)
    header = ["symbol", "class_index", "z_angstrom", "y_angstrom", "x_angstrom"] + [n for n, _ in extra]
    pos = np.asarray(atoms.positions, dtype=float)
    species = np.asarray(atoms.species, dtype=int)
    with atomic_file(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for i, symbol in enumerate(_symbols(atoms)):
                writer.writerow(
                    [symbol, int(species[i])] + [repr(float(v)) for v in pos[i]] + [repr(float(v[i])) for _, v in extra]
                )
    return path


def load_csv(path: Any) -> Atoms:
    """Read atoms written by :func:`save_csv` (columns matched by header name)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
        # checked on the header too: a file without the columns and without rows is no atoms
        missing = [k for k in ("z_angstrom", "y_angstrom", "x_angstrom") if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"no column(s) {', '.join(missing)} in the header {reader.fieldnames or []}")
        pos = np.array(
            [[float(r["z_angstrom"]), float(r["y_angstrom"]), float(r["x_angstrom"])] for r in rows], dtype=float
        ).reshape(len(rows), 3)
        symbols = [r.get("symbol") or "X" for r in rows]
        classes = (
            np.array([int(r["class_index"]) for r in rows], dtype=int)
            if rows and "class_index" in rows[0]
            else _classes_from_symbols(symbols)
        )
        extra = {k: np.array([float(r[k]) for r in rows]) for k in ("intensity", "width") if rows and k in rows[0]}
    except OSError as exc:
        raise PtychoFormatError(path, f"cannot read: {exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise PtychoFormatError(
            path, f"not an atoms CSV (expected columns symbol, class_index, z_angstrom, y_angstrom, x_angstrom): {exc}"
        ) from None
    return Atoms(
        positions=pos,
        species=classes,
        intensities=extra.get("intensity"),
        widths=extra.get("width"),
        names=_names_from(symbols, classes, None),
    )
