"""Running the pipeline over one project: plan, input, steps, resume, distributed ranks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import Project
from ..engine import Progress, resolve_device
from .config import ConfigError, validate_config
from .resume import recorded_changes, shaping_settings
from .step_table import STEPS
from .steps import StepContext

__all__ = ["PlannedStep", "Pipeline", "make_input"]


@dataclass
class PlannedStep:
    step: str
    status: str  # "run", "skip (done)", "run (resumes: …)", "refused (settings changed)"
    detail: str = ""


def open_input(source: dict[str, Any], validate: str = "sample") -> Project:
    """The file or folder of scans ``source["path"]`` as a Project, by the io readers;
    ``validate="none"`` opens only the headers (shapes, dtype, calibration) and reads no
    counts (the dry run's check; close the result with :func:`~napari_ptychotomo.io.close`)."""
    from ..io import load, load_tilt_series, may_hold_scans

    path = Path(source["path"])
    if path.is_dir():
        series = load_tilt_series(path, angles=source.get("angles") or None, validate=validate)
        return Project(series=series)
    loaded = load(path, validate=validate) if may_hold_scans(path) else load(path)
    if isinstance(loaded, Project):
        return loaded
    from ..data import ScanData, TiltSeries

    if isinstance(loaded, ScanData):
        return Project(series=TiltSeries(scans=[loaded], angles_deg=[loaded.tilt_deg]))
    if isinstance(loaded, TiltSeries):
        return Project(series=loaded)
    raise ValueError(f"input.path = {path}: holds a {type(loaded).__name__}, not 4D-STEM data")


def make_input(source: dict[str, Any], seed: int = 0) -> Project:
    """The project's starting content: a simulated sample or an imported file."""
    if source.get("path"):
        return open_input(source)
    from .. import simulate

    name = source.get("simulate", "default")
    if name == "default":
        series = simulate.default_sample(seed=seed)
    elif name == "nanoparticle":
        import numpy as np

        particle = simulate.fcc_nanoparticle("Pt", size=20.0, shape="octahedron", vacuum=2.0)
        series = simulate.simulate_tilt_series(
            particle,
            np.linspace(-60, 60, 9),
            seed=seed,
            scan_shape=(20, 20),
            scan_step=0.5,
            detector_shape=(64, 64),
            num_slices=4,
            dose=1e5,
        )
    elif name == "core_shell":
        import numpy as np

        particle = simulate.core_shell_particle()
        series = simulate.simulate_tilt_series(
            particle,
            np.linspace(-60, 60, 9),
            seed=seed,
            scan_shape=(20, 20),
            scan_step=0.5,
            detector_shape=(64, 64),
            num_slices=4,
            dose=1e5,
        )
    else:
        raise ValueError(f"input.simulate = {name!r}; nothing to simulate")
    return Project(series=series)


class Pipeline:
    """The chain of steps over one ``.ptycho.h5`` project.

    ``config`` is a validated configuration (:func:`~.config.load_config`). ``report``
    receives one-line messages, ``progress`` every engine :class:`Progress` with a label.
    Under ``torchrun`` (``WORLD_SIZE`` > 1) each rank takes its share of the per-tilt MSP
    and the end-to-end step all-reduces its gradients; only rank 0 writes files.
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        report: Callable[[str], None] = print,
        progress: Callable[[str, Progress], None] | None = None,
    ):
        self.config = validate_config(config) if "run" not in config or "input" not in config else config
        self.path = Path(self.config["run"]["project"])
        self.device = resolve_device(self.config["run"]["device"])
        self.seed = int(self.config["run"]["seed"])
        self.report = report
        self.progress = progress or (lambda label, p: None)
        self.rank, self.world = 0, 1

    # -- planning ---------------------------------------------------------------------
    def _load(self) -> Project | None:
        if not self.path.exists():
            return None
        from ..io import load

        return load(self.path, as_project=True, validate="none")

    def plan(
        self, resume: bool = False, steps: list[str] | None = None, restart: str | None = None
    ) -> list[PlannedStep]:
        """What :meth:`run` would do, without computing anything: per step whether it runs
        and, where it would do nothing or is refused, why (``detail`` lists the settings
        otherwise). ``restart`` as in :meth:`run`."""
        project = self._load()
        chosen = steps or self.config["run"]["steps"]
        self._check_restart(restart, chosen)
        resume = resume or restart is not None
        planned = []
        if project is None:
            source = self.config["input"]
            if source.get("path"):  # the input's headers, so that a file the run cannot read fails here
                from ..io import close

                close(open_input(source, validate="none"))
            what = source.get("path") or f"simulate the {source['simulate']!r} sample"
            planned.append(PlannedStep("input", "run", f"{what} → {self.path}"))
        for step in chosen:
            planned.append(self._plan_step(step, chosen, project, resume and not self._redo(step, restart)))
        return planned

    def _plan_step(self, step: str, chosen: list[str], project: Project | None, keep: bool) -> PlannedStep:
        """One step of :meth:`plan`; ``keep``: its results in the project are kept (resume)."""
        options = self.config.get(step, {})
        done = project is not None and STEPS[step].complete(project, options)
        stale = self._newer_input(step, project) if keep and done else None
        status = "skip (done)" if (keep and done and stale is None) else "run"
        if keep and step == "msp" and project is not None and project.msp and not done:
            status = f"run (resumes: {len(project.msp)} tilt(s) done)"
        detail = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
        changed = recorded_changes(step, project, self.config) if keep and project is not None else None
        if changed is not None:
            return PlannedStep(step, "refused (settings changed)", _changes_text(*changed))
        reason = None if status.startswith("skip") else self._no_op_reason(step, chosen, project)
        if reason is not None and step == "resolution" and self._has_truth(project):
            status, detail = "run (truth only)", f"{reason}; FSC against the simulator's truth only"
        elif reason is not None:
            status, detail = "skip (nothing to do)", reason
        elif stale is not None:
            status = "run (older than its input)"
            detail = f"its results predate the {stale} results they were made from; {detail}"
        return PlannedStep(step, status, detail)

    def _newer_input(self, step: str, project: Project) -> str | None:
        """The earlier step whose stored results were finished after ``step``'s, else None.

        Such results were made from inputs that have since been replaced (a run without
        ``--resume`` or ``--restart-step`` stopped after recomputing an earlier step), so
        ``--resume`` recomputes them. Results without a finishing time are kept.
        """
        from .config import STEP_ORDER

        own = _finished(STEPS[step].stored(project, self.config.get(step, {})))
        if not own:
            return None
        for earlier in STEP_ORDER[: STEP_ORDER.index(step)]:
            theirs = _finished(STEPS[earlier].stored(project, self.config.get(earlier, {})))
            if theirs and max(theirs) > min(own):
                return earlier
        return None

    def _has_truth(self, project: Project | None) -> bool:
        """Whether the project has (or the input will give it) a simulator's truth volume."""
        if project is None:
            source = self.config["input"]
            return not source.get("path") and source.get("simulate", "none") != "none"
        truth = getattr(project.series, "truth", None) or {}
        return truth.get("volume") is not None

    def _no_op_reason(self, step: str, chosen: list[str], project: Project | None) -> str | None:
        """Why ``step`` would do nothing in this run (it reports a skip), else None."""
        if step == "resolution":
            name = self.config.get("resolution", {}).get("volume", "end-to-end")
            if name == "end-to-end" and "end_to_end" in chosen:
                if not self.config.get("end_to_end", {}).get("half_data", False):
                    return (
                        "end_to_end.half_data = false: the end-to-end volume will have no half-data volumes to compare"
                    )
                return None
            volume = project.volumes.get(name) if project is not None else None
            if volume is None or volume.halves is None:
                return f"volume {name!r} has no half-data volumes in the project"
        return None

    # -- running ----------------------------------------------------------------------
    def _start_distributed(self) -> None:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        if self.device.type == "cuda":
            import torch

            self.device = torch.device("cuda", self.rank % torch.cuda.device_count())

    def _barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def run(self, resume: bool = False, steps: list[str] | None = None, restart: str | None = None) -> Project:
        """Run the configured steps (or ``steps``) and return the project as saved.

        ``resume`` keeps results already in the project (finished steps, MSP tilts) when the
        settings that shaped them are those of this configuration, and refuses with the
        differences otherwise (:class:`~.config.ConfigError`, before any work).
        ``restart`` (a step name, implies ``resume``) recomputes that step and every later
        one, keeping those before it.
        """
        chosen = steps or self.config["run"]["steps"]
        self._check_restart(restart, chosen)
        resume = resume or restart is not None
        if resume:
            self._refuse_changed(chosen, restart)
        self._start_distributed()
        # the input section only creates the project; an existing project is reused
        if self.rank == 0 and not self.path.exists():
            from ..io import save

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.report(f"input → {self.path}")
            save(make_input(self.config["input"], self.seed), self.path)
        self._barrier()
        from ..io import load

        ctx = StepContext(
            path=self.path,
            project=load(self.path, as_project=True, validate="none"),
            options={},
            device=self.device,
            seed=self.seed,
            resume=resume,
            rank=self.rank,
            world=self.world,
            report=self._say,
            progress=self.progress,
        )
        for step in chosen:
            ctx.options = dict(self.config.get(step, {}))
            ctx.settings = shaping_settings(step, self.config)
            ctx.resume = resume and not self._redo(step, restart)
            if ctx.resume and STEPS[step].complete(ctx.project, ctx.options):
                stale = self._newer_input(step, ctx.project)
                if stale is None:
                    self._say(f"{step}: done already (resume)")
                    continue
                self._say(f"{step}: its results predate the {stale} results they were made from; recomputing")
            self._say(f"{step} ...")
            started = time.perf_counter()
            STEPS[step].run(ctx)
            self._say(f"{step}: done in {time.perf_counter() - started:.1f} s")
            self._barrier()
            ctx.reload()
        return ctx.project

    @staticmethod
    def _redo(step: str, restart: str | None) -> bool:
        from .config import STEP_ORDER

        return restart is not None and STEP_ORDER.index(step) >= STEP_ORDER.index(restart)

    @staticmethod
    def _check_restart(restart: str | None, chosen: list[str]) -> None:
        if restart is not None and restart not in chosen:
            raise ConfigError(f"--restart-step {restart}: not among the steps of this run (run.steps = {list(chosen)})")

    def _refuse_changed(self, chosen: list[str], restart: str | None) -> None:
        """Refuse to resume over results made with other settings, before any work."""
        project = self._load()
        if project is None:
            return
        for step in chosen:
            changed = None if self._redo(step, restart) else recorded_changes(step, project, self.config)
            if changed is not None:
                raise ConfigError(
                    f"--resume: {_changes_text(*changed)}. Resuming would mix results made with "
                    f"different settings: re-run with --restart-step {step} to recompute {step} "
                    "and the steps after it (earlier results are kept), without --resume to "
                    "recompute everything, or restore the old settings"
                )

    def _say(self, message: str) -> None:
        if self.rank == 0:
            self.report(message)


def _changes_text(what: str, changes: list[tuple[str, Any, Any]]) -> str:
    """``msp tilt 0 was made with other settings: msp.iterations 2 → 4, …``"""
    listed = "; ".join(f"{key} {old!r} → {new!r}" for key, old, new in changes)
    return f"{what} was made with other settings ({listed})"


def _finished(stored: list[tuple[str, Any]]) -> list[str]:
    """The finishing times (ISO 8601, UTC, comparable as text) of stored results."""
    times = []
    for _what, result in stored:
        record = getattr(result, "provenance", None)
        when = record.get("finished") if isinstance(record, dict) else None
        if isinstance(when, str):
            times.append(when)
    return times
