"""Running steps over a project: provenance, re-running a step, resume after SIGKILL, torchrun."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_ptychotomo import load
from napari_ptychotomo.pipeline import Pipeline, load_config

BIN = Path(sys.executable).parent
MSP = {"iterations": 2, "num_slices": 2}


def _copy(project, folder):
    target = folder / "study.ptycho.h5"
    shutil.copy(project, target)
    return target


def _same_msp(a, b):
    assert sorted(a.msp) == sorted(b.msp)
    for k in a.msp:
        np.testing.assert_allclose(a.msp[k].object, b.msp[k].object, rtol=0, atol=1e-5)
        np.testing.assert_allclose(a.msp[k].probe, b.msp[k].probe, rtol=0, atol=1e-6)
        np.testing.assert_allclose(a.msp[k].tilt_mrad, b.msp[k].tilt_mrad, atol=1e-6)


def test_msp_step_stores_every_tilt_with_provenance(tmp_path, tiny_project, write_config):
    project = _copy(tiny_project, tmp_path)
    config = load_config(write_config(tmp_path / "run.toml", project, msp=MSP))
    messages = []
    result = Pipeline(config, report=messages.append).run()
    assert sorted(result.msp) == [0, 1, 2]
    prov = load(project).msp[1].provenance
    assert prov["step"] == "msp" and prov["device"] == "cpu" and prov["seconds"] > 0
    assert prov["parameters"]["iterations"] == 2 and "torch" in prov["versions"]
    assert any(m.startswith("tilt 2:") for m in messages)


def test_a_step_reruns_alone_with_new_parameters(tmp_path, tiny_project, write_config):
    project = _copy(tiny_project, tmp_path)
    exe = BIN / "ptychotomo"
    done = subprocess.run(
        [exe, "msp", project, "--set", "iterations=1", "--set", "num_slices=2", "--set", "tilts=[1]"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    first = load(project).msp[1]
    assert sorted(load(project).msp) == [1] and len(first.loss_history) == 1
    done = subprocess.run(
        [exe, "msp", project, "--set", "iterations=2", "--set", "num_slices=2", "--set", "tilts=[1]"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert len(load(project).msp[1].loss_history) == 2  # replaced, not piled up


def test_run_killed_mid_step_resumes_to_the_same_result(tmp_path, tiny_project, write_config):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference_dir.mkdir(), killed_dir.mkdir()
    reference = _copy(tiny_project, reference_dir)
    Pipeline(load_config(write_config(reference_dir / "run.toml", reference, msp=MSP)), report=lambda m: None).run()

    killed = _copy(tiny_project, killed_dir)
    config = write_config(killed_dir / "run.toml", killed, msp=MSP)
    process = subprocess.Popen(
        [BIN / "ptychotomo", "run", config], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    for line in process.stdout:  # kill right after the first tilt's checkpoint
        if line.startswith("tilt 0:"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL
    partial = load(killed)
    assert 0 in partial.msp and len(partial.msp) < 3

    done = subprocess.run([BIN / "ptychotomo", "run", config, "--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _same_msp(load(killed), load(reference))


@pytest.mark.slow
def test_torchrun_two_ranks_give_the_same_result_as_one_process(tmp_path, tiny_project, write_config):
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one_dir.mkdir(), two_dir.mkdir()
    one = _copy(tiny_project, one_dir)
    Pipeline(load_config(write_config(one_dir / "run.toml", one, msp=MSP)), report=lambda m: None).run()
    two = _copy(tiny_project, two_dir)
    config = write_config(two_dir / "run.toml", two, msp=MSP)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            BIN / "torchrun",
            "--nproc_per_node=2",
            "--master_port=29531",
            "-m",
            "napari_ptychotomo.cli",
            "run",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    _same_msp(load(two), load(one))


def test_end_to_end_starts_from_the_linear_volume_in_volts(tmp_path, tiny_project, write_config):
    """Without half data the end-to-end step starts from the linear volume (rad/Å) converted
    to V (÷ σ(E)) on its own grid; ``rates`` from the TOML file reach the engine (a 0.001 V
    step: the result is still the start)."""
    from napari_ptychotomo.physics import interaction_constant

    project = _copy(tiny_project, tmp_path)
    config = load_config(
        write_config(
            tmp_path / "run.toml",
            project,
            steps=("msp", "linear", "end_to_end"),
            msp=MSP,
            linear={"n_iter": 20},
            end_to_end={"iterations": 1},
            **{"end_to_end.rates": {"volume": [0.001, 0]}},
        )
    )
    result = Pipeline(config, report=lambda message: None).run()
    linear = np.clip(result.volumes["linear"].data, 0, None) / float(interaction_constant(300e3))
    end_to_end = result.volumes["end-to-end"]
    assert end_to_end.units == "V" and end_to_end.provenance["parameters"]["rates"]["volume"]["step"] == 0.001
    assert np.real(end_to_end.data).sum() == pytest.approx(linear.sum(), rel=0.01)
    assert np.real(end_to_end.data).max() == pytest.approx(linear.max(), rel=0.01)


def test_end_to_end_from_the_linear_volume_steps_1_volt_unless_told(tmp_path, tiny_project, write_config):
    project = _copy(tiny_project, tmp_path)
    config = load_config(
        write_config(
            tmp_path / "run.toml",
            project,
            steps=("msp", "linear", "end_to_end"),
            msp=MSP,
            linear={"n_iter": 5},
            end_to_end={"iterations": 1},
        )
    )
    result = Pipeline(config, report=lambda message: None).run()
    rates = result.volumes["end-to-end"].provenance["parameters"]["rates"]
    assert rates["volume"]["step"] == 1.0 and rates["probe"]["step"] == 1e-3  # the others as before


def test_info_reports_no_nan_and_no_resolution_from_dependent_halves():
    import numpy as np

    from napari_ptychotomo import Resolution
    from napari_ptychotomo.pipeline.summary import describe

    frequency = np.linspace(0, 1.5, 6)
    flat = Resolution(frequency=frequency, fsc=np.ones(6), crossings={"one_bit": float("nan")})
    assert "nan" not in describe(flat) and "< 0.67 Å (no crossing up to Nyquist)" in describe(flat)
    shared = Resolution(
        frequency=frequency,
        fsc=np.ones(6),
        crossings={},
        provenance={"independent": False, "halves_share": ["the alignment"]},
    )
    text = describe(shared)
    assert "not independent" in text and "the alignment" in text and "Å" not in text


def test_half_data_halves_that_share_a_start_give_no_resolution_but_the_truth_fsc(tmp_path, tiny_project, write_config):
    project = _copy(tiny_project, tmp_path)
    config = load_config(
        write_config(
            tmp_path / "run.toml",
            project,
            steps=("msp", "end_to_end", "resolution", "atoms"),
            msp=MSP,
            end_to_end={"iterations": 1, "half_data": True},
            atoms={"volume": "end-to-end"},
        )
    )
    messages = []
    result = Pipeline(config, report=messages.append).run()
    shared = result.volumes["end-to-end"].provenance["halves_share"]
    assert any("start volume" in s for s in shared) and any("MSP" in s for s in shared)
    said = "\n".join(messages)
    assert "not independent" in said and "one_bit" not in said and "nan" not in said
    assert result.resolution["end-to-end"].crossings == {}
    assert result.resolution["end-to-end"].provenance["independent"] is False
    truth = result.resolution["end-to-end vs truth"]
    assert "0.5" in truth.crossings and -1 <= truth.provenance["pearson_r"] <= 1
    score = result.atoms["end-to-end"].provenance["score"]
    assert score["n_truth"] == len(load(project).series.truth["atoms"]["numbers"])
    assert "atoms against the simulator's" in said
