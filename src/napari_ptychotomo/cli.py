"""The ``ptychotomo`` command line.

Exit codes: 0 success, 2 bad usage or configuration (including an output folder this
user may not write to), 3 bad input data or a file that cannot be read or written
(permission denied, disk full), 4 a reconstruction failed (diverged, out of memory),
130 interrupted (results up to the last checkpoint are kept; re-run with ``--resume``).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_USAGE, EXIT_DATA, EXIT_ENGINE, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
STEP_COMMANDS = {
    "msp": "msp",
    "denoise": "denoise",
    "align": "align",
    "linear": "linear",
    "end-to-end": "end_to_end",
    "resolution": "resolution",
    "atoms": "atoms",
    "bright-field": "bright_field",
}


def _parse_value(text: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _settings(pairs: list[str]) -> dict[str, Any]:
    from .pipeline import ConfigError

    out = {}
    for pair in pairs or []:
        if "=" not in pair or not pair.split("=", 1)[0].strip():
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE (a TOML value), e.g. --set iterations=20")
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value.strip())
    return out


class _Bars:
    """tqdm progress bars, one per engine label."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, label: str, progress) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(label)
        if bar is None or bar.total != progress.total:
            if bar is not None:
                bar.close()
            bar = self.bars[label] = tqdm(total=progress.total, desc=label, leave=False, file=sys.stderr)
        bar.n = progress.step
        if progress.loss == progress.loss:
            bar.set_postfix(loss=f"{progress.loss:.4g}", refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def _pipeline(config: dict, quiet: bool):
    from .pipeline import Pipeline

    bars = _Bars(enabled=not quiet and sys.stderr.isatty())
    return Pipeline(config, report=(lambda m: None) if quiet else print, progress=bars), bars


def cmd_config(args) -> int:
    from .pipeline import template
    from .pipeline.demo import demo_toml

    if args.template == args.demo:
        print("use: ptychotomo config --template > run.toml (every setting, commented), or")
        print("     ptychotomo config --demo > run.toml (the demo's settings for its bundled sample)")
        return EXIT_USAGE
    sys.stdout.write(template() if args.template else demo_toml())
    return EXIT_OK


def cmd_run(args) -> int:
    from .pipeline import load_config

    config = load_config(args.config)
    if args.device:
        config["run"]["device"] = args.device
    pipeline, bars = _pipeline(config, args.quiet)
    if args.dry_run:
        plan = pipeline.plan(resume=args.resume, restart=args.restart_step)  # opens the input's headers
        print(f"project: {pipeline.path}   device: {pipeline.device}   seed: {pipeline.seed}")
        for k, planned in enumerate(plan, 1):
            print(f"{k}. {planned.step:<13} {planned.status:<28} {planned.detail}")
        return EXIT_OK
    try:
        pipeline.run(resume=args.resume, restart=args.restart_step)
    finally:
        bars.close()
    print(f"results in {pipeline.path}")
    return EXIT_OK


def cmd_step(args) -> int:
    from .pipeline import validate_config

    step = STEP_COMMANDS[args.command]
    settings = _settings(args.set)  # a usage error first, whatever the project
    if not args.project.exists():  # else the config check speaks of input.path and run.project
        from .io import PtychoFormatError

        raise PtychoFormatError(
            args.project,
            "no such project file; make one with `ptychotomo simulate` or `ptychotomo run` "
            "(a configuration from `ptychotomo config --demo`)",
        )
    config = validate_config(
        {
            "run": {"project": str(args.project), "device": args.device or "auto", "seed": args.seed, "steps": [step]},
            "input": {"simulate": "none"},
            step: settings,
        }
    )
    pipeline, bars = _pipeline(config, args.quiet)
    try:
        pipeline.run(resume=args.resume, restart=args.restart_step)
    finally:
        bars.close()
    return EXIT_OK


def _require_writable(folder: Path, what: str) -> None:
    from .pipeline import ConfigError
    from .pipeline.config import writable_folder

    refused = writable_folder(folder)
    if refused is not None:
        raise ConfigError(
            f"{what}: cannot write in {str(refused)!r} (permission denied or not "
            "a folder); choose a folder you can write to"
        )


def cmd_simulate(args) -> int:
    from .io import save
    from .pipeline import make_input

    _require_writable(Path(args.output).parent, f"output {str(args.output)!r}")
    project = make_input({"simulate": args.sample}, seed=args.seed)
    path = save(project, args.output)
    print(f"{args.sample} sample → {path}")
    return EXIT_OK


_VALIDATED = (".h5", ".hdf5", ".hdf", ".emd", ".npy", ".npz")


def cmd_info(args) -> int:
    from .io import load
    from .io.scan_input import sampling_note
    from .pipeline.summary import describe

    path = Path(args.file)
    checks = path.is_dir() or path.suffix.lower() in _VALIDATED
    obj = load(path, validate="full") if args.full and checks else load(path)
    print(describe(obj, args.file))
    note = None if args.full else sampling_note(obj)
    if note:
        print(f"note: {note}")
    return EXIT_OK


def cmd_demo(args) -> int:
    from .pipeline.demo import demo_config, write_outputs

    _require_writable(Path(args.output), f"--output {str(args.output)!r}")
    config = demo_config(args.output, device=args.device or "auto", fast=args.fast)
    pipeline, bars = _pipeline(config, args.quiet)
    try:
        project = pipeline.run(resume=args.resume, restart=args.restart_step)
    finally:
        bars.close()
    written = write_outputs(project, Path(args.output))
    print("wrote " + ", ".join(str(p) for p in written))
    if args.no_viewer or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        from .pipeline.overview import write_overview

        png = write_overview(project, Path(args.output) / "overview.png")
        print(f"no display: wrote an overview of every result to {png}")
        return EXIT_OK
    import napari

    from ._napari.show import show

    viewer = napari.Viewer(title="napari-ptychotomo demo")
    show(project, viewer=viewer)
    napari.run()
    return EXIT_OK


def _step_name(text: str) -> str:
    """A step as the configuration names it (``end-to-end`` → ``end_to_end``)."""
    from .pipeline import STEP_ORDER

    name = text.strip().replace("-", "_")
    if name not in STEP_ORDER:
        raise argparse.ArgumentTypeError(f"{text!r} is not a step; one of {', '.join(STEP_ORDER)}")
    return name


def _add_resume(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep finished steps and tilts (refused when the settings that shaped them changed)",
    )
    p.add_argument(
        "--restart-step",
        type=_step_name,
        metavar="STEP",
        help="resume, but recompute STEP and every step after it (e.g. after changing its settings)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptychotomo",
        description=(
            "3D phase-contrast electron microscopy from 4D-STEM tilt series: multislice "
            "ptychography, ptychographic tomography, resolution and atom tracing."
        ),
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("config", help="print a configuration: every setting commented, or the demo's")
    p.add_argument("--template", action="store_true", help="every setting with its default and help, commented")
    p.add_argument("--demo", action="store_true", help="the settings of `ptychotomo demo`, ready to run")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("run", help="run the pipeline of a TOML configuration")
    p.add_argument("config", type=Path)
    p.add_argument("--dry-run", action="store_true", help="validate and print the plan only")
    _add_resume(p)
    p.add_argument("--device", help='"auto", "cpu", "cuda", "cuda:1" (overrides run.device)')
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("simulate", help="simulate a sample into a new project file")
    p.add_argument("output", type=Path)
    p.add_argument("--sample", default="default", choices=("default", "nanoparticle", "core_shell"))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("info", help="describe a project or data file")
    p.add_argument("file", type=Path)
    p.add_argument(
        "--full",
        action="store_true",
        help="check every diffraction pattern for NaN / inf / negative counts "
        "(reads all data; by default a sample is checked)",
    )
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="the whole chain on the default sample")
    p.add_argument("--output", default="demo-output")
    p.add_argument("--device")
    _add_resume(p)
    p.add_argument("--fast", action="store_true", help="fewer iterations (for tests)")
    p.add_argument("--no-viewer", action="store_true", help="write the PNG overview, open no window")
    p.set_defaults(func=cmd_demo)

    for name, step in STEP_COMMANDS.items():
        p = sub.add_parser(name, help=f"run the {step} step on a project")
        p.add_argument("project", type=Path)
        p.add_argument(
            "--set", action="append", metavar="KEY=VALUE", help=f"a [{step}] setting (TOML value), repeatable"
        )
        p.add_argument("--device")
        p.add_argument("--seed", type=int, default=0)
        _add_resume(p)
        p.set_defaults(func=cmd_step)
    return parser


_OOM_ADVICE = (
    "lower the batch size (msp.batch_size, end_to_end.batch_size), reconstruct "
    "fewer tilts at a time, or use a device with more memory (--device)"
)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .engine import EngineError
    from .pipeline import ConfigError

    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: results up to the last checkpoint are kept; re-run with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError as exc:
        # ours (check_memory) say what fits; numpy's only what it tried to allocate
        advice = "" if "batch_size" in str(exc) or "reduce" in str(exc) else f"; {_OOM_ADVICE}"
        print(f"reconstruction failed: out of memory: {_first_line(exc)}{advice}", file=sys.stderr)
        return EXIT_ENGINE
    except EngineError as exc:
        print(f"reconstruction failed: {exc}", file=sys.stderr)
        return EXIT_ENGINE
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATA
    except OSError as exc:  # permission denied, disk full, read-only file system, ...
        print(_os_error_message(exc), file=sys.stderr)
        return EXIT_DATA
    except RuntimeError as exc:
        if not _out_of_memory(exc):
            raise
        print(f"reconstruction failed: out of memory ({_first_line(exc)}); {_OOM_ADVICE}", file=sys.stderr)
        return EXIT_ENGINE
    finally:
        _close_distributed()


def _os_error_message(exc: OSError) -> str:
    """One line for a failed read or write, naming the file; h5py puts the file's name in
    its message (``name = '…'``) rather than in ``filename``."""
    import re

    found = re.search(r"name = '([^']*)'", str(exc))
    where = exc.filename or (found.group(1) if found else None)
    if where:  # the writers' temporary file .<name>.<pid>.<hex>.tmp stands for <name>
        temporary = re.fullmatch(r"(.*?)\.([^/\\]+)\.\d+\.[0-9a-f]{8}\.tmp", os.fspath(where))
        where = temporary.group(1) + temporary.group(2) if temporary else where
    where = f" {where}:" if where else ""
    if isinstance(exc, PermissionError) or exc.errno == errno.EACCES or "errno = 13" in str(exc):
        return (
            f"error: permission denied:{where} this user may not read or write it; fix its "
            "permissions or choose another path"
        )
    kept = ""
    if exc.errno == errno.ENOSPC or "No space left" in str(exc):
        kept = "; what was saved before is kept: free space, then re-run (a run continues with --resume)"
    return f"error:{where} {exc.strerror or _first_line(exc)}{kept}"


def _out_of_memory(exc: BaseException) -> bool:
    """True for torch's out-of-memory errors (CUDA, MPS, the CPU allocator)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc).lower()
    return any(
        words in text
        for words in ("out of memory", "can't allocate memory", "not enough memory", "defaultcpuallocator")
    )


def _first_line(exc: BaseException) -> str:
    """The first line of a message, without torch's ``[enforce fail at file:line] …`` prefix."""
    import re

    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return re.sub(r"^\[enforce fail at [^\]]*\]\s*(err == 0\.\s*)?", "", lines[0])


def _close_distributed() -> None:
    """Shut a torchrun process group down cleanly (gloo aborts at exit otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
