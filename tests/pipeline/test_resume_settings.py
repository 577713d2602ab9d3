"""``--resume`` keeps results only when the settings that shaped them are unchanged; it
refuses otherwise, naming each difference, and ``--restart-step`` recomputes from a step."""

import json
import shutil

import numpy as np
import pytest

from napari_ptychotomo import cli, load
from napari_ptychotomo.pipeline import load_config
from napari_ptychotomo.pipeline.provenance import settings_hash
from napari_ptychotomo.pipeline.resume import settings_changes, shaping_settings


@pytest.fixture
def study(tmp_path, tiny_project):
    target = tmp_path / "study.ptycho.h5"
    shutil.copy(tiny_project, target)
    return target


def _config(tmp_path, study, write_config, **msp):
    return write_config(tmp_path / "run.toml", study, msp={"num_slices": 2, **msp})


def _run(*argv) -> int:
    return cli.main(["--quiet", "run", *map(str, argv)])


def test_the_record_holds_what_shapes_results_and_not_the_device(tmp_path, study, write_config):
    config = load_config(_config(tmp_path, study, write_config, iterations=2))
    record = shaping_settings("msp", config)
    assert record["msp.iterations"] == 2 and record["run.seed"] == 0
    assert "msp.tilts" not in record and not any(key.startswith("run.device") for key in record)
    assert "msp.num_modes" in record  # defaults filled in: writing a default changes nothing
    config["run"]["device"] = "cuda:3"
    assert settings_hash(shaping_settings("msp", config)) == settings_hash(record)


def test_changes_name_field_old_and_new_and_compare_numbers_by_value():
    assert settings_changes({"msp.iterations": 2, "msp.defocus": 150}, {"msp.iterations": 4, "msp.defocus": 150.0}) == [
        ("msp.iterations", 2, 4)
    ]
    assert settings_changes({}, {"msp.num_modes": 2}) == [("msp.num_modes", "(not set)", 2)]


def test_resume_after_changing_a_setting_is_refused_naming_it(tmp_path, study, write_config, capsys):
    assert _run(_config(tmp_path, study, write_config, iterations=1, tilts=[0])) == 0
    before = load(study).msp[0]
    assert json.loads(before.provenance["settings"])["msp.iterations"] == 1
    config = _config(tmp_path, study, write_config, iterations=2)
    assert _run(config, "--resume") == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "msp tilt 0 was made with other settings (msp.iterations 1 → 2)" in err
    assert "--restart-step msp" in err
    after = load(study)
    assert sorted(after.msp) == [0] and len(after.msp[0].loss_history) == 1  # nothing touched

    assert _run(config, "--dry-run", "--resume") == 0
    assert "refused (settings changed)" in capsys.readouterr().out


def test_restart_step_recomputes_that_step(tmp_path, study, write_config):
    assert _run(_config(tmp_path, study, write_config, iterations=1, tilts=[0])) == 0
    assert _run(_config(tmp_path, study, write_config, iterations=2, tilts=[0]), "--restart-step", "msp") == 0
    result = load(study).msp[0]
    assert len(result.loss_history) == 2
    assert json.loads(result.provenance["settings"])["msp.iterations"] == 2


def test_device_and_tilt_choice_do_not_block_resume(tmp_path, study, write_config, capsys):
    assert _run(_config(tmp_path, study, write_config, iterations=1, tilts=[0])) == 0
    first = load(study).msp[0]
    config = _config(tmp_path, study, write_config, iterations=1, tilts=[0, 1])
    capsys.readouterr()
    assert cli.main(["run", str(config), "--resume", "--device", "cpu"]) == 0
    assert "msp: tilt(s) 0 done already (resume); 1 to do" in capsys.readouterr().out
    project = load(study)
    assert sorted(project.msp) == [0, 1]
    assert project.msp[0].provenance["finished"] == first.provenance["finished"]  # kept
    np.testing.assert_array_equal(np.asarray(project.msp[0].object), np.asarray(first.object))


def test_restart_step_must_be_a_step_of_the_run(tmp_path, study, write_config, capsys):
    assert _run(_config(tmp_path, study, write_config), "--restart-step", "align") == cli.EXIT_USAGE
    assert "--restart-step align: not among the steps of this run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run(_config(tmp_path, study, write_config), "--restart-step", "alignn")


def test_results_without_a_record_are_kept_as_they_are(tmp_path, study, write_config):
    from types import SimpleNamespace

    from napari_ptychotomo.pipeline.resume import recorded_changes

    config = load_config(_config(tmp_path, study, write_config, iterations=2))
    old = SimpleNamespace(msp={0: SimpleNamespace(provenance={"step": "msp"})})
    assert recorded_changes("msp", old, config) is None
    stamped = {"settings": json.dumps({"msp.iterations": 1}), "settings_hash": "0"}
    changed = SimpleNamespace(msp={0: SimpleNamespace(provenance=stamped)})
    what, changes = recorded_changes("msp", changed, config)
    assert what == "msp tilt 0" and ("msp.iterations", 1, 2) in changes


def test_restart_step_plans_that_step_and_the_later_ones_again(tmp_path, study, write_config, capsys):
    from napari_ptychotomo.pipeline import Pipeline

    assert _run(_config(tmp_path, study, write_config, iterations=1, tilts=[0])) == 0
    capsys.readouterr()
    config = _config(tmp_path, study, write_config, iterations=2)
    assert _run(config, "--dry-run", "--restart-step", "msp") == 0
    out = capsys.readouterr().out
    assert "msp           run " in out and "refused" not in out
    assert Pipeline._redo("denoise", "msp") and Pipeline._redo("msp", "msp")
    assert not Pipeline._redo("bright_field", "msp") and not Pipeline._redo("msp", None)


def test_resume_recomputes_a_step_whose_results_predate_its_input(tmp_path, study, write_config, capsys):
    """A run without --resume that was stopped after recomputing MSP leaves the old
    denoised projections, made from the MSP results it replaced: --resume recomputes
    them (and says why) rather than keeping them as done."""
    import time

    config = write_config(
        tmp_path / "run.toml", study, steps=("msp", "denoise"), msp={"num_slices": 2, "iterations": 1}
    )
    assert _run(config) == 0
    old = load(study).volumes["projections (denoised)"].provenance["finished"]
    time.sleep(1.1)  # finishing times are kept to the second
    msp_only = write_config(tmp_path / "msp.toml", study, msp={"num_slices": 2, "iterations": 1})
    assert _run(msp_only) == 0  # MSP recomputed, the run stopped before denoise
    capsys.readouterr()
    assert _run(config, "--dry-run", "--resume") == 0
    assert "run (older than its input)" in capsys.readouterr().out
    assert cli.main(["run", str(config), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "denoise: its results predate the msp results they were made from; recomputing" in out
    project = load(study)
    newest_msp = max(result.provenance["finished"] for result in project.msp.values())
    assert project.volumes["projections (denoised)"].provenance["finished"] >= newest_msp > old


def test_align_saved_without_its_volume_is_not_done():
    """The align step saves the alignment and its low-resolution volume in two writes; a
    run stopped between them left the volume missing while --resume skipped align."""
    from napari_ptychotomo.data import Alignment, Project, Volume
    from napari_ptychotomo.pipeline.step_table import STEPS

    project = Project(alignment=Alignment.from_angles([-30.0, 0.0, 30.0]))
    assert not STEPS["align"].complete(project, {})
    project.volumes["aligned (low resolution)"] = Volume(data=np.zeros((2, 2, 2), np.float32), voxel_size=1.0)
    assert STEPS["align"].complete(project, {})
