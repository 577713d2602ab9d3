import numpy as np
import pytest
import torch

from napari_ptychotomo.physics import (
    ctf,
    exit_wave,
    far_field,
    forward_intensities,
    fresnel_propagator,
    interaction_constant,
    make_probe,
    spatial_frequencies,
    transmission,
    wavelength,
)

E = 200e3


def _setup(ref, tilt=(0.0, 0.0)):
    sampling = float(ref.attrs["sampling_A"])
    potential = torch.tensor(ref["potential_slices"][()])
    t = transmission(potential, interaction_constant(E))
    prop = fresnel_propagator((128, 128), sampling, wavelength(E), float(ref.attrs["slice_thickness_A"]), tilt)
    return t, prop


def _pattern_error(ours, theirs):
    ours = ours / ours.sum(axis=(-2, -1), keepdims=True)
    theirs = theirs / theirs.sum(axis=(-2, -1), keepdims=True)
    return float(np.mean(np.abs(ours - theirs).sum(axis=(-2, -1))))


@pytest.mark.parametrize("probe", ["probe_a", "probe_b"])
@pytest.mark.parametrize("case, tilt", [("untilted", (0.0, 0.0)), ("mistilt", (3.0, -2.0))])
def test_multislice_reproduces_abtem_diffraction(abtem_reference, probe, case, tilt):
    ref = abtem_reference
    t, prop = _setup(ref, tilt)
    waves = torch.tensor(ref[f"{probe}/wave_at_positions"][()])
    intensities = (torch.abs(far_field(exit_wave(t, waves, prop))) ** 2).numpy()
    assert _pattern_error(intensities, ref[f"{probe}/intensities_{case}"][()]) <= 1e-3


def test_flipped_mistilt_sign_is_far_from_abtem(abtem_reference):
    ref = abtem_reference
    t, prop = _setup(ref, (-3.0, 2.0))
    waves = torch.tensor(ref["probe_a/wave_at_positions"][()])
    intensities = (torch.abs(far_field(exit_wave(t, waves, prop))) ** 2).numpy()
    assert _pattern_error(intensities, ref["probe_a/intensities_mistilt"][()]) > 0.01


def test_plane_wave_exit_wave_and_ctf_images_match_abtem(abtem_reference):
    ref = abtem_reference
    t, prop = _setup(ref)
    psi = exit_wave(t, torch.ones(128, 128, dtype=torch.complex64), prop).numpy()
    expected = ref["hrtem/exit_wave"][()]
    assert np.abs(psi - expected).sum() / np.abs(expected).sum() <= 3e-3
    ky, kx = spatial_frequencies((128, 128), float(ref.attrs["sampling_A"]))
    stored = torch.tensor(expected)
    for defocus in (0, 50, 150):
        image = torch.abs(torch.fft.ifft2(torch.fft.fft2(stored) * ctf(ky, kx, wavelength(E), {"C10": -defocus}))) ** 2
        target = ref[f"hrtem/image_defocus_{defocus}"][()]
        assert np.abs(image.numpy() - target).max() <= 1e-4 * target.max()


def test_weak_phase_object_matches_first_order_expansion():
    n, sigma = 64, interaction_constant(300e3)
    rng = np.random.default_rng(0)
    potential = torch.tensor(rng.normal(scale=0.05, size=(1, n, n)), dtype=torch.float32)  # V·Å
    t = transmission(potential, sigma, band_limit=False)
    first_order = 1 + 1j * sigma * potential[0]
    assert float(torch.abs(t[0] - first_order).max()) < 5 * (sigma * 0.05 * 5) ** 2


def test_cropped_batched_forward_equals_full_field_multislice():
    n, sampling, energy = 64, 0.2, 300e3
    rng = np.random.default_rng(1)
    potential = torch.tensor(rng.normal(size=(3, n, n)) * 5, dtype=torch.float32)
    t = transmission(potential, interaction_constant(energy))
    prop = fresnel_propagator((n, n), sampling, wavelength(energy), 10.0, (2.0, 1.0))
    probe = make_probe((n, n), sampling, energy, 20.0, {"C10": -30.0})
    positions = torch.tensor([[32.3, 32.7], [32.9, 32.0]])  # corner (0, 0): patch = whole field
    batched = forward_intensities(t, probe[None], positions, prop)
    for k, (py, px) in enumerate(positions.tolist()):
        full = make_probe((n, n), sampling, energy, 20.0, {"C10": -30.0}, position=(py * sampling, px * sampling))
        direct = torch.abs(far_field(exit_wave(t, full, prop))) ** 2
        assert torch.allclose(batched[k], direct, atol=1e-6)
    assert float(batched.sum(axis=(-2, -1)).max()) <= 1.0 + 1e-5


def test_batch_of_positions_needs_no_python_loop_and_rejects_positions_outside():
    t = torch.ones(2, 40, 40, dtype=torch.complex64)
    probe = torch.ones(2, 16, 16, dtype=torch.complex64) / 32
    prop = torch.ones(16, 16, dtype=torch.complex64)
    positions = torch.tensor([[10.0, 10.0], [20.5, 25.25], [30.0, 30.0]])
    assert forward_intensities(t, probe, positions, prop).shape == (3, 16, 16)
    with pytest.raises(ValueError, match="leaves the object"):
        forward_intensities(t, probe, torch.tensor([[35.0, 10.0]]), prop)


def test_forward_model_gradients_agree_with_finite_differences_in_float64():
    torch.manual_seed(0)
    n, sampling, lam, sigma = 16, 0.3, wavelength(300e3), interaction_constant(300e3)
    potential = (torch.randn(2, 28, 28, dtype=torch.float64) * 3).requires_grad_()
    absorption = torch.rand(2, 28, 28, dtype=torch.float64) * 0.5
    probe = (torch.randn(2, n, n, dtype=torch.complex128) / n).requires_grad_()
    positions = torch.tensor([[12.3, 13.6], [15.1, 11.8]], dtype=torch.float64, requires_grad=True)
    tilt = torch.tensor([2.0, -1.0], dtype=torch.float64, requires_grad=True)
    thickness = torch.tensor(8.0, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(2, n, n, dtype=torch.float64)

    def loss(potential, probe, positions, tilt, thickness):
        t = transmission(torch.complex(potential, absorption), sigma, band_limit=False)
        prop = fresnel_propagator((n, n), sampling, lam, thickness, tilt)
        return torch.sum(weights * forward_intensities(t, probe, positions, prop))

    args = (potential, probe, positions, tilt, thickness)
    value = loss(*args)
    grads = torch.autograd.grad(value, args)
    eps = 1e-6
    checks = [
        (0, (1, 13, 14)),
        (1, (0, 8, 8)),
        (2, (0, 1)),
        (2, (1, 0)),
        (3, (0,)),
        (3, (1,)),
        (4, ()),
    ]
    for which, index in checks:
        bumped = [a.detach().clone() for a in args]
        bumped[which][index] += eps
        plus = loss(*bumped)
        bumped[which][index] -= 2 * eps
        minus = loss(*bumped)
        numeric = float((plus - minus) / (2 * eps))
        analytic = grads[which][index]
        if analytic.is_complex():  # d/d(real part) of a real loss = 2 Re(conj-Wirtinger grad)
            analytic = analytic.real
        assert float(analytic) == pytest.approx(numeric, rel=1e-5, abs=1e-9), (which, index)


@pytest.mark.parametrize("positions_per_chunk", [None, 1, 2])
@pytest.mark.parametrize("per_position_propagator", [False, True])
def test_fused_backward_equals_autograd_of_the_plain_loop(per_position_propagator, positions_per_chunk, monkeypatch):
    from napari_ptychotomo.physics import fused
    from napari_ptychotomo.physics.fused import multislice_intensities
    from napari_ptychotomo.physics.multislice import crop_patches, propagate

    if positions_per_chunk:  # cache-sized chunks on the CPU (2 of 3: a short last chunk)
        monkeypatch.setattr(fused, "_CPU_CHUNK_BYTES", positions_per_chunk * 2 * 12 * 12 * 16)

    torch.manual_seed(2)
    b, m, s, n = 3, 2, 3, 12
    waves = torch.randn(b, m, n, n, dtype=torch.complex128, requires_grad=True)
    obj = torch.randn(s, n + 4, n + 5, dtype=torch.complex128, requires_grad=True)
    corners = torch.tensor([[0, 1], [3, 5], [2, 4]])  # the windows overlap
    shape = (b, n, n) if per_position_propagator else (n, n)
    prop = torch.randn(*shape, dtype=torch.complex128, requires_grad=True)
    weights = torch.rand(b, n, n, dtype=torch.float64)

    fused = torch.sum(weights * multislice_intensities(waves, obj, corners, prop))
    fused_grads = torch.autograd.grad(fused, (waves, obj, prop))

    psi, p = waves, (prop if prop.ndim == 2 else prop[:, None])
    patches = crop_patches(obj, corners, n)
    for k in range(s):
        psi = propagate(psi * patches[:, k, None], p)
    plain = torch.sum(weights * torch.sum(torch.abs(far_field(psi)) ** 2, dim=1))
    plain_grads = torch.autograd.grad(plain, (waves, obj, prop))
    assert fused.item() == pytest.approx(plain.item(), rel=1e-12)
    for a, b_ in zip(fused_grads, plain_grads):
        assert torch.allclose(a, b_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("checkerboard", [False, True])
def test_subpixel_shift_of_probe_modes_has_exact_gradients(checkerboard):
    # the batched shift of one set of modes has a hand-written backward
    from napari_ptychotomo.physics.multislice import _shift_waves

    torch.manual_seed(4)
    modes = torch.randn(2, 8, 8, dtype=torch.complex128, requires_grad=True)
    shifts = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, s: _shift_waves(w, s, checkerboard), (modes, shifts))
    batched = _shift_waves(modes[None].expand(3, -1, -1, -1), shifts, checkerboard)  # the autograd path
    assert torch.allclose(_shift_waves(modes, shifts, checkerboard), batched, atol=1e-13)


@pytest.mark.parametrize("per_position_propagator", [False, True])
def test_checkerboard_waves_give_the_same_intensities_and_gradients(per_position_propagator):
    # (−1)^(y+x)·ψ has its spectrum shifted by N/2: the fused pass then needs no fftshift
    from napari_ptychotomo.physics.fused import multislice_intensities

    torch.manual_seed(3)
    b, m, s, n = 2, 2, 3, 8
    waves = torch.randn(b, m, n, n, dtype=torch.complex128, requires_grad=True)
    obj = torch.randn(s, n + 3, n + 2, dtype=torch.complex128, requires_grad=True)
    corners = torch.tensor([[1, 0], [3, 2]])
    prop = torch.randn(*((b, n, n) if per_position_propagator else (n, n)), dtype=torch.complex128, requires_grad=True)
    weights = torch.rand(b, n, n, dtype=torch.float64)
    sign = (-1.0) ** (torch.arange(n)[:, None] + torch.arange(n)[None, :])
    plain = torch.sum(weights * multislice_intensities(waves, obj, corners, prop))
    checker = torch.sum(weights * multislice_intensities(waves * sign, obj, corners, prop, checkerboard=True))
    assert checker.item() == pytest.approx(plain.item(), rel=1e-12)
    for a, b_ in zip(torch.autograd.grad(checker, (waves, obj, prop)), torch.autograd.grad(plain, (waves, obj, prop))):
        assert torch.allclose(a, b_, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="even window"):
        multislice_intensities(waves[..., :7, :7], obj, corners, prop[..., :7, :7], checkerboard=True)


def test_amplitude_residual_has_a_finite_gradient_where_the_model_predicts_nothing():
    from napari_ptychotomo.physics.loss import amplitude_residual

    model = torch.tensor([0.0, 4.0], requires_grad=True)
    residual = amplitude_residual(model, torch.tensor([1.0, 1.0]), floor=1e-8)
    np.testing.assert_allclose(residual.detach().numpy(), [1e-4 - 1.0, 1.0], rtol=1e-6)
    residual.sum().backward()
    np.testing.assert_allclose(model.grad.numpy(), [0.5 / 1e-4, 0.25], rtol=1e-4)


def test_amplitude_error_is_the_sum_of_squared_residuals_with_their_gradient():
    """The written-out loss against the hand value at a zero-intensity pixel (where the
    floor sets the gradient (√ε − a)/√ε) and a float64 numerical gradient."""
    from napari_ptychotomo.physics.loss import amplitude_error

    model = torch.tensor([0.0, 4.0], requires_grad=True)
    error = amplitude_error(model, torch.tensor([1.0, 1.0]), floor=1e-8)
    assert error.item() == pytest.approx((1e-4 - 1.0) ** 2 + 1.0, rel=1e-6)
    error.backward()
    np.testing.assert_allclose(model.grad.numpy(), [(1e-4 - 1.0) / 1e-4, 1.0 / 2.0], rtol=1e-5)
    rng = np.random.default_rng(1)
    intensity = torch.as_tensor(rng.uniform(0.1, 5.0, size=(3, 4, 4))).requires_grad_(True)
    amplitude = torch.as_tensor(rng.uniform(0.0, 2.0, size=(3, 4, 4)))
    assert torch.autograd.gradcheck(lambda i: amplitude_error(i, amplitude, 1e-3), (intensity,))


def test_transmission_of_a_complex_potential_has_the_gradient_of_exp_i_sigma_v():
    """Its hand-written backward (−iσ·conj(t)·ḡ) against autograd of torch.exp(iσV) and a
    numerical gradient."""
    from napari_ptychotomo.physics import transmission

    rng = np.random.default_rng(0)
    v = torch.as_tensor(rng.normal(size=(3, 8, 8)) + 1j * rng.uniform(size=(3, 8, 8))).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: transmission(x, 0.7, band_limit=False), (v,))
    weight = torch.as_tensor(rng.normal(size=(3, 8, 8)) + 1j * rng.normal(size=(3, 8, 8)))
    ours = torch.autograd.grad((transmission(v, 0.7, band_limit=False) * weight).real.sum(), v)[0]
    plain = torch.autograd.grad((torch.exp(0.7j * v) * weight).real.sum(), v)[0]
    assert torch.allclose(ours, plain, atol=1e-12)
