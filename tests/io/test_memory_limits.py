"""The memory available to this process: the smallest of MemAvailable, the address-space
limit less what the process maps, and the cgroup limit less its usage."""

import os
import subprocess
import sys
import textwrap

import pytest

from napari_ptychotomo import engine
from napari_ptychotomo.io import guards

GiB = 1 << 30
linux = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux /proc only")


def _fake_cgroups(monkeypatch, tmp_path, own: str, files: dict[str, str]):
    """A fake /sys/fs/cgroup tree and /proc/self/cgroup naming ``own`` as this process's."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(own)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.setattr(guards, "CGROUP_ROOT", root)
    monkeypatch.setattr(guards, "PROC_SELF", proc)


def test_cgroup_v2_limit_of_the_own_cgroup_less_its_usage(monkeypatch, tmp_path):
    _fake_cgroups(
        monkeypatch,
        tmp_path,
        "0::/batch/job7\n",
        {"batch/job7/memory.max": f"{3 * GiB}\n", "batch/job7/memory.current": f"{GiB}\n", "memory.max": "max\n"},
    )
    assert guards._cgroup_left() == 2 * GiB
    assert guards.available_memory() <= 2 * GiB


def test_cgroup_v1_limit_and_unlimited_v1(monkeypatch, tmp_path):
    _fake_cgroups(
        monkeypatch,
        tmp_path,
        "4:memory:/docker/abc\n",
        {
            "memory/docker/abc/memory.limit_in_bytes": f"{GiB}\n",
            "memory/docker/abc/memory.usage_in_bytes": f"{GiB // 4}\n",
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )  # v1's "unlimited"
    assert guards._cgroup_left() == 3 * GiB // 4
    size, what = guards.memory_limit()
    assert size == 3 * GiB // 4 and "cgroup" in what


def test_cgroup_page_cache_counts_as_available(monkeypatch, tmp_path):
    _fake_cgroups(
        monkeypatch,
        tmp_path,
        "0::/job\n",
        {
            "job/memory.max": f"{4 * GiB}\n",
            "job/memory.current": f"{3 * GiB}\n",
            "job/memory.stat": f"anon {GiB}\nfile {2 * GiB}\ninactive_file {2 * GiB}\n",
        },
    )
    assert guards._cgroup_left() == 3 * GiB


def test_no_cgroup_files_means_no_cgroup_limit(monkeypatch, tmp_path):
    _fake_cgroups(monkeypatch, tmp_path, "0::/\n", {})
    assert guards._cgroup_left() is None


def test_engine_cpu_memory_is_the_io_guard(monkeypatch):
    monkeypatch.setattr(guards, "memory_limit", lambda: (123 * GiB // 100, "test"))
    assert engine.available_memory("cpu") == 123 * GiB // 100


def _run(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env, timeout=300
    )


@linux
def test_address_space_limit_less_what_is_mapped():
    done = _run("""
        import resource
        from napari_ptychotomo import engine
        from napari_ptychotomo.io import guards

        engine.available_memory("cpu")  # everything imported before the limit
        mapped = guards._proc_field(guards.PROC_SELF / "status", "VmSize")
        resource.setrlimit(resource.RLIMIT_AS, (mapped + (1 << 30), resource.RLIM_INFINITY))
        size, what = guards.memory_limit()
        print(size / (1 << 30), engine.available_memory("cpu") / (1 << 30), what)
    """)
    assert done.returncode == 0, done.stderr
    guard, eng, what = done.stdout.split(maxsplit=2)
    assert 0.9 < float(guard) <= 1.0 and 0.9 < float(eng) <= 1.0
    assert "RLIMIT_AS" in what
