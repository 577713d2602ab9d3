"""Data objects → napari layer-data tuples ``(data, kwargs, layer_type)``.

Pure functions, no napari import: readers, ``show`` and the widgets all build their layers
here, so every result looks the same wherever it comes from. Every layer has a physical
``scale`` (Å for real space, mrad for diffraction), ``axis_labels``, ``units`` and the data
object it shows in ``metadata["result"]`` (``metadata["kind"]`` names what it is).

One module per result family: :mod:`.scan` (scans, defocus series), :mod:`.msp` (MSP
results), :mod:`.volume` (volumes, projection stacks), :mod:`.atoms` (atoms and their
colours), :mod:`.project` (a whole project, ``layers_for``); what they share (``LayerData``,
units, metadata) in :mod:`.common`. Every public name is re-exported here.
"""

from .atoms import ELEMENT_COLOURS as ELEMENT_COLOURS  # public names outside __all__: "X as X" re-exports them
from .atoms import SPECIES_COLOURS, atoms_layers
from .atoms import atom_colours as atom_colours
from .common import ANGSTROM as ANGSTROM
from .common import INDEX as INDEX
from .common import MRAD as MRAD
from .common import LayerData
from .msp import msp_layers, summed_phase_layer
from .project import LATEST_VOLUMES as LATEST_VOLUMES
from .project import layers_for, project_layers
from .scan import scan_layers
from .volume import volume_layers

__all__ = [
    "LayerData",
    "scan_layers",
    "msp_layers",
    "summed_phase_layer",
    "volume_layers",
    "atoms_layers",
    "project_layers",
    "layers_for",
    "SPECIES_COLOURS",
]
