"""A fused multislice pass with a hand-written backward (the hot loop of ptychography).

Autograd of the plain loop in :mod:`.multislice` stores and copies more than it needs.
This function stores exactly what the gradient needs (the wave entering each slice and,
when the propagator is learned, each slice's spectrum), works in place, and needs the same
number of FFTs as the forward pass: 2 per slice and 1 for the far field, both ways.

Adjoints (PyTorch's convention: the gradient of a real loss L with respect to a complex z
is ∂L/∂Re z + i ∂L/∂Im z): for y = a·b, ā = ȳ·conj(b); for y = fft2(x), x̄ = N·ifft2(ȳ);
for y = ifft2(x), x̄ = fft2(ȳ)/N; for I = |Ψ|², Ψ̄ = 2·Ψ·Ī.
"""

from __future__ import annotations

import torch

__all__ = ["multislice_intensities"]


def _intensity(wave_k: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(wave_k).square().sum(-1)


def _sum_modes(x: torch.Tensor) -> torch.Tensor:
    return x[:, 0] if x.shape[1] == 1 else x.sum(1)  # a sum over one mode would copy


class _Multislice(torch.autograd.Function):
    @staticmethod
    def forward(ctx, waves, patches, propagator):
        # waves (B, M, n, m); patches (B, S, n, m); propagator (n, m) or (B, 1, n, m)
        learn_propagator = ctx.needs_input_grad[2]
        entering, spectra = [], []
        psi = waves
        for s in range(patches.shape[1]):
            entering.append(psi)
            spectrum = torch.fft.fft2(psi * patches[:, s, None])
            if learn_propagator:
                spectra.append(spectrum)
                psi = torch.fft.ifft2(spectrum * propagator)
            else:
                psi = torch.fft.ifft2(spectrum.mul_(propagator))
        far = torch.fft.fft2(psi, norm="ortho")
        intensities = _sum_modes(_intensity(far))
        ctx.save_for_backward(patches, propagator, far, *entering, *spectra)
        ctx.num_slices = patches.shape[1]
        return torch.fft.fftshift(intensities, dim=(-2, -1))

    @staticmethod
    def backward(ctx, grad_intensities):
        patches, propagator, far, *saved = ctx.saved_tensors
        num = ctx.num_slices
        entering, spectra = saved[:num], saved[num:]
        grad_i = torch.fft.ifftshift(grad_intensities, dim=(-2, -1))
        grad_psi = torch.fft.ifft2(far * (2.0 * grad_i[:, None]), norm="ortho")
        grad_patches = torch.empty_like(patches) if ctx.needs_input_grad[1] else None
        grad_prop = torch.zeros_like(propagator) if ctx.needs_input_grad[2] else None
        pixels = propagator.shape[-1] * propagator.shape[-2]
        for s in reversed(range(num)):
            grad_k = torch.fft.fft2(grad_psi)
            if grad_prop is not None:
                term = grad_k * spectra[s].conj()
                term = term.sum(dim=(0, 1)) if propagator.ndim == 2 else term.sum(dim=1, keepdim=True)
                grad_prop += term / pixels
            grad_phi = torch.fft.ifft2(grad_k.mul_(propagator.conj()))
            if grad_patches is not None:
                grad_patches[:, s] = _sum_modes(grad_phi * entering[s].conj())
            grad_psi = grad_phi.mul_(patches[:, s, None].conj())
        return grad_psi, grad_patches, grad_prop


def multislice_intensities(
    waves: torch.Tensor, patches: torch.Tensor, propagator: torch.Tensor
) -> torch.Tensor:
    """Centred far-field intensities ``(B, n, m)`` summed over modes.

    ``waves (B, M, n, m)`` enter slice 0; ``patches (B, S, n, m)`` are the slices'
    transmission at each position; after each slice the wave is propagated by
    ``propagator`` ((n, m), or (B, n, m) for one per position).
    """
    prop = propagator if propagator.ndim == 2 else propagator[:, None]
    return _Multislice.apply(waves, patches, prop)
