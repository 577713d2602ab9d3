"""Data objects become napari layer tuples with physical scale, labels and metadata."""

import numpy as np
import pytest

from napari_ptychotomo._napari.layers import (
    ELEMENT_COLOURS,
    SPECIES_COLOURS,
    atoms_layers,
    layers_for,
    msp_layers,
    project_layers,
    scan_layers,
    volume_layers,
)
from napari_ptychotomo._napari.scan_views import bright_field_mask, scan_views
from napari_ptychotomo.data import Atoms, Project, ScanData, TiltSeries, Volume
from napari_ptychotomo.optics import interaction_constant


class CountingArray:
    """A 4D array that records how many patterns each read returns (a lazy stand-in)."""

    def __init__(self, array):
        self.array, self.reads = array, []

    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype

    def __getitem__(self, index):
        out = self.array[index]
        self.reads.append(int(np.prod(np.shape(out)[:-2])))
        return out


def test_bright_field_mask_is_the_disk_within_the_semiangle(tiny_scan):
    mask = bright_field_mask(tiny_scan)
    # 20 mrad / 2.5 mrad per pixel = radius 8 px around pixel (8, 8)
    ky, kx = np.mgrid[:16, :16] - 8
    assert np.array_equal(mask, ky**2 + kx**2 <= 64)


def test_virtual_bright_field_and_mean_pattern_match_direct_sums(tiny_scan):
    data = np.asarray(tiny_scan.intensities)
    bright, mean = scan_views(tiny_scan)
    mask = bright_field_mask(tiny_scan)
    np.testing.assert_allclose(bright, (data * mask).sum((-2, -1)), rtol=1e-6)
    np.testing.assert_allclose(mean, data.mean((0, 1)), rtol=1e-6)


def test_scan_views_read_in_batches_never_the_whole_scan(tiny_scan):
    counting = CountingArray(np.asarray(tiny_scan.intensities))
    scan = ScanData(intensities=counting, calibration=tiny_scan.calibration)
    bright, _ = scan_views(scan, batch_bytes=2 * 5 * 16 * 16 * 4)  # two scan rows at a time
    assert max(counting.reads) == 10 and sum(counting.reads) == 30
    np.testing.assert_allclose(bright, scan_views(tiny_scan)[0], rtol=1e-6)


def test_tilt_series_opens_as_bright_field_stack_with_tilt_slider(tiny_scan):
    series = TiltSeries(scans=[tiny_scan, tiny_scan, tiny_scan], angles_deg=[-30, 0, 30])
    (bf, bf_kw, bf_type), (dp, dp_kw, dp_type) = scan_layers(series, diffraction=True)
    assert (bf_type, dp_type) == ("image", "image")
    assert bf.shape == (3, 6, 5) and dp.shape == (3, 16, 16)
    assert bf_kw["name"] == "Virtual bright field" and bf_kw["axis_labels"] == ("tilt", "y", "x")
    assert bf_kw["scale"] == (1.0, 0.5, 0.5)
    assert dp_kw["scale"] == (1.0, 2.5, 2.5) and dp_kw["units"][1] == "milliradian"
    assert bf_kw["metadata"]["result"] is series
    assert bf_kw["metadata"]["angles_deg"] == [-30.0, 0.0, 30.0]


def test_scattered_positions_become_points_coloured_by_bright_field(tiny_scan):
    flat = np.asarray(tiny_scan.intensities).reshape(30, 16, 16)
    positions = np.random.default_rng(2).uniform(0, 5, size=(30, 2))
    scan = ScanData(intensities=flat, calibration=tiny_scan.calibration, positions=positions)
    (pts, kw, kind), (dp, _, _) = scan_layers(scan, diffraction=True)
    assert kind == "points" and np.array_equal(pts, positions)
    assert kw["features"]["bright_field"].shape == (30,) and dp.shape == (16, 16)


def test_msp_layers_show_phase_slices_probe_positions_and_tilt_map(tiny_msp):
    layers = {kw["name"]: (data, kw, kind) for data, kw, kind in msp_layers(tiny_msp, 3)}
    assert set(layers) == {
        "MSP phase [tilt 3]",
        "MSP probe [tilt 3]",
        "MSP positions [tilt 3]",
        "MSP tilt map θx [tilt 3]",
        "MSP tilt map θy [tilt 3]",
    }
    phase, kw, _ = layers["MSP phase [tilt 3]"]
    sigma = float(interaction_constant(300e3))
    np.testing.assert_allclose(phase, sigma * tiny_msp.object.real, rtol=1e-5)
    assert kw["scale"] == (20.0, 0.3, 0.3) and kw["axis_labels"] == ("z", "y", "x")
    assert kw["metadata"]["result"] is tiny_msp and kw["metadata"]["tilt_index"] == 3
    probe = layers["MSP probe [tilt 3]"][0]  # modes side by side
    np.testing.assert_allclose(probe[:, 16:], np.abs(tiny_msp.probe[1]), rtol=1e-6)
    theta_x, kw, kind = layers["MSP tilt map θx [tilt 3]"]
    theta_y = layers["MSP tilt map θy [tilt 3]"][0]
    assert kind == "image" and theta_x.shape == (4, 4)
    assert theta_x[0, 0] == 3.0 and theta_x[0, 3] == -3.0 and np.all(theta_y == 0.5)
    assert kw["colormap"] == "PiYG" and kw["contrast_limits"] == (-3.0, 3.0)
    assert kw["scale"] == pytest.approx((0.6, 0.6)) and kw["translate"] == (8.0, 8.0)
    positions, _, kind = layers["MSP positions [tilt 3]"]
    assert kind == "points" and positions.shape == (16, 2)


def test_volume_layer_is_scaled_by_voxel_size_and_placed_at_origin():
    volume = Volume(data=np.ones((4, 5, 6), np.float32), voxel_size=0.4, origin=np.array([1.0, 2, 3]))
    ((data, kw, kind),) = volume_layers(volume, "linear")
    assert kind == "image" and kw["name"] == "Volume (linear)" and data.shape == (4, 5, 6)
    assert kw["scale"] == (0.4, 0.4, 0.4) and kw["translate"] == (1.0, 2.0, 3.0)
    complex_volume = Volume(data=(1 + 0.25j) * np.ones((2, 2, 2), np.complex64), voxel_size=1.0)
    real, imag = volume_layers(complex_volume, "end-to-end")
    assert imag[1]["name"] == "Volume (end-to-end, absorption)"
    assert np.all(real[0] == 1.0) and np.all(imag[0] == 0.25)


def test_atoms_become_points_sized_and_coloured_by_species():
    atoms = Atoms(
        positions=np.array([[0.0, 1, 2], [3, 4, 5], [6, 7, 8]]),
        species=np.array([0, 1, 1]),
        intensities=np.array([1.0, 5.0, 6.0]),
        names=["O", "Pt"],
    )
    ((data, kw, kind),) = atoms_layers(atoms, "traced")
    assert kind == "points" and kw["name"] == "Atoms (traced)" and data.shape == (3, 3)
    assert list(kw["features"]["element"]) == ["O", "Pt", "Pt"]
    assert np.all(np.isnan(kw["features"]["width"]))
    # named atoms are coloured by element, so a traced and a true set of one element match
    np.testing.assert_allclose(kw["face_color"][:, :3], [ELEMENT_COLOURS[e] for e in ("O", "Pt", "Pt")])
    unnamed = Atoms(positions=atoms.positions, species=atoms.species)
    np.testing.assert_array_equal(atoms_layers(unnamed)[0][1]["face_color"], SPECIES_COLOURS[[0, 1, 1]])
    assert kw["text"]["visible"] is False  # "display text" unticked until asked for
    assert kw["size"][1] > kw["size"][0] and "translate" not in kw  # the positions are where they are drawn


def test_project_layers_carry_alignment_and_resolution_in_volume_metadata(tiny_msp):
    from napari_ptychotomo.data import Alignment, Resolution

    volume = Volume(data=np.zeros((3, 3, 3), np.float32), voxel_size=0.5, origin=np.array([1.0, 1, 1]))
    resolution = Resolution(frequency=np.array([0.1, 0.2]), fsc=np.array([1.0, 0.5]), crossings={"0.143": 3.0})
    project = Project(
        msp={0: tiny_msp},
        alignment=Alignment.from_angles([0.0]),
        volumes={"linear": volume},
        resolution={"linear": resolution},
        atoms={"linear": Atoms(positions=np.zeros((1, 3)), species=np.zeros(1, int))},
    )
    layers = {kw["name"]: kw for _, kw, _ in project_layers(project)}
    assert "MSP phase [tilt 0]" in layers and "Atoms (linear)" in layers
    assert layers["Volume (linear)"]["metadata"]["resolution"] is resolution
    assert layers["Volume (linear)"]["metadata"]["alignment"] is project.alignment
    assert "translate" not in layers["Atoms (linear)"]  # positions include the origin


def test_traced_atoms_of_a_volume_with_an_origin_sit_on_its_peaks_in_the_viewer():
    """trace_atoms gives positions with the Volume's origin in them, as the volume layer's
    translate places its voxels; the atoms layer must not add the origin again (it did,
    up to 10 Å off here)."""
    from napari_ptychotomo.analysis import trace_atoms

    voxel, origin = 0.5, np.array([10.0, -4.0, 7.0])
    r = np.array([3.0, 6.0, 9.0])  # Å from voxel 0: 27 Gaussian atoms on a 3 Å lattice
    centres = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    axis = np.arange(24) * voxel
    g = [np.exp(-((axis[None] - centres[:, k, None]) ** 2) / (2 * 0.5**2)) for k in range(3)]
    volume = Volume(data=np.einsum("az,ay,ax->zyx", *g).astype(np.float32), voxel_size=voxel, origin=origin)
    atoms = trace_atoms(volume, device="cpu")
    project = Project(volumes={"v": volume}, atoms={"v": atoms})
    layers = {kw["name"]: (data, kw) for data, kw, _ in project_layers(project)}
    volume_kw = layers["Volume (v)"][1]
    points, points_kw = layers["Atoms (v)"]
    truth_world = np.asarray(volume_kw["translate"]) + centres  # where the viewer draws the peaks
    points_world = points + np.asarray(points_kw.get("translate", (0.0, 0.0, 0.0)))
    assert len(points_world) == len(centres)
    nearest = np.linalg.norm(points_world[:, None] - truth_world[None], axis=-1).min(1)
    assert nearest.max() < 0.1, nearest.max()


def test_unknown_objects_are_refused_with_a_clear_message():
    with pytest.raises(TypeError, match="cannot show a dict"):
        layers_for({"not": "a result"})
