"""The run configuration is validated before any compute, with errors that name the field."""

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from napari_ptychotomo.pipeline import STEP_ORDER, ConfigError, template, validate_config


def _base(**sections):
    config = {"run": {"project": "x.ptycho.h5", "steps": ["msp"]}, "input": {"simulate": "default"}}
    config.update(sections)
    return config


def test_template_is_valid_toml_listing_every_step_and_validates():
    text = template()
    parsed = tomllib.loads(text)
    for step in STEP_ORDER:
        assert f"[{step}]" in text
    validated = validate_config(parsed)
    assert validated["run"]["steps"] == list(STEP_ORDER)
    from napari_ptychotomo.ptycho import MSPParams

    # defaults come from the engines' own parameters
    assert f"# iterations = {MSPParams().iterations}" in text.split("[msp]")[1]


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"msp": {"iteratons": 3}}, "msp.iteratons is not a setting; did you mean 'iterations'?"),
        ({"msp": {"iterations": "ten"}}, "msp.iterations: expected an integer, got 'ten'"),
        ({"msp": {"tilt_mrad": [1.0]}}, "msp.tilt_mrad: expected a list of 2 values"),
        ({"msp": {"learn_tilt": 1}}, "msp.learn_tilt: expected true or false"),
        ({"end_to_end": {"learn_shifts": 1}}, "end_to_end.learn_shifts: expected true or false"),
        ({"denoise": {"method": "wavelet"}}, "denoise.method = 'wavelet'; allowed values: 'bm3d', 'nlm', 'tv'"),
        ({"run": {"project": "x.ptycho.h5", "steps": ["msp", "magic"]}}, "run.steps: 'magic' is not a step"),
        ({"run": {"project": "x.ptycho.h5", "device": "tpu"}}, "run.device"),
        ({"run": {"steps": ["msp"]}}, "run.project is missing"),
        ({"mps": {}}, "[mps] is not a section; did you mean [msp]?"),
        ({"input": {"simulate": "graphene"}}, "input.simulate = 'graphene'; allowed values"),
        ({"end_to_end": {"rates": {"volume": 1.0}}}, "end_to_end.rates.volume: expected [step, start iteration]"),
        (
            {"end_to_end": {"rates": {"shift": [0.05, 2]}}},
            "end_to_end.rates.shift is not a learned quantity; did you mean 'shifts'?",
        ),
        ({"msp": {"rates": {"objet": [50.0, 0]}}}, "msp.rates.objet is not a learned quantity; did you mean 'object'?"),
    ],
)
def test_config_errors_name_the_field_and_the_allowed_values(sections, message):
    with pytest.raises(ConfigError) as info:
        validate_config(_base(**sections))
    assert message in str(info.value)


def test_an_old_learn_list_is_refused_naming_the_switches_that_replaced_it(tmp_path):
    config = tmp_path / "old.toml"
    config.write_text(
        '[run]\nproject = "x.ptycho.h5"\nsteps = ["end_to_end"]\n[end_to_end]\nlearn = ["volume", "probe", "shifts"]\n'
    )
    from napari_ptychotomo.pipeline import load_config

    with pytest.raises(ConfigError) as info:
        load_config(config)
    message = str(info.value)
    assert message.startswith("end_to_end.learn is no longer a setting")
    for key in ("learn_probe", "learn_positions", "learn_euler", "learn_shifts"):
        assert key in message
    assert "Write learn_probe = true, learn_shifts = true instead" in message
    validated = validate_config(_base(end_to_end={"learn_probe": True, "learn_shifts": True}))
    assert validated["end_to_end"] == {"learn_probe": True, "learn_shifts": True}


def test_steps_run_in_pipeline_order_whatever_order_is_given():
    config = validate_config(_base(run={"project": "p.ptycho.h5", "steps": ["atoms", "msp", "denoise"]}))
    assert config["run"]["steps"] == ["msp", "denoise", "atoms"]


def test_missing_input_file_is_refused_before_compute(tmp_path):
    with pytest.raises(ConfigError, match="input.path = 'nowhere.npy': no such file"):
        validate_config({"run": {"project": "p.ptycho.h5"}, "input": {"path": "nowhere.npy"}}, base=tmp_path)


def test_a_new_project_not_named_ptycho_h5_is_refused_before_the_input_is_made(tmp_path):
    with pytest.raises(ConfigError, match=r"run.project = .*x.h5': a new project is written as a .ptycho.h5 file"):
        validate_config({"run": {"project": "x.h5"}, "input": {"simulate": "default"}}, base=tmp_path)


def test_a_data_file_given_as_the_project_is_refused_naming_it_not_with_a_traceback(tmp_path):
    np.save(tmp_path / "scan.npy", np.ones((4, 8, 8), np.float32))
    (tmp_path / "run.toml").write_text('[run]\nproject = "scan.npy"\n')
    for args in (("run", tmp_path / "run.toml"), ("msp", tmp_path / "scan.npy")):
        done = _cli(*args)
        assert done.returncode == 3, done.stderr
        assert "scan.npy: not a napari-ptychotomo project (.ptycho.h5)" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_step_command_on_a_missing_project_says_so(tmp_path):
    done = _cli("msp", tmp_path / "absent.ptycho.h5")
    assert done.returncode == 3
    assert "absent.ptycho.h5: no such project file" in done.stderr and "input.path" not in done.stderr


def _cli(*args, cwd=None):
    exe = Path(sys.executable).with_name("ptychotomo")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_cli_template_and_dry_run_print_the_plan_without_computing(tmp_path):
    done = _cli("config", "--template")
    assert done.returncode == 0 and "[end_to_end]" in done.stdout
    config = tmp_path / "run.toml"
    config.write_text(done.stdout)
    done = _cli("run", config, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "simulate the 'default' sample" in done.stdout
    for step in ("msp", "align", "end_to_end", "atoms"):
        assert step in done.stdout
    assert not (tmp_path / "run.ptycho.h5").exists()


def test_cli_demo_config_is_the_demos_settings_ready_to_run(tmp_path):
    """``ptychotomo config --demo`` prints the demo's settings as a file that validates to
    the demo's configuration (project file and run options aside) and dry-runs; with
    neither flag the command says how to use it."""
    from napari_ptychotomo.pipeline.demo import demo_config

    done = _cli("config", "--demo")
    assert done.returncode == 0, done.stderr
    config = tmp_path / "run.toml"
    config.write_text(done.stdout)
    ours = validate_config(tomllib.loads(done.stdout))
    demo = demo_config(tmp_path)
    for section in demo:
        if section != "run":
            assert ours[section] == demo[section], section
    assert ours["run"]["steps"] == demo["run"]["steps"] and ours["run"]["project"] == "run.ptycho.h5"
    done = _cli("run", config, "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "run.ptycho.h5").exists()
    done = _cli("config")
    assert done.returncode == 2 and "--demo" in done.stdout and "--template" in done.stdout


def test_cli_exit_codes_say_what_went_wrong(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[run]\nproject = "p.ptycho.h5"\n[msp]\niterations = "many"\n')
    done = _cli("run", config)
    assert done.returncode == 2 and "msp.iterations" in done.stderr
    assert _cli("run", tmp_path / "absent.toml").returncode == 2
    broken = tmp_path / "broken.ptycho.h5"
    broken.write_bytes(b"not an HDF5 file at all")
    done = _cli("info", broken)
    assert done.returncode == 3 and "broken.ptycho.h5" in done.stderr


def _setting_lines(text):
    return [k for k, line in enumerate(text.splitlines()) if line.startswith("# ")]


def test_every_template_setting_is_valid_when_uncommented_as_it_stands(tmp_path):
    text = template()
    lines = text.splitlines()
    settings = _setting_lines(text)
    assert len(settings) > 80  # every setting of every step is listed
    for k in settings:
        edited = list(lines)
        edited[k] = lines[k][2:]
        try:
            validate_config(tomllib.loads("\n".join(edited)), base=tmp_path)
        except (tomllib.TOMLDecodeError, ConfigError) as exc:
            raise AssertionError(f"template line {k + 1} {lines[k]!r} uncommented: {exc}") from None


def test_template_help_is_plain_text_said_once_per_setting():
    text = template()
    help_lines = [line for line in text.splitlines() if line.startswith("##")]
    assert not [line for line in help_lines if "``" in line or ":func:" in line or ":mod:" in line]
    # settings that share a docstring entry share one help block
    assert text.count("learn the global tilt / slice thickness") == 1
    assert text.count("3D Butterworth low-pass") == 1
    for section in ("[align]", "[linear]", "[atoms]"):
        body = text.split(section, 1)[1].split("\n[", 1)[0]
        assert body.count("\n## ") >= 3, f"{section} has no help"


def test_dry_run_says_per_step_whether_it_runs_and_why_not(tmp_path, capsys):
    from napari_ptychotomo import cli

    config = tmp_path / "run.toml"
    config.write_text(
        '[run]\nproject = "p.ptycho.h5"\nsteps = ["denoise", "end_to_end", "resolution"]\n[denoise]\nmethod = "tv"\n'
    )
    assert cli.main(["run", str(config), "--dry-run"]) == cli.EXIT_OK
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line[:1].isdigit()}
    assert "run" in lines["denoise"] and "method=tv" in lines["denoise"]
    assert "defaults" in lines["end_to_end"]
    # the default input is a simulation: with no halves, only the FSC against its truth
    assert "run (truth only)" in lines["resolution"] and "half_data = false" in lines["resolution"]
    config.write_text(
        '[run]\nproject = "p.ptycho.h5"\nsteps = ["end_to_end", "resolution"]\n[input]\npath = "scan.npy"\n'
    )
    np.save(tmp_path / "scan.npy", np.ones((2, 2, 16, 16), np.float32))
    # the dry run opens the input's header: the data need their calibration
    (tmp_path / "scan.json").write_text(
        '{"energy_eV": 300e3, "semiangle_mrad": 25.0, "detector_sampling_mrad": 1.0, "scan_step": 0.5}'
    )
    assert cli.main(["run", str(config), "--dry-run"]) == cli.EXIT_OK
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line[:1].isdigit()}
    assert "skip (nothing to do)" in lines["resolution"] and "half_data = false" in lines["resolution"]


def test_cli_and_denoise_widget_share_the_nlm_default():
    from napari_ptychotomo.pipeline.config import step_settings

    assert step_settings("denoise")["method"][0] == "nlm"
    assert '# method = "nlm"' in template()


def test_every_template_setting_has_help():
    from napari_ptychotomo.params_meta import docstring_entries
    from napari_ptychotomo.pipeline.config import step_settings
    from napari_ptychotomo.pipeline.step_table import STEPS
    from napari_ptychotomo.pipeline.template import HELP_NOTES, PYTHON_ONLY

    for step in STEP_ORDER:
        source = STEPS[step].docs
        helps = docstring_entries(source()) if source else {}
        bare = [
            key
            for key, (_default, text) in step_settings(step).items()
            if not (text or helps.get(key) or (step, key) in HELP_NOTES) and key not in PYTHON_ONLY.get(step, ())
        ]
        assert not bare, f"[{step}] settings without help: {bare}"
