import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory):
    """A 3-tilt series of a small Pt particle (8×8 scan, 32×32 detector) saved as a project."""
    from napari_ptychotomo import Project, save, simulate

    particle = simulate.fcc_nanoparticle("Pt", size=8.0, shape="cuboctahedron", vacuum=2.0)
    series = simulate.simulate_tilt_series(
        particle,
        np.linspace(-30, 30, 3),
        scan_shape=(8, 8),
        scan_step=0.6,
        detector_shape=(32, 32),
        num_slices=2,
        dose=1e5,
        seed=0,
    )
    path = tmp_path_factory.mktemp("tiny") / "tiny.ptycho.h5"
    save(Project(series=series), path)
    return path


@pytest.fixture
def write_config():
    return _write_config


def _write_config(path, project, steps=("msp",), **sections):
    """A TOML configuration over ``project`` running ``steps``."""
    lines = [
        "[run]",
        f'project = "{project}"',
        "steps = [" + ", ".join(f'"{s}"' for s in steps) + "]",
        "[input]",
        'simulate = "none"',
    ]
    for name, table in sections.items():
        lines.append(f"[{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {value!r}".replace("'", '"').replace("True", "true").replace("False", "false"))
    path.write_text("\n".join(lines) + "\n")
    return path
