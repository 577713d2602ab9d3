"""Sample data (npe2 ``sample_data`` contributions), simulated in a second or two.

Small on purpose: each runs on a laptop CPU in seconds, and opens as the same layers a
file of that kind would (the data object in ``metadata["result"]``, ground truth in its
``truth``), so every widget can be tried on it at once.
"""

from __future__ import annotations

import numpy as np

from .layers import LayerData, atoms_layers, scan_layers, volume_layers

__all__ = [
    "srtio3_scan",
    "nanoparticle_series",
    "core_shell_potential",
    "hrtem_series",
    "make_srtio3_scan",
    "make_nanoparticle_series",
    "make_core_shell_potential",
]


def make_srtio3_scan(seed: int = 0):
    """SrTiO₃ [001], 3×3×6 unit cells (~2.3 nm thick), 300 keV, 25 mrad, 12×12 scan at
    0.5 Å, 32×32 detector, 6 slices, specimen mistilt (4, 0) mrad, 1e5 e/Å²."""
    from ..simulate import simulate_scan, srtio3_slab

    return simulate_scan(
        srtio3_slab((3, 3, 6)),
        energy_eV=300e3,
        semiangle_mrad=25.0,
        scan_shape=(12, 12),
        scan_step=0.5,
        detector_shape=(32, 32),
        num_slices=6,
        mistilt_mrad=(4.0, 0.0),
        dose=1e5,
        seed=seed,
    )


def make_nanoparticle_series(seed: int = 0):
    """A ~1.4 nm Pt cuboctahedron, 5 tilts over ±60°, 10×10 scan at 0.6 Å, 32×32
    detector, 3 slices, 1e5 e/Å², random shifts of 0.3 Å; truth volume and atoms included."""
    from ..simulate import fcc_nanoparticle, simulate_tilt_series

    particle = fcc_nanoparticle("Pt", size=14.0, shape="cuboctahedron", vacuum=2.0)
    return simulate_tilt_series(
        particle,
        np.linspace(-60.0, 60.0, 5),
        shift_std=0.3,
        seed=seed,
        scan_shape=(10, 10),
        scan_step=0.6,
        detector_shape=(32, 32),
        num_slices=3,
        dose=1e5,
    )


def make_core_shell_potential(seed: int = 0, voxel_size: float = 0.4):
    """Pt core (radius 5 Å) in an amorphous Al₂O₃-like shell (3 Å): the electrostatic
    potential (V) on a cubic grid of ``voxel_size`` Å and the atoms (species by Z)."""
    from ..data import Atoms, Volume
    from ..simulate import chemical_symbol, core_shell_particle, potential_volume

    particle = core_shell_particle(core_radius=5.0, shell_thickness=3.0, seed=seed)
    shape = tuple(int(np.ceil(c / voxel_size)) + 1 for c in particle.cell)
    data = potential_volume(particle.positions, particle.numbers, shape, voxel_size)
    volume = Volume(
        data=data,
        voxel_size=voxel_size,
        units="V",
        provenance={"source": "simulate", "specimen": particle.info.get("name")},
    )
    numbers = np.unique(particle.numbers)  # increasing Z = increasing scattering strength
    atoms = Atoms(
        positions=particle.positions,
        species=np.searchsorted(numbers, particle.numbers),
        names=[chemical_symbol(int(z)) for z in numbers],
    )
    return volume, atoms


def srtio3_scan() -> list[LayerData]:
    """Sample "SrTiO3 4D-STEM scan, 4 mrad mistilt"."""
    return scan_layers(make_srtio3_scan())


#: MSP settings that suit the nanoparticle sample, which the "Multislice ptychography"
#: widget takes when the sample is chosen (the layers' ``metadata["msp_settings"]``). The
#: ~14 Å particle is too thin for its tilt or thickness to be learned: measured on its 0°
#: tilt, MSP's defaults learned a tilt of (−3.75, 4.97) mrad for the true (0, 0) and did
#: not converge in 300 iterations; 2 slices of 8 Å, tilt and thickness fixed, converged
#: after 187 iterations (2 s) at a data error 6 % above theirs.
NANOPARTICLE_MSP = {"num_slices": 2, "slice_thickness": 8.0, "learn_tilt": False, "learn_thickness": False}


def nanoparticle_series() -> list[LayerData]:
    """Sample "Nanoparticle 4D-STEM tilt series". Its ground truth (volume, atoms, Euler
    angles, shifts) is in ``metadata["result"].truth``; the volume is not shown, as its z
    axis would share the slider with the tilt axis. The layers suggest the MSP settings
    that suit it (:data:`NANOPARTICLE_MSP`)."""
    layers = scan_layers(make_nanoparticle_series())
    for _data, kwargs, _kind in layers:
        kwargs["metadata"]["msp_settings"] = dict(NANOPARTICLE_MSP)
    return layers


def core_shell_potential() -> list[LayerData]:
    """Sample "Pt@Al2O3 ground-truth potential" (volume and atoms)."""
    volume, atoms = make_core_shell_potential()
    return volume_layers(volume, "truth") + atoms_layers(atoms, "truth")


def hrtem_series() -> list[LayerData]:
    """Sample "Si/SiO2 HRTEM tilt × defocus series": 12 tilts over 180°, 3 defoci each
    (:func:`napari_ptychotomo.simulate.default_hrtem_sample`), as one ``Defocus images``
    layer (tilt, defocus, y, x) for the "Plane-wave tomography" widget."""
    from ..simulate import default_hrtem_sample

    return scan_layers(default_hrtem_sample())
