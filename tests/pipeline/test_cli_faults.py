"""Faults at run time reach the user as one clear line and an exit code: out of memory
(torch, numpy, the address-space limit) and permission denied."""

import errno
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from napari_ptychotomo import cli

linux = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux /proc only")


def _failing(exc):
    def cmd(args):
        raise exc

    return cmd


def _main_with(monkeypatch, tmp_path, exc) -> int:
    monkeypatch.setattr(cli, "cmd_info", _failing(exc))
    return cli.main(["info", str(tmp_path / "x")])


def test_torch_cpu_allocator_failure_is_out_of_memory_without_its_prefix(tmp_path, capsys, monkeypatch):
    exc = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
        "allocate memory: you tried to allocate 8589934592 bytes. Error code 12"
    )
    assert _main_with(monkeypatch, tmp_path, exc) == cli.EXIT_ENGINE
    err = capsys.readouterr().err
    assert "out of memory (DefaultCPUAllocator: can't allocate memory: you tried to allocate" in err
    assert "enforce fail" not in err and "batch_size" in err


@pytest.mark.parametrize(
    "text", ["DefaultCPUAllocator: not enough memory: you tried to allocate 1 GB", "MPS backend out of memory"]
)
def test_other_allocator_messages_are_out_of_memory(tmp_path, capsys, monkeypatch, text):
    assert _main_with(monkeypatch, tmp_path, RuntimeError(text)) == cli.EXIT_ENGINE
    assert "reconstruction failed: out of memory" in capsys.readouterr().err


def test_numpy_memory_error_gets_advice(tmp_path, capsys, monkeypatch):
    exc = MemoryError("Unable to allocate 8.00 GiB for an array with shape (1024, 1024, 1024)")
    assert _main_with(monkeypatch, tmp_path, exc) == cli.EXIT_ENGINE
    err = capsys.readouterr().err
    assert "out of memory: Unable to allocate 8.00 GiB" in err and "batch_size" in err


def test_an_unrelated_runtime_error_is_not_called_out_of_memory(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError, match="shape mismatch"):
        _main_with(monkeypatch, tmp_path, RuntimeError("shape mismatch"))


def test_h5py_permission_error_names_the_file_from_its_message(tmp_path, capsys, monkeypatch):
    exc = PermissionError(
        errno.EACCES,
        "Unable to synchronously create file (unable to open file: "
        "name = '/data/out/p.ptycho.h5', errno = 13, error message = 'Permission "
        "denied', flags = 13, o_flags = 242)",
    )
    assert _main_with(monkeypatch, tmp_path, exc) == cli.EXIT_DATA
    err = capsys.readouterr().err
    assert "permission denied: /data/out/p.ptycho.h5:" in err and "Traceback" not in err


def test_os_error_with_eacces_is_permission_denied(tmp_path, capsys, monkeypatch):
    exc = OSError(errno.EACCES, "Access denied", str(tmp_path / "p.ptycho.h5"))
    assert _main_with(monkeypatch, tmp_path, exc) == cli.EXIT_DATA
    assert f"permission denied: {tmp_path / 'p.ptycho.h5'}:" in capsys.readouterr().err


def test_disk_full_names_the_file(tmp_path, capsys, monkeypatch):
    exc = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "p.ptycho.h5"))
    assert _main_with(monkeypatch, tmp_path, exc) == cli.EXIT_DATA
    assert f"{tmp_path / 'p.ptycho.h5'}: No space left on device" in capsys.readouterr().err


def test_disk_full_while_writing_names_the_project_not_the_temporary_file(tmp_path, capsys, monkeypatch):
    temporary = tmp_path / ".p.ptycho-results.h5.3753.35fe63d1.tmp"
    exc = OSError(errno.ENOSPC, "No space left on device", str(temporary))
    assert _main_with(monkeypatch, tmp_path, exc) == cli.EXIT_DATA
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'p.ptycho-results.h5'}: No space left on device" in err, err
    assert ".tmp" not in err and "what was saved before is kept" in err and "--resume" in err


def _run(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env, timeout=300
    )


@linux
def test_job_over_the_address_space_limit_is_refused_before_work_with_a_batch_that_fits(tmp_path, tiny_project):
    """MSP with 16 modes and 16 slices needs about 9 MiB per pattern of a batch; under an
    address-space limit that leaves 80 MiB, batch_size = 64 is refused before any work
    (exit 4), naming RLIMIT_AS and a batch size that fits."""
    project = tmp_path / "study.ptycho.h5"
    shutil.copy(tiny_project, project)
    done = _run(f"""
        import resource, sys
        from napari_ptychotomo import cli, engine, load, pipeline, ptycho, simulate
        from napari_ptychotomo.io import guards

        engine.resolve_device("cpu")  # everything imported and loaded before the limit
        load({str(project)!r}).series.scans[0].patterns()
        mapped = guards._proc_field(guards.PROC_SELF / "status", "VmSize")
        resource.setrlimit(resource.RLIMIT_AS, (mapped + (80 << 20), resource.RLIM_INFINITY))
        sys.exit(cli.main(["msp", {str(project)!r}, "--set", "batch_size=64",
                           "--set", "num_modes=16", "--set", "num_slices=16",
                           "--set", "iterations=1", "--set", "tilts=[0]"]))
    """)
    assert done.returncode == 4, done.stderr[-2000:]
    assert "RLIMIT_AS" in done.stderr and "Traceback" not in done.stderr
    assert "use batch_size=" in done.stderr
    fits = int(done.stderr.split("use batch_size=")[1].split()[0])
    assert 1 <= fits < 64


def test_an_end_to_end_volume_too_big_is_refused_before_work(tmp_path, tiny_project, capsys, monkeypatch):
    from napari_ptychotomo.io import guards

    project = tmp_path / "study.ptycho.h5"
    shutil.copy(tiny_project, project)
    monkeypatch.setattr(guards, "memory_limit", lambda: (4 << 30, "a 4 GiB test limit"))
    code = cli.main(
        ["--quiet", "end-to-end", str(project), "--set", "volume_shape=[1024, 1024, 1024]", "--set", "iterations=1"]
    )
    err = capsys.readouterr().err
    assert code == cli.EXIT_ENGINE, err
    assert "1024×1024×1024 voxels (end_to_end.volume_shape" in err and "a 4 GiB test limit" in err
    assert "Traceback" not in err
