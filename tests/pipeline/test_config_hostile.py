"""Wrong configurations, paths and faults give usage errors naming the field or the path,
before any work: in ``--dry-run`` as at a normal start."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from napari_ptychotomo import cli
from napari_ptychotomo.pipeline import ConfigError, load_config, validate_config


def _base(tmp_path, **sections):
    config = {"run": {"project": str(tmp_path / "x.ptycho.h5"), "steps": ["msp"]}, "input": {"simulate": "default"}}
    config.update(sections)
    return config


def _toml(tmp_path, body):
    path = tmp_path / "run.toml"
    path.write_text(f'[run]\nproject = "p.ptycho.h5"\nsteps = ["msp"]\n{body}\n')
    return path


@pytest.mark.parametrize("value", [150.0, -20, "auto", "estimate"])
def test_msp_defocus_takes_a_number_or_auto_or_estimate(tmp_path, value):
    config = validate_config(_base(tmp_path, msp={"defocus": value}))
    assert config["msp"]["defocus"] == value


def test_msp_defocus_of_another_word_is_refused_naming_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"msp\.defocus = 'far'; expected a length in Å"):
        validate_config(_base(tmp_path, msp={"defocus": "far"}))


@pytest.mark.parametrize(
    "body, message",
    [
        ('[msp]\nbatch_size = "big"', r"msp\.batch_size: expected an integer, got 'big' \(str\)"),
        ('[msp]\ntilt_mrad = ["a", "b"]', r"msp\.tilt_mrad\[0\]: expected a number, got 'a' \(str\)"),
        ("[msp]\niterations = 0", r"msp\.iterations = 0; expected an integer of at least 1"),
        ("[msp]\nslice_thickness = -5.0", r"msp\.slice_thickness = -5\.0; expected a number ≥ 0"),
        ("[msp]\nrates = {object = [1.0, -2]}", r"msp\.rates\.object = \[1\.0, -2\]; expected \[step ≥ 0"),
        ("[msp]\nobject_step_decay = 2.0", r"msp\.object_step_decay = 2\.0; expected a fraction"),
    ],
)
def test_dry_run_refuses_wrong_types_and_ranges_naming_the_field(tmp_path, capsys, body, message):
    path = _toml(tmp_path, body)
    assert cli.main(["run", str(path), "--dry-run"]) == cli.EXIT_USAGE
    assert re.search(message, capsys.readouterr().err)
    with pytest.raises(ConfigError, match=message):  # the same check at a normal start
        load_config(path)


def test_end_to_end_settings_are_checked_by_the_engine_parameters(tmp_path):
    with pytest.raises(ConfigError, match=r"end_to_end\.num_slices = 3 does not divide"):
        validate_config(_base(tmp_path, end_to_end={"volume_shape": [4, 8, 8], "num_slices": 3}))
    with pytest.raises(ConfigError, match=r"linear\.shape\[1\]: expected a number"):
        validate_config(_base(tmp_path, linear={"shape": [4, "8", 8]}))


def test_config_path_that_is_a_folder_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path)]) == cli.EXIT_USAGE
    assert f"{tmp_path}: is a folder; give the configuration file" in capsys.readouterr().err


def test_set_without_equals_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["msp", str(tmp_path / "p.ptycho.h5"), "--set", "iterations"]) == cli.EXIT_USAGE
    assert "--set 'iterations': expected KEY=VALUE" in capsys.readouterr().err


def test_project_that_is_a_folder_is_named(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    path = tmp_path / "run.toml"
    path.write_text('[run]\nproject = "results"\n')
    assert cli.main(["run", str(path), "--dry-run"]) == cli.EXIT_USAGE
    assert "run.project = " in (err := capsys.readouterr().err) and "is a folder" in err


def test_unwritable_output_folder_stops_before_any_work(tmp_path, capsys, monkeypatch):
    path = _toml(tmp_path, "")
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **k: False if os.fspath(p) == str(tmp_path) else real(p, mode, **k)
    )
    assert cli.main(["run", str(path)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"cannot write in '{tmp_path}'" in err and "p.ptycho.h5" in err
    assert not (tmp_path / "p.ptycho.h5").exists()
    assert cli.main(["simulate", str(tmp_path / "s.ptycho.h5")]) == cli.EXIT_USAGE
    assert f"cannot write in '{tmp_path}'" in capsys.readouterr().err


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into every folder whatever its permissions"
)
def test_unwritable_output_folder_for_real(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        config = tmp_path / "run.toml"
        config.write_text('[run]\nproject = "locked/p.ptycho.h5"\n')
        assert cli.main(["run", str(config), "--dry-run"]) == cli.EXIT_USAGE
        assert "cannot write in" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def _failing_info(exc):
    def cmd(args):
        raise exc

    return cmd


def test_out_of_memory_is_a_reconstruction_failure_with_advice(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(
        cli, "cmd_info", _failing_info(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 6.00 GiB"))
    )
    assert cli.main(["info", str(tmp_path / "x")]) == cli.EXIT_ENGINE
    err = capsys.readouterr().err
    assert "out of memory (CUDA out of memory. Tried to allocate 6.00 GiB)" in err
    assert "batch_size" in err and "Traceback" not in err


def test_permission_error_names_the_file(tmp_path, capsys, monkeypatch):
    denied = PermissionError(13, "Permission denied", str(tmp_path / "p.ptycho.h5"))
    monkeypatch.setattr(cli, "cmd_info", _failing_info(denied))
    assert cli.main(["info", str(tmp_path / "x")]) == cli.EXIT_DATA
    assert f"permission denied: {tmp_path / 'p.ptycho.h5'}" in capsys.readouterr().err


def _dry_run_of(tmp_path, name):
    config = tmp_path / "run.toml"
    config.write_text(f'[run]\nproject = "p.ptycho.h5"\nsteps = ["msp"]\n[input]\npath = "{name}"\n')
    return cli.main(["run", str(config), "--dry-run"])


def test_dry_run_opens_the_input_header_and_refuses_what_the_run_could_not_read(tmp_path, capsys):
    (tmp_path / "scan.h5").write_text("not an HDF5 file")
    assert _dry_run_of(tmp_path, "scan.h5") == cli.EXIT_DATA
    assert "scan.h5: not a readable HDF5 file" in capsys.readouterr().err
    np.save(tmp_path / "scan.npy", np.ones((4, 4, 16, 16), np.float32))
    assert _dry_run_of(tmp_path, "scan.npy") == cli.EXIT_DATA
    err = capsys.readouterr().err
    assert "scan.npy: missing calibration: energy_eV, semiangle_mrad, detector_sampling_mrad" in err
    (tmp_path / "scan.json").write_text(
        '{"energy_eV": 300e3, "semiangle_mrad": 25.0, "detector_sampling_mrad": 1.0, "scan_step": 0.5}'
    )
    assert _dry_run_of(tmp_path, "scan.npy") == cli.EXIT_OK
    assert "1. input" in capsys.readouterr().out and not (tmp_path / "p.ptycho.h5").exists()
