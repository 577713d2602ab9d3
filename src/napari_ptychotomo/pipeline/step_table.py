"""Every pipeline step described once: its name and place in the order, the function that
runs it, where its settings come from (the engine's parameter dataclass or function
signature, the arguments the pipeline fills in, the settings the pipeline itself adds),
where its documentation is, and what it stores in the project (for ``--resume``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..data import Project
from . import steps as run
from .steps import ALIGNED, DENOISED

__all__ = ["Step", "STEPS", "STEP_ORDER"]

Stored = Callable[[Project, dict[str, Any]], list[tuple[str, Any]]]


@dataclass(frozen=True)
class Step:
    """One step of the pipeline.

    ``settings`` returns the engine object whose fields or keywords are the step's
    settings (a dict for plain defaults); ``filled`` are the engine arguments the pipeline
    provides itself; ``extra`` the settings the pipeline adds, name → (default, help);
    ``docs`` where the settings are documented when not on ``settings``' object; ``stored``
    lists the step's results that a project holds, as (what, result); ``complete`` says
    whether those are all of them (``--resume`` skips a complete step).
    """

    name: str
    run: Callable[[run.StepContext], None]
    settings: Callable[[], Any]
    filled: tuple[str, ...] = ()
    extra: dict[str, tuple[Any, str]] = field(default_factory=dict)
    docs: Callable[[], Any] | None = None
    stored: Stored = lambda project, options: []
    complete: Callable[[Project, dict[str, Any]], bool] = lambda project, options: False


# --- where the settings come from (imported when asked, so the table stays light) -------


def _msp_params():
    from ..ptycho import MSPParams

    return MSPParams


def _joint_params():
    from ..joint import JointParams

    return JointParams


def _function(module: str, name: str) -> Callable[[], Callable]:
    def get():
        import importlib

        return getattr(importlib.import_module(module, __package__), name)

    return get


def _tracing_defaults() -> dict[str, Any]:
    from ..analysis import atom_tracing

    return dict(atom_tracing._DEFAULTS)


# --- what each step stores --------------------------------------------------------------


def _nothing_stored(project: Project, options: dict[str, Any]) -> list[tuple[str, Any]]:
    return []


def _msp_stored(project: Project, options: dict[str, Any]) -> list[tuple[str, Any]]:
    chosen = options.get("tilts", "all")
    tilts = sorted(project.msp) if chosen in (None, "all") else [int(k) for k in chosen]
    return [(f"msp tilt {k}", project.msp[k]) for k in tilts if k in project.msp]


def _msp_complete(project: Project, options: dict[str, Any]) -> bool:
    count = len(project.series) if project.series is not None else 0
    return count > 0 and all(k in project.msp for k in range(count))


def _alignment_stored(project: Project, options: dict[str, Any]) -> list[tuple[str, Any]]:
    found = [("align", project.alignment)] if project.alignment is not None else []
    return found + ([(ALIGNED, project.volumes[ALIGNED])] if ALIGNED in project.volumes else [])


def _alignment_complete(project: Project, options: dict[str, Any]) -> bool:
    # saved in two writes: a run stopped between them has the alignment without its volume
    return project.alignment is not None and ALIGNED in project.volumes


def _volume_stored(name: str) -> Stored:
    def stored(project: Project, options: dict[str, Any]) -> list[tuple[str, Any]]:
        return [(name, project.volumes[name])] if name in project.volumes else []

    return stored


def _named_stored(kind: str) -> Stored:
    """Results kept per volume name (``options["volume"]``, default the end-to-end one)."""

    def stored(project: Project, options: dict[str, Any]) -> list[tuple[str, Any]]:
        table, name = getattr(project, kind), options.get("volume", "end-to-end")
        return [(kind, table[name])] if name in table else []

    return stored


def _step(name, run_function, settings, filled, extra=None, docs=None, stored=_nothing_stored, complete=None) -> Step:
    """A step that is complete once it has stored anything, unless told otherwise."""
    if complete is None:

        def complete(project, options):
            return bool(stored(project, options))

    return Step(name, run_function, settings, filled, extra or {}, docs, stored, complete)


_ORDERED = (
    _step(
        "bright_field",
        run.run_bright_field,
        _function("..ptycho", "estimate_defocus"),
        ("scan",),
        extra={"use_for_msp": (True, "start MSP from the estimated defocus")},
    ),
    _step(
        "msp",
        run.run_msp,
        _msp_params,
        ("rates",),
        extra={
            "tilts": ("all", 'tilt indices to reconstruct, or "all"'),
            "rates": ({}, "per quantity [step, start iteration], e.g. object = [4.0, 0]"),
        },
        stored=_msp_stored,
        complete=_msp_complete,
    ),
    _step(
        "denoise",
        run.run_denoise,
        _function("..tomo", "denoise_projections"),
        ("stack",),
        stored=_volume_stored(DENOISED),
    ),
    _step(
        "align",
        run.run_align,
        _function("..tomo", "align_tilt_series_steps"),
        ("projections", "angles_deg", "pixel_size"),
        docs=_function("..tomo", "align_tilt_series"),
        stored=_alignment_stored,
        complete=_alignment_complete,
    ),
    _step(
        "linear",
        run.run_linear,
        _function("..tomo", "reconstruct_linear_steps"),
        ("projections", "alignment", "pixel_size"),
        docs=_function("..tomo", "reconstruct_linear"),
        stored=_volume_stored("linear"),
    ),
    _step(
        "end_to_end",
        run.run_end_to_end,
        _joint_params,
        ("rates",),
        extra={
            "rates": (
                {},
                "per quantity [step, start iteration], e.g. volume = [1.0, 0] (V per "
                "update from pass 0; default 1 V from the linear volume, 5 V "
                "from zero); the others keep their defaults",
            ),
            "optics": (
                {},
                "plane-wave (HRTEM) data only: the objective lens the "
                "reconstruction models, each key replacing the series' own "
                "value: aperture_mrad (objective aperture semi-angle, mrad), "
                "aberrations (a table: C12 and C30 in Å, phi12 in rad, ...), "
                "focal_spread (Å, standard deviation of the defocus), "
                "illumination_semiangle_mrad (mrad, 1/e half-width of the beam "
                'divergence), defocus_reference ("centre": from the '
                "rotation centre's plane, or \"exit\": from the box's exit "
                "surface)",
            ),
            "focal_spread_samples": (
                0,
                "plane-wave data only: 0 models the focal spread "
                "as an envelope; M > 0 as the exact sum of each "
                "image over M defoci (e.g. 15; M times the imaging "
                "FFTs)",
            ),
        },
        stored=_volume_stored("end-to-end"),
    ),
    _step(
        "resolution",
        run.run_resolution,
        _function("..analysis", "fsc"),
        ("volume1", "volume2", "voxel_size"),
        extra={"volume": ("end-to-end", "name of the volume whose halves are compared")},
        stored=_named_stored("resolution"),
    ),
    _step(
        "atoms",
        run.run_atoms,
        _tracing_defaults,
        ("volume",),
        extra={
            "volume": ("end-to-end", "name of the volume to trace"),
            "score_radius": (0.5, "match radius in Å when the project holds true atoms"),
        },
        docs=_function("..analysis", "trace_atoms"),
        stored=_named_stored("atoms"),
    ),
)

#: name → step, in pipeline order
STEPS: dict[str, Step] = {step.name: step for step in _ORDERED}
STEP_ORDER: tuple[str, ...] = tuple(STEPS)
