"""Docked widget "Inspect": look into volumes and tilt maps.

Volumes: orthogonal slice views (yx, zx, zy) through the voxel under the cursor, a line
profile with an Å axis along the first line of a Shapes layer (or between the first two
points of a Points layer), and the power spectrum of the volume projected onto each axis
with its last-peak resolution (:func:`~napari_ptychotomo.analysis.axis_power_spectra`,
Romanov et al. 2025) and the 2D projections of the 3D spectrum. Tilt maps (``MSP tilt map
θx [tilt k]``): overlay on the summed phase of the same MSP result, and mean / median /
standard deviation in mrad of θx and θy over the scan positions inside the shapes of a
Shapes layer. The computing is in :mod:`.inspection`; this module only wires it to napari.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton

from ...data import MSPResult
from ..inspection import line_profile, orthogonal_views, points_in_shape, region_statistics, world_to_index
from ..layers import summed_phase_layer
from ..plots import LivePlot, Panel
from ..show import put_layer

__all__ = ["InspectWidget"]


def _kind(layer: Any) -> str:
    return type(layer).__name__


class InspectWidget(Container):
    """Slice views, line profile and power spectrum of a volume; tilt-map overlay and
    region statistics. Errors for people go to ``status``."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self.viewer = viewer
        self.volume = ComboBox(label="volume", choices=self._volume_names, name="volume")
        self.follow_cursor = CheckBox(text="slice views follow the cursor", value=True, name="follow_cursor")
        self.views = LivePlot(name="views", height=2.0, label="slices")
        self.profile_from = ComboBox(label="profile along", choices=self._line_sources, name="profile_from")
        self.profile_button = PushButton(text="Line profile", name="profile_button")
        self.profile_plot = LivePlot(name="profile_plot", height=2.0)
        self.spectrum_button = PushButton(text="Power spectrum", name="spectrum_button")
        self.spectrum_plot = LivePlot(name="spectrum_plot", height=2.0)
        self.spectrum_images = LivePlot(name="spectrum_images", height=1.8)
        self.tilt_map = ComboBox(label="tilt map", choices=self._tilt_map_names, name="tilt_map")
        self.overlay_button = PushButton(text="Overlay on phase", name="overlay_button")
        self.region = ComboBox(label="region (shapes)", choices=self._shapes_names, name="region")
        self.stats_button = PushButton(text="Region statistics", name="stats_button")
        self.stats = Label(value="", name="stats")
        self.status = Label(value="", name="status")
        super().__init__(
            widgets=[
                self.volume,
                self.follow_cursor,
                self.views,
                self.profile_from,
                self.profile_button,
                self.profile_plot,
                self.spectrum_button,
                self.spectrum_plot,
                self.spectrum_images,
                self.tilt_map,
                self.overlay_button,
                self.region,
                self.stats_button,
                self.stats,
                self.status,
            ]
        )
        self.statistics: dict[str, Any] | None = None
        self.index: tuple[int, int, int] | None = None
        self._pending: tuple[int, int, int] | None = None
        from qtpy.QtCore import QTimer

        # cursor moves are coalesced: the views are redrawn at most every 100 ms
        self._cursor_timer = QTimer()
        self._cursor_timer.setSingleShot(True)
        self._cursor_timer.setInterval(100)
        self._cursor_timer.timeout.connect(self._draw_pending)
        for button, action in (
            (self.profile_button, self.show_profile),
            (self.spectrum_button, self.show_spectrum),
            (self.overlay_button, self.overlay),
            (self.stats_button, self.show_statistics),
        ):
            button.changed.connect(self._reporting(action))
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        viewer.cursor.events.position.connect(self._on_cursor)

    # ------------------------------------------------------------------ choices
    def _volume_names(self, *_: Any) -> list[str]:
        return [
            layer.name
            for layer in self.viewer.layers
            if _kind(layer) == "Image" and np.ndim(layer.data) == 3 and layer.metadata.get("kind") != "projections"
        ]

    def _line_sources(self, *_: Any) -> list[str]:
        return [
            layer.name
            for layer in self.viewer.layers
            if (_kind(layer) == "Shapes" and "line" in list(layer.shape_type))
            or (_kind(layer) == "Points" and len(layer.data) >= 2)
        ]

    def _tilt_map_names(self, *_: Any) -> list[str]:
        return [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer.metadata.get("result"), MSPResult)
            and layer.metadata["result"].tilt_map is not None
            and "tilt map" in layer.name
            and "θy" not in layer.name
        ]

    def _shapes_names(self, *_: Any) -> list[str]:
        return [layer.name for layer in self.viewer.layers if _kind(layer) == "Shapes"]

    def _refresh(self, *_: Any) -> None:
        self.reset_choices()

    def _reporting(self, action):
        def run(*_: Any) -> None:
            try:
                action()
                self.status.value = ""
            except ValueError as exc:
                self.status.value = str(exc)

        return run

    def _layer(self, name: Any, what: str) -> Any:
        if name is None or name not in self.viewer.layers:
            raise ValueError(f"no {what}: add one to the viewer and choose it")
        return self.viewer.layers[name]

    def _world(self, point: Any, ndim: int) -> np.ndarray:
        """A world point with ``ndim`` coordinates, the missing leading ones from the sliders."""
        point = np.asarray(point, float)
        if len(point) < ndim:
            point = np.concatenate([np.asarray(self.viewer.dims.point, float)[: ndim - len(point)], point])
        return point[-ndim:]

    # ------------------------------------------------------------------ volume
    def _on_cursor(self, *_: Any) -> None:
        if not self.follow_cursor.value or self.volume.value not in self.viewer.layers:
            return
        layer = self.viewer.layers[self.volume.value]
        index = world_to_index(
            self._world(self.viewer.cursor.position, 3), layer.scale, layer.translate, np.shape(layer.data)
        )
        if index != self.index:
            self._pending = index
            if not self._cursor_timer.isActive():
                self._cursor_timer.start()

    def _draw_pending(self) -> None:
        index, self._pending = self._pending, None
        if index is not None and self.volume.value in self.viewer.layers:
            self.show_views(index)

    def show_views(self, index: tuple[int, int, int]) -> None:
        """Draw the planes through voxel ``index`` (z, y, x) with axes in Å."""
        layer = self._layer(self.volume.value, "volume")
        data = np.asarray(layer.data)
        self.index = tuple(int(i) for i in index)
        (sz, sy, sx), (tz, ty, tx) = np.asarray(layer.scale, float), np.asarray(layer.translate, float)
        nz, ny, nx = data.shape

        def span(t: float, s: float, n: int) -> tuple[float, float]:
            return t - s / 2, t + (n - 0.5) * s

        views = orthogonal_views(data, self.index)
        (x0, x1), (y0, y1), (z0, z1) = span(tx, sx, nx), span(ty, sy, ny), span(tz, sz, nz)
        z, y, x = self.index
        self.views.show_images(
            {
                f"yx at z = {tz + z * sz:.1f} Å": (views["yx"], (x0, x1, y1, y0), "x (Å)", "y (Å)"),
                f"zx at y = {ty + y * sy:.1f} Å": (views["zx"], (x0, x1, z1, z0), "x (Å)", "z (Å)"),
                f"zy at x = {tx + x * sx:.1f} Å": (views["zy"], (y0, y1, z1, z0), "y (Å)", "z (Å)"),
            },
            f"voxel (z, y, x) = {self.index}: value {float(data[self.index]):.4g}",
        )

    def show_profile(self) -> None:
        """Profile of the volume along the chosen line (Shapes) or two points (Points)."""
        layer = self._layer(self.volume.value, "volume")
        source = self._layer(self.profile_from.value, "line: draw one in a Shapes layer")
        if _kind(source) == "Shapes":
            lines = [d for d, t in zip(source.data, source.shape_type) if t == "line"]
            if not lines:
                raise ValueError(f"{source.name!r} has no line; draw one with the line tool")
            ends = [source.data_to_world(v) for v in (lines[0][0], lines[0][-1])]
        else:
            ends = [source.data_to_world(v) for v in source.data[:2]]
        start, end = (self._world(p, 3) for p in ends)
        distance, values = line_profile(layer.data, layer.scale, layer.translate, start, end)
        self.profile_plot.show(
            [Panel("distance (Å)", layer.name, {"profile": (distance, values)})],
            f"{len(distance)} samples over {distance[-1]:.2f} Å, max {np.nanmax(values):.4g}",
        )

    def show_spectrum(self) -> None:
        """Per-axis power spectra with their last-peak resolution, and 2D projections."""
        from ...analysis import axis_power_spectra
        from ._volume import layer_volume

        volume = layer_volume(self._layer(self.volume.value, "volume"))
        spectra = axis_power_spectra(volume, device="cpu")
        axes = ("z", "y", "x")
        curves = {a: (spectra[a]["frequency"], spectra[a]["spectrum"]) for a in axes}

        def res(a: str) -> str:
            value = spectra[a].get("resolution", np.nan)
            return f"{a} {value:.2f} Å" if np.isfinite(value) else f"{a} —"

        self.spectrum_plot.show(
            [Panel("spatial frequency (1/Å)", "power", curves, log_y=True)],
            "last peak: " + ", ".join(res(a) for a in axes),
        )
        k = 1.0 / (2 * float(volume.voxel_size))
        labels = {"z": ("k_x", "k_y"), "y": ("k_x", "k_z"), "x": ("k_y", "k_z")}
        self.spectrum_images.show_images(
            {
                f"summed along {a}": (
                    np.log1p(np.asarray(spectra["projections"][a], float)),
                    (-k, k, -k, k),
                    f"{labels[a][0]} (1/Å)",
                    f"{labels[a][1]} (1/Å)",
                )
                for a in axes
            },
            cmap="magma",
        )
        self.spectra = spectra

    # ------------------------------------------------------------------ tilt maps
    def _tilt_result(self) -> tuple[Any, MSPResult, int]:
        layer = self._layer(self.tilt_map.value, "tilt map: run MSP with 'tilt map' on")
        return layer, layer.metadata["result"], int(layer.metadata.get("tilt_index", 0))

    def overlay(self) -> None:
        """Summed phase of the tilt map's MSP result below the tilt maps, which are made
        translucent and brought to the top (θx shown, θy hidden)."""
        layer, result, k = self._tilt_result()
        put_layer(self.viewer, summed_phase_layer(result.phase(), result.pixel_size, k, result))
        top = len(self.viewer.layers) - 1
        for name in (layer.name, layer.name.replace("θx", "θy")):
            if name in self.viewer.layers:
                tilt = self.viewer.layers[name]
                self.viewer.layers.move(self.viewer.layers.index(tilt), top + 1)
                tilt.opacity, tilt.blending = 0.5, "translucent"
                tilt.visible = "θy" not in name

    def show_statistics(self) -> None:
        """θx, θy statistics over the scan positions inside the region's shapes."""
        _layer, result, k = self._tilt_result()
        shapes = self._layer(self.region.value, "region: draw a rectangle or polygon in a Shapes layer")
        positions = np.asarray(result.positions, float)
        inside = np.zeros(len(positions), bool)
        for vertices, shape_type in zip(shapes.data, shapes.shape_type):
            if shape_type in ("rectangle", "polygon", "ellipse"):
                world = np.array([shapes.data_to_world(v) for v in vertices])[:, -2:]
                inside |= points_in_shape(positions, world, shape_type)
        self.statistics = stats = region_statistics(result.tilt_map, inside)
        lines = [f"tilt {k}: {stats['count']} scan positions"]
        for name, label in (("theta_x", "θx"), ("theta_y", "θy")):
            s = stats[name]
            lines.append(f"{label}: mean {s['mean']:.2f}, median {s['median']:.2f}, std {s['std']:.2f} mrad")
        self.stats.value = "\n".join(lines)
