import numpy as np
import pytest
import torch

from napari_ptychotomo.physics import (
    fresnel_propagator,
    make_probe,
    orthogonalize_modes,
    probe_modes,
    propagate,
    wavelength,
)


def _reference_aberrations(group):
    attrs = dict(group.attrs)
    aberrations = {"C10": -float(attrs["defocus"])}
    for key in ("C12", "phi12", "C30"):
        if key in attrs:
            aberrations[key] = float(attrs[key])
    return aberrations


@pytest.mark.parametrize("name", ["probe_a", "probe_b"])
def test_probe_matches_abtem_at_every_position(abtem_reference, name):
    ref = abtem_reference
    group = ref[name]
    sampling = float(ref.attrs["sampling_A"])
    waves = group["wave_at_positions"][()]
    for wave, position in zip(waves, ref["positions_yx"][()]):
        ours = make_probe((128, 128), sampling, 200e3, 21.4, _reference_aberrations(group), position=position)
        overlap = abs(np.vdot(wave / np.linalg.norm(wave), ours.numpy()))
        assert overlap >= 0.9999


def test_wrong_astigmatism_angle_sign_is_detected(abtem_reference):
    ref = abtem_reference
    aberrations = _reference_aberrations(ref["probe_b"])
    aberrations["phi12"] = -aberrations["phi12"]
    wave = ref["probe_b/wave_at_positions"][0]
    ours = make_probe(
        (128, 128), float(ref.attrs["sampling_A"]), 200e3, 21.4, aberrations, position=ref["positions_yx"][0]
    )
    assert abs(np.vdot(wave / np.linalg.norm(wave), ours.numpy())) < 0.9


def test_probe_is_normalised_and_centred():
    probe = make_probe((64, 64), 0.2, 300e3, 25.0, {"C10": 0.0})
    assert float(torch.sum(torch.abs(probe) ** 2)) == pytest.approx(1.0, abs=1e-5)
    peak = np.unravel_index(torch.argmax(torch.abs(probe)).item(), probe.shape)
    assert peak == (32, 32)


def test_propagating_focused_probe_by_defocus_equals_defocused_probe():
    shape, sampling, energy = (128, 128), 0.15, 300e3
    focused = make_probe(shape, sampling, energy, 25.0, {"C10": 0.0})
    defocused = make_probe(shape, sampling, energy, 25.0, {"C10": -80.0})  # 80 Å underfocus
    # the beam converges 80 Å below the entrance plane: propagate the focused probe back
    # up by 80 Å (vacuum, no band limit needed inside the aperture)
    propagator = fresnel_propagator(shape, sampling, wavelength(energy), -80.0, band_limit=False)
    moved = propagate(focused, propagator)
    overlap = abs(torch.sum(moved.conj() * defocused)).item()
    assert overlap > 0.9999


def test_probe_modes_are_orthogonal_and_keep_the_power():
    probe = make_probe((64, 64), 0.25, 300e3, 20.0, {"C10": -50.0})
    modes = probe_modes(probe, 4, power_fraction=0.2)
    gram = torch.einsum("ayx,byx->ab", modes.conj(), modes)
    off_diagonal = gram - torch.diag(torch.diagonal(gram))
    assert float(torch.abs(off_diagonal).max()) < 1e-5
    assert float(torch.sum(torch.abs(modes) ** 2)) == pytest.approx(1.0, abs=1e-4)
    assert float(gram[0, 0].real) == pytest.approx(0.8, abs=1e-4)


def test_orthogonalize_modes_keeps_incoherent_sum_and_sorts_power():
    generator = torch.Generator().manual_seed(1)
    modes = torch.randn(3, 16, 16, dtype=torch.complex64, generator=generator)
    modes[2] *= 3
    ortho = orthogonalize_modes(modes)
    gram = torch.einsum("ayx,byx->ab", ortho.conj(), ortho)
    power = torch.diagonal(gram).real
    assert torch.all(power[:-1] >= power[1:])
    assert float(torch.abs(gram - torch.diag(torch.diagonal(gram))).max()) < 1e-3 * float(power[0])
    # the density matrix sum_m |m><m| is unchanged
    a = torch.einsum("mi,mj->ij", modes.reshape(3, -1), modes.reshape(3, -1).conj())
    b = torch.einsum("mi,mj->ij", ortho.reshape(3, -1), ortho.reshape(3, -1).conj())
    assert float(torch.abs(a - b).max()) < 1e-3 * float(torch.abs(a).max())


def test_orthogonalize_modes_returns_non_finite_modes_unchanged_for_the_divergence_check():
    modes = torch.ones((2, 8, 8), dtype=torch.complex64)
    modes[1, 0, 0] = float("nan")
    out = orthogonalize_modes(modes)  # the decomposition would raise a LinAlgError
    assert out is modes
