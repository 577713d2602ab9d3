"""torch's CPU threads follow the CPUs the process may use; scripts see a progress bar
they can turn off."""

from __future__ import annotations

import os

import pytest
import torch

from napari_ptychotomo import threads
from napari_ptychotomo.engine import Progress, run, show_progress


def _engine(n=3):
    for k in range(n):
        yield Progress(step=k + 1, total=n, loss=1.0 / (k + 1))
    return "result"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2: 1.5 CPUs
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_cpu_limit_reads_v2_and_v1_quota(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads._cgroup_cpu_limit(tmp_path) == expected


def test_available_cpus_is_the_affinity_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: 1.5)
    assert threads.available_cpus() == 2
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: None)
    assert threads.available_cpus() == 64
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert threads.available_cpus() == 1


def test_free_cpus_leaves_the_cpus_other_work_keeps_busy(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert threads.free_cpus(2) == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (6.5, 6.0, 5.0))  # a busy shared machine
    assert threads.free_cpus(2) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "getloadavg", lambda: (16.0, 16.0, 16.0))
    assert threads.free_cpus(8) == 6


def test_limit_torch_threads_lowers_but_never_raises(monkeypatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        monkeypatch.setattr(threads, "free_cpus", lambda: 2)
        assert threads.limit_torch_threads(once=False) == 2 == torch.get_num_threads()
        torch.set_num_threads(1)
        assert threads.limit_torch_threads(once=False) == 1
        torch.set_num_threads(3)  # a later explicit choice stays
        assert threads.limit_torch_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_run_shows_a_progress_bar_that_can_be_turned_off(capsys, monkeypatch):
    monkeypatch.delenv("PTYCHOTOMO_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert run(_engine()) == "result"  # on a terminal by default
    err = capsys.readouterr().err
    assert "3/3" in err and "loss" in err, err
    assert run(_engine(), progress=False) == "result"
    assert capsys.readouterr().err == ""
    show_progress(False)
    try:
        run(_engine())
        assert capsys.readouterr().err == ""
    finally:
        show_progress(None)
    monkeypatch.setenv("PTYCHOTOMO_PROGRESS", "0")
    run(_engine())
    assert capsys.readouterr().err == ""
    seen = []
    run(_engine(), callback=seen.append)  # a caller with a callback shows its own progress
    assert len(seen) == 3 and capsys.readouterr().err == ""


def test_run_keeps_logs_clean_unless_asked(capsys, monkeypatch):
    monkeypatch.delenv("PTYCHOTOMO_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    monkeypatch.delitem(__import__("sys").modules, "ipykernel", raising=False)
    run(_engine())
    assert capsys.readouterr().err == ""
    run(_engine(), progress=True)
    assert "3/3" in capsys.readouterr().err
