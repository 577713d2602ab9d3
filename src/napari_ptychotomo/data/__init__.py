"""Plain data objects shared by every layer of the package: the inputs (:mod:`.inputs`, with
the 4D-STEM scan in :mod:`.scan` and the plane-wave defocus series in
:mod:`.defocus_series`), the results of the reconstruction steps (:mod:`.results`) and
their field checks (:mod:`.checks`), all imported from here.

Each object holds numpy arrays (or lazy h5py datasets for big raw data) with units in the
field names or docstrings, and a ``validate()`` method that raises ``ValueError`` naming the
field, what was expected and what was found. Engines move arrays to torch themselves.

Conventions (docs/conventions.md): lengths in Å, energies in eV, convergence semi-angle and
specimen mistilt in mrad, tomographic angles in degrees, real-space arrays ``(..., y, x)``,
volumes ``(z, y, x)``, positions ``(n, 2)`` as ``(y, x)``, diffraction patterns centred.
"""

from .checks import check_negative_counts, check_scan_shape
from .inputs import DEFOCUS_REFERENCES, Calibration, DefocusSeries, ScanData, TiltSeries
from .results import Alignment, Atoms, MSPResult, Project, Resolution, Volume

__all__ = [
    "Calibration",
    "ScanData",
    "DefocusSeries",
    "TiltSeries",
    "MSPResult",
    "Alignment",
    "Volume",
    "Resolution",
    "Atoms",
    "Project",
    "DEFOCUS_REFERENCES",
    "check_negative_counts",
    "check_scan_shape",
]
