"""A one-page PNG of every result of a project, for headless runs (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import Project

__all__ = ["write_overview"]


def _central_slices(volume: np.ndarray) -> list[tuple[str, np.ndarray]]:
    data = np.real(np.asarray(volume))
    nz, ny, nx = data.shape
    return [("z slice", data[nz // 2]), ("y slice", data[:, ny // 2]), ("x slice", data[:, :, nx // 2])]


def write_overview(project: Project, path: Path) -> Path:
    """Write a grid of panels: MSP phases, projections, volume slices, FSC, atoms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, str, object]] = []  # (title, kind, data)
    for k in sorted(project.msp)[:6]:
        result = project.msp[k]
        panels.append((f"MSP phase, tilt {k} (rad)", "image", result.phase()))
    for name, volume in project.volumes.items():
        if volume.provenance.get("axes", "").startswith("tilt"):
            continue
        for label, image in _central_slices(volume.data):
            panels.append((f"{name}: {label} ({volume.voxel_size:.2g} Å voxels)", "image", image))
    for name, res in project.resolution.items():
        prov = res.provenance or {}
        if prov.get("against") == "simulator truth":
            title = f"FSC of {name.removesuffix(' vs truth')} against the truth"
        elif prov.get("independent") is False:
            title = f"FSC of the halves of {name}\n(not independent: no resolution)"
        else:
            title = f"FSC of the halves of {name}"
        panels.append((title, "fsc", res))
    for name, atoms in project.atoms.items():
        score = (atoms.provenance or {}).get("score")
        title = f"atoms traced in {name}: {len(atoms)}"
        if score:
            title += (
                f"\nrecall {score['recall']:.2f}, {int(score['false_positives'])} false, "
                f"RMS {score['rms_error_3d']:.2f} Å"
            )
        panels.append((title, "atoms", atoms))
    if not panels and project.series is not None:
        panels.append(("no results yet", "text", None))
    cols = 3
    rows = max(1, int(np.ceil(len(panels) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, kind, data) in zip(axes.ravel(), panels):
        ax.set_title(title, fontsize=9)
        if kind == "image":
            ax.imshow(np.asarray(data), cmap="gray")
        elif kind == "fsc":
            ax.axis("on")
            ax.plot(data.frequency, data.fsc, label="FSC")
            for label, curve in data.thresholds.items():
                ax.plot(data.frequency, curve, "--", lw=0.8, label=label)
            ax.set_xlabel("spatial frequency (1/Å)")
            ax.set_ylim(-0.1, 1.05)
            ax.legend(fontsize=7, loc="lower left")
        elif kind == "atoms":
            ax.axis("on")
            pos = np.asarray(data.positions)
            if len(pos):
                ax.scatter(pos[:, 2], pos[:, 1], c=np.asarray(data.species), s=8, cmap="viridis")
            ax.set_xlabel("x (Å)")
            ax.set_ylabel("y (Å)")
            ax.set_aspect("equal")
    fig.suptitle("napari-ptychotomo demo", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # room for the suptitle
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
