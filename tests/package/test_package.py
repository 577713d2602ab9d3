"""The package installs as a napari plugin and its core stays free of GUI imports."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_import_does_not_import_qt_or_napari():
    code = (
        "import sys, napari_ptychotomo as p; "
        "p.Calibration; p.physics if hasattr(p, 'physics') else None; "
        "import napari_ptychotomo.physics, napari_ptychotomo.data, napari_ptychotomo.engine; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'magicgui', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'superqt')]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, f"GUI modules imported: {done.stdout} {done.stderr}"


def test_core_modules_do_not_import_gui_packages():
    src = REPO / "src" / "napari_ptychotomo"
    offenders = []
    for path in src.rglob("*.py"):
        relative = path.relative_to(src).as_posix()
        if relative.startswith("_napari/") or relative == "cli.py":
            continue
        for line in path.read_text().splitlines():
            words = line.strip().split()
            if (
                len(words) >= 2
                and words[0] in ("import", "from")
                and words[1].split(".")[0] in ("napari", "magicgui", "qtpy", "PyQt6", "PyQt5", "PySide6", "superqt")
            ):
                offenders.append(f"{relative}: {line.strip()}")
    assert not offenders, offenders


def test_npe2_manifest_validates_with_imports():
    npe2 = Path(sys.executable).with_name("npe2")
    done = subprocess.run([str(npe2), "validate", "napari-ptychotomo", "--imports"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_top_level_exports_resolve():
    import napari_ptychotomo as p

    for name in (
        "Calibration",
        "ScanData",
        "TiltSeries",
        "MSPResult",
        "Alignment",
        "Volume",
        "Resolution",
        "Atoms",
        "Progress",
        "run",
    ):
        assert hasattr(p, name)
    with pytest.raises(AttributeError):
        p.no_such_thing  # noqa: B018
