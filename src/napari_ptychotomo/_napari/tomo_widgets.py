"""Docked widgets "Denoise projections", "Align tilt series" and "Linear tomography".

Thin shells over :func:`~napari_ptychotomo.tomo.denoise_projections`,
:func:`~napari_ptychotomo.tomo.align_tilt_series_steps` and
:func:`~napari_ptychotomo.tomo.reconstruct_linear_steps`: each takes a projection stack
(an image layer ``(n_tilts, ny, nx)``, pixel size = the layer's last ``scale`` in Å) and the
tilt angles (the layer's ``metadata["angles_deg"]``, or typed in), runs the engine with
:class:`._runner.EngineRunner` and puts the results in layers: ``<stack> (denoised)``,
``<stack> (aligned)`` and ``Volume (aligned)`` (with the Alignment in ``metadata``), and
``Volume (linear)`` with its support mask (:func:`~napari_ptychotomo.tomo.make_support_mask`)
as the Labels layer ``Support mask (linear)`` and, on request, the projections multiplied by
the mask's projections (:func:`~napari_ptychotomo.tomo.project_mask`) as ``<stack>
(masked)``. The align widget plots the shifts (Å) and Euler angles (°) per tilt live.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox

from ..data import Alignment
from ..engine import Progress
from ._runner import EngineRunner
from .choices import image_layers
from .layers import volume_layers
from .plots import LivePlot, Panel
from .show import put_layer, put_layers
from .view import wanted_units

__all__ = ["DenoiseWidget", "AlignWidget", "LinearTomographyWidget", "parse_angles", "one_step"]


def parse_angles(text: str) -> np.ndarray:
    """Tilt angles in degrees from ``"a, b, c"`` or ``"start:stop:count"`` (inclusive)."""
    text = text.strip()
    try:
        if ":" in text:
            start, stop, count = (float(v) for v in text.split(":"))
            return np.linspace(start, stop, int(count))
        return np.array([float(v) for v in text.replace(";", ",").split(",") if v.strip()])
    except ValueError:
        raise ValueError(
            f"angles = {text!r}; expected degrees as 'a, b, c' or 'start:stop:count', e.g. '-60:60:31'"
        ) from None


def one_step(function, *args: Any, message: str = "working…", **kwargs: Any) -> Generator:
    """A one-step engine around a plain function (for the Run / Stop frame)."""
    yield Progress(step=0, total=1, message=message)
    result = function(*args, **kwargs)
    yield Progress(step=1, total=1, result=result, message="done")
    return result


class _StackWidget(Container):
    """Common inputs: the projection stack, its angles and the device; a runner."""

    def __init__(self, viewer: Any, fields: list, synchronous: bool = False):
        self.viewer = viewer
        self.stack = ComboBox(label="projections", choices=self._stack_names, name="stack")
        self.angles = LineEdit(label="angles (°)", value="", name="angles")
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda"], value="auto", name="device")
        self.runner = EngineRunner(
            self._start,
            on_progress=self._progress,
            on_result=self._result,
            on_stopped=self._stopped,
            synchronous=synchronous,
        )
        self.runner.widget.label = ""  # its Run / Stop buttons say what it is
        super().__init__(widgets=[self.stack, self.angles, *fields, self.device, self.runner.widget])
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        self.stack.changed.connect(self._fill_angles)
        self._fill_angles()

    def _stack_names(self, *_: Any) -> list[str]:
        return [name for name, _ in image_layers(self.viewer, ndim=3)]

    def _refresh(self, *_: Any) -> None:
        self.stack.reset_choices()

    def _fill_angles(self, *_: Any) -> None:
        layer = self.layer(required=False)
        angles = None if layer is None else layer.metadata.get("angles_deg")
        if angles is not None and not self.angles.value:
            self.angles.value = ", ".join(f"{a:g}" for a in np.asarray(angles, dtype=float))

    def layer(self, required: bool = True):
        name = self.stack.value
        if name is None or name not in self.viewer.layers:
            if required:
                raise ValueError("no projection stack: choose an image layer (n_tilts, ny, nx)")
            return None
        return self.viewer.layers[name]

    def inputs(self) -> tuple[Any, np.ndarray, np.ndarray, float]:
        """(layer, projections (T, ny, nx) float32, angles (T,) degrees, pixel size Å)."""
        layer = self.layer()
        data = np.asarray(layer.data, dtype=np.float32)
        angles = parse_angles(self.angles.value)
        if len(angles) != len(data):
            raise ValueError(
                f"{len(angles)} angle(s) for {len(data)} projections in "
                f"{layer.name!r}; give one tilt angle in degrees per projection"
            )
        return layer, data, angles, float(layer.scale[-1])

    def _output(self, layer: Any, data: Any, suffix: str, **metadata: Any) -> Any:
        meta = {"kind": "projections", "angles_deg": layer.metadata.get("angles_deg"), **metadata}
        return put_layer(
            self.viewer,
            (
                data,
                {
                    "name": f"{layer.name} ({suffix})",
                    "scale": tuple(layer.scale),
                    "translate": tuple(layer.translate),
                    "axis_labels": tuple(layer.axis_labels),
                    "units": wanted_units(layer),
                    "colormap": "gray",
                    "metadata": {"result": data, **meta},
                },
                "image",
            ),
        )

    def _progress(self, progress: Progress) -> None:
        pass

    def _stopped(self, last: Progress) -> Any:
        return None


class DenoiseWidget(_StackWidget):
    """Denoise a projection stack (BM3D / non-local means / TV, optional Fourier sparsity)."""

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        import inspect

        from ..tomo import denoise_projections

        # the engine's default, so the widget and the command line start from the same one
        default = inspect.signature(denoise_projections).parameters["method"].default
        self.method = ComboBox(label="method", choices=["nlm", "bm3d", "tv"], value=default, name="method")
        self.strength = FloatSpinBox(label="strength", min=0.05, max=20.0, value=1.0, step=0.1, name="strength")
        self.sparsity = FloatSpinBox(
            label="Fourier sparsity (kept fraction, 0 = off)", min=0.0, max=1.0, value=0.0, step=0.05, name="sparsity"
        )
        super().__init__(viewer, [self.method, self.strength, self.sparsity], synchronous)
        self.device.visible = False

    def _start(self) -> Generator:
        from ..tomo import denoise_projections

        self._layer, data, _angles, _pixel = self.inputs()
        return one_step(
            denoise_projections,
            data,
            method=str(self.method.value),
            strength=float(self.strength.value),
            fourier_sparsity=float(self.sparsity.value) or None,
            message=f"denoising {len(data)} projections…",
        )

    def _result(self, result: Any) -> None:
        self._output(
            self._layer,
            np.asarray(result, dtype=np.float32),
            "denoised",
            alignment=self._layer.metadata.get("alignment"),
        )


class AlignWidget(_StackWidget):
    """Joint rigid alignment and linear tomography (You et al. 2025, Algorithm 2).

    ``method`` "auto" lets the engine choose (projection matching for an object in vacuum
    of 64 px or more, else the gradient stages); threshold and outer iterations apply to
    the gradient stages only. Defaults are the engine's."""

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        import inspect

        from ..tomo import align_tilt_series_steps
        from ..tomo.align import default_stages

        engine = inspect.signature(align_tilt_series_steps).parameters
        self.method = ComboBox(label="method", choices=["auto", "matching", "gradient"], value="auto", name="method")
        self.threshold = FloatSpinBox(
            label="threshold (fraction of max, gradient)",
            min=0.0,
            max=0.95,
            value=engine["threshold"].default,
            step=0.05,
            name="threshold",
        )
        self.estimate_axis = CheckBox(
            text="estimate tilt axis", value=engine["estimate_axis"].default, name="estimate_axis"
        )
        self.outer_iterations = SpinBox(
            label="outer iterations per stage (gradient)",
            min=1,
            max=1000,
            value=default_stages()[0].n_outer,
            name="outer_iterations",
        )
        self.final_iterations = SpinBox(
            label="final iterations", min=1, max=5000, value=engine["final_n_iter"].default, name="final_iterations"
        )
        super().__init__(
            viewer,
            [self.method, self.threshold, self.estimate_axis, self.outer_iterations, self.final_iterations],
            synchronous,
        )
        self.shift_plot = LivePlot(name="shift_plot", label="shifts")
        self.append(self.shift_plot)

    def _start(self) -> Generator:
        from dataclasses import replace

        from ..tomo import align_tilt_series_steps
        from ..tomo.align import default_method, default_stages

        self._layer, data, angles, self._pixel = self.inputs()
        self._angles = angles
        method = default_method(data) if self.method.value == "auto" else str(self.method.value)
        stages = None
        if method == "gradient":
            stages = [replace(stage, n_outer=int(self.outer_iterations.value)) for stage in default_stages()]
        return align_tilt_series_steps(
            data,
            angles,
            self._pixel,
            method=method,
            stages=stages,
            threshold=float(self.threshold.value),
            estimate_axis=bool(self.estimate_axis.value),
            final_n_iter=int(self.final_iterations.value),
            device=str(self.device.value),
        )

    def _progress(self, progress: Progress) -> None:
        preview = progress.preview or {}
        if "volume_slice" in preview:
            p = self._pixel
            put_layer(
                self.viewer,
                (
                    np.asarray(preview["volume_slice"]),
                    {
                        "name": "Alignment preview (central z slice)",
                        "scale": (p, p),
                        "axis_labels": ("y", "x"),
                        "units": ("angstrom", "angstrom"),
                        "colormap": "gray",
                        "metadata": {
                            "kind": "preview",
                            "shifts": preview.get("shifts"),
                            "euler_deg": preview.get("euler_deg"),
                        },
                    },
                    "image",
                ),
            )
        if preview.get("shifts") is not None and preview.get("euler_deg") is not None:
            self.plot_alignment(np.asarray(preview["shifts"]), np.asarray(preview["euler_deg"]))

    def plot_alignment(self, shifts: np.ndarray, euler_deg: np.ndarray) -> None:
        """Shifts (y, x) in Å and the Euler angles' departure from the nominal tilts in
        degrees (φ, θ − nominal, ψ), per tilt."""
        a = self._angles
        rms = float(np.sqrt(np.mean(np.sum(shifts**2, axis=1))))
        self.shift_plot.show(
            [
                Panel("tilt (°)", "shift (Å)", {"y": (a, shifts[:, 0]), "x": (a, shifts[:, 1])}, style="o-"),
                Panel(
                    "tilt (°)",
                    "angle (°)",
                    {"φ": (a, euler_deg[:, 0]), "θ − nominal": (a, euler_deg[:, 1] - a), "ψ": (a, euler_deg[:, 2])},
                    style="o-",
                ),
            ],
            f"RMS shift {rms:.2f} Å, mean ψ {float(np.mean(euler_deg[:, 2])):.2f}°",
        )

    def _result(self, result: Any) -> None:
        from scipy import ndimage

        alignment, volume = result
        self.plot_alignment(np.asarray(alignment.shifts), np.asarray(alignment.euler_deg))
        layer = self._layer
        layer.metadata["alignment"] = alignment
        data = np.asarray(layer.data, dtype=np.float32)
        shifts_px = np.asarray(alignment.shifts) / self._pixel
        aligned = np.stack([ndimage.shift(d, -s, order=1, mode="constant") for d, s in zip(data, shifts_px)])
        undone = Alignment(euler_deg=np.asarray(alignment.euler_deg), shifts=np.zeros_like(alignment.shifts))
        self._output(layer, aligned, "aligned", alignment=undone)
        # a stopped alignment's partial result may have no volume yet
        for data_, kwargs, kind in volume_layers(volume, "aligned") if volume is not None else []:
            kwargs["metadata"]["alignment"] = alignment
            put_layer(self.viewer, (data_, kwargs, kind))


class LinearTomographyWidget(_StackWidget):
    """Linear tomography with the alignment fixed (the stack's ``metadata["alignment"]``,
    else the nominal tilts about y with zero shifts)."""

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        self.iterations = SpinBox(label="iterations", min=1, max=5000, value=50, name="iterations")
        self.nonnegative = CheckBox(text="non-negative", value=True, name="nonnegative")
        self.tv_weight = FloatSpinBox(label="TV weight", min=0.0, max=10.0, value=0.0, step=0.01, name="tv_weight")
        self.support_mask = CheckBox(text="support mask (Labels layer)", value=True, name="support_mask")
        self.mask_threshold = FloatSpinBox(
            label="mask threshold (fraction of max)", min=0.01, max=0.99, value=0.2, step=0.05, name="mask_threshold"
        )
        self.mask_projections = CheckBox(text="mask the projections too", value=False, name="mask_projections")
        super().__init__(
            viewer,
            [
                self.iterations,
                self.nonnegative,
                self.tv_weight,
                self.support_mask,
                self.mask_threshold,
                self.mask_projections,
            ],
            synchronous,
        )
        self.loss_plot = LivePlot(name="loss_plot", label="loss")
        self.append(self.loss_plot)

    def alignment(self, layer: Any, angles: np.ndarray) -> Alignment:
        alignment = layer.metadata.get("alignment")
        if isinstance(alignment, Alignment) and len(alignment.euler_deg) == len(angles):
            return alignment
        return Alignment.from_angles(angles)

    def _start(self) -> Generator:
        from ..tomo import reconstruct_linear_steps

        self._layer, data, angles, pixel = self.inputs()
        self._data, self._pixel, self._losses = data, pixel, ([], [])
        self._alignment = self.alignment(self._layer, angles)
        return reconstruct_linear_steps(
            data,
            self._alignment,
            pixel,
            n_iter=int(self.iterations.value),
            nonnegative=bool(self.nonnegative.value),
            tv_weight=float(self.tv_weight.value),
            device=str(self.device.value),
        )

    def _progress(self, progress: Progress) -> None:
        steps, losses = self._losses
        steps.append(progress.step)
        losses.append(progress.loss)
        self.loss_plot.show(
            [Panel("iteration", "projection error", {"loss": (steps, losses)}, log_y=True)],
            f"iteration {progress.step}, loss {progress.loss:.4g}",
        )

    def _result(self, volume: Any) -> None:
        layers = volume_layers(volume, "linear")
        for _data, kwargs, _kind in layers:
            kwargs["metadata"]["alignment"] = self._alignment
        put_layers(self.viewer, layers)
        if self.support_mask.value:
            self._show_mask(volume)

    def _show_mask(self, volume: Any) -> None:
        from ..tomo import make_support_mask, project_mask

        mask = make_support_mask(volume, threshold=float(self.mask_threshold.value))
        s = float(volume.voxel_size)
        put_layer(
            self.viewer,
            (
                mask.astype(np.uint8),
                {
                    "name": "Support mask (linear)",
                    "scale": (s, s, s),
                    "translate": tuple(float(v) for v in np.asarray(volume.origin)),
                    "axis_labels": ("z", "y", "x"),
                    "units": ("angstrom",) * 3,
                    "opacity": 0.4,
                    "metadata": {"kind": "mask", "result": mask, "alignment": self._alignment},
                },
                "labels",
            ),
        )
        if self.mask_projections.value:
            weights = project_mask(mask, self._alignment, self._pixel, out_shape=self._data.shape[1:])
            self._output(self._layer, (self._data * weights).astype(np.float32), "masked", alignment=self._alignment)
