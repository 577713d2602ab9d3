"""The whole workflow as one reproducible run over a ``.ptycho.h5`` project.

bright-field start → MSP per tilt → denoise → align → linear tomography → end-to-end →
resolution → atoms. Configured by one TOML file (:mod:`.config`), run by
:class:`~.runner.Pipeline` (checkpoints after every tilt, ``resume``, ``torchrun`` ranks).
"""

from .config import STEP_ORDER, ConfigError, load_config, validate_config
from .runner import Pipeline, PlannedStep, make_input
from .template import template

__all__ = [
    "STEP_ORDER",
    "ConfigError",
    "load_config",
    "template",
    "validate_config",
    "Pipeline",
    "PlannedStep",
    "make_input",
]
