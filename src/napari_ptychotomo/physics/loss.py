"""The amplitude data term every engine fits (Thibault & Guizar-Sicairos 2012; Odstrčil et
al. 2018): the residual √(I_model + ε) − √I_measured, summed squared. It weighs counts as
a Poisson-like (variance-stabilised) likelihood does and is what PtyRAD and pty-chi fit too.
"""

from __future__ import annotations

import torch

__all__ = ["amplitude_residual"]


def amplitude_residual(model_intensity: torch.Tensor, measured_amplitude: torch.Tensor, floor: float) -> torch.Tensor:
    """√(I_model + ``floor``) − ``measured_amplitude``, elementwise.

    ``floor`` (in the data's intensity unit) keeps the gradient 1 / (2√(I + floor)) finite
    where the model predicts no intensity; each engine passes one far below its smallest
    meaningful intensity (MSP works in detector counts, the joint engines in units of the
    mean pattern sum or of the incident beam).
    """
    return torch.sqrt(model_intensity + floor) - measured_amplitude
