"""The amplitude data term every engine fits (Thibault & Guizar-Sicairos 2012; Odstrčil et
al. 2018): the residual √(I_model + ε) − √I_measured, summed squared. It weighs counts as
a Poisson-like (variance-stabilised) likelihood does and is what PtyRAD and pty-chi fit too.
"""

from __future__ import annotations

import torch

__all__ = ["amplitude_error", "amplitude_residual"]


def amplitude_residual(model_intensity: torch.Tensor, measured_amplitude: torch.Tensor, floor: float) -> torch.Tensor:
    """√(I_model + ``floor``) − ``measured_amplitude``, elementwise.

    ``floor`` (in the data's intensity unit) keeps the gradient 1 / (2√(I + floor)) finite
    where the model predicts no intensity; each engine passes one far below its smallest
    meaningful intensity (MSP works in detector counts, the joint engines in units of the
    mean pattern sum or of the incident beam).
    """
    return torch.sqrt(model_intensity + floor) - measured_amplitude


class _AmplitudeError(torch.autograd.Function):
    """Σ (√(I + ε) − a)² with its gradient (√(I + ε) − a) / √(I + ε) written out: the
    autograd chain of add, sqrt, sub, square and sum made ten passes over the batch, this
    makes five (forward + backward on 72 × 64² px, one thread: 0.26 ms against 0.87 ms)."""

    @staticmethod
    def forward(ctx, model_intensity, measured_amplitude, floor):
        root = torch.add(model_intensity, floor).sqrt_()
        residual = torch.sub(root, measured_amplitude)
        flat = residual.reshape(-1)
        ctx.save_for_backward(root, residual)
        return torch.dot(flat, flat)

    @staticmethod
    def backward(ctx, grad):
        root, residual = ctx.saved_tensors
        # ∂/∂I (√(I + ε) − a)² = (√(I + ε) − a) / √(I + ε)
        return torch.div(residual, root).mul_(grad), None, None


def amplitude_error(model_intensity: torch.Tensor, measured_amplitude: torch.Tensor, floor: float) -> torch.Tensor:
    """Σ (√(I_model + ``floor``) − ``measured_amplitude``)², a scalar: the sum of squares of
    :func:`amplitude_residual`, with a written-out gradient. The gradient is taken with
    respect to ``model_intensity`` only (the measurement is data)."""
    return _AmplitudeError.apply(model_intensity, measured_amplitude.to(model_intensity.dtype), float(floor))
