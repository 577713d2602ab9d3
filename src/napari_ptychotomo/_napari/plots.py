"""Live line plots docked in widgets: a matplotlib canvas when matplotlib is importable
(it is in the ``gui`` extra), else a one-line text summary.

:class:`LivePlot` is a magicgui ``Container`` holding a summary ``Label`` and, with
matplotlib, a ``FigureCanvasQTAgg``; :meth:`LivePlot.show` draws one or more panels of
named curves. The curves drawn last stay in ``panels`` so tests (and scripts) can read
what is shown without looking at pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from magicgui.widgets import Container, Label

__all__ = ["Panel", "LivePlot"]


@dataclass
class Panel:
    """One axes: ``curves`` maps a label to ``(x, y)``; ``log_y`` for losses; ``style``
    ``"-"`` for lines, ``"o-"`` for per-tilt values; ``styles`` overrides it per label
    (e.g. ``"--"`` for threshold curves)."""

    xlabel: str
    ylabel: str
    curves: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    log_y: bool = False
    style: str = "-"
    styles: dict[str, str] = field(default_factory=dict)


class LivePlot(Container):
    """A small docked plot that widgets redraw from their engine's previews.

    Parameters
    ----------
    name : widget name (tests find it as ``widget.<name>``).
    height : figure height in inches.
    text_only : never use matplotlib (the fallback, also for tests).
    """

    def __init__(self, name: str = "plot", height: float = 2.4, text_only: bool = False, label: str = ""):
        self.summary = Label(value="", name=f"{name}_summary")
        # no "loss_plot" name shown as a label; hidden until there is something to draw
        super().__init__(widgets=[self.summary], labels=False, name=name, label=label)
        self.visible = False
        self.panels: list[Panel] = []
        self.images: dict[str, Any] = {}
        self.figure = None
        if text_only:
            return
        try:
            from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
            from matplotlib.figure import Figure
        except ImportError:
            return
        self.figure = Figure(figsize=(4.0, height), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(int(height * 60))
        self.native.layout().addWidget(self.canvas)

    def show(self, panels: list[Panel], summary: str = "") -> None:
        """Draw ``panels`` side by side (replacing what was drawn) and set the summary."""
        self.panels = list(panels)
        self.summary.value = summary
        self.visible = bool(self.panels) or bool(summary)
        if self.figure is None:
            return
        self.figure.clear()
        for index, panel in enumerate(self.panels):
            ax = self.figure.add_subplot(1, len(self.panels), index + 1)
            for label, (x, y) in panel.curves.items():
                y = np.asarray(y, dtype=float)
                if panel.log_y:
                    y = np.where(y > 0, y, np.nan)
                ax.plot(np.asarray(x, dtype=float), y, panel.styles.get(label, panel.style), label=label, ms=3, lw=1)
            if panel.log_y and any(np.any(np.asarray(y, float) > 0) for _, y in panel.curves.values()):
                ax.set_yscale("log")
            ax.set_xlabel(panel.xlabel, fontsize=8)
            ax.set_ylabel(panel.ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
            if len(panel.curves) > 1:  # beside the curves, not over them
                ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        self.canvas.draw()  # now: a deferred draw may outlive a closed widget

    def show_images(
        self,
        images: dict[str, tuple[Any, tuple[float, float, float, float], str, str]],
        summary: str = "",
        cmap: str = "gray",
    ) -> None:
        """Draw images side by side: ``{title: (array (rows, cols), extent (left, right,
        bottom, top) in physical units, xlabel, ylabel)}``; kept in ``self.images``."""
        self.images = dict(images)
        self.summary.value = summary
        self.visible = bool(self.images) or bool(summary)
        if self.figure is None:
            return
        self.figure.clear()
        for index, (title, (array, extent, xlabel, ylabel)) in enumerate(self.images.items()):
            ax = self.figure.add_subplot(1, len(self.images), index + 1)
            ax.imshow(
                np.asarray(array, dtype=float),
                cmap=cmap,
                extent=extent,
                origin="upper",
                aspect="equal",
                interpolation="nearest",
            )
            ax.set_title(title, fontsize=8)
            ax.set_xlabel(xlabel, fontsize=7)
            ax.set_ylabel(ylabel, fontsize=7)
            ax.tick_params(labelsize=6)
        self.canvas.draw()  # now: a deferred draw may outlive a closed widget

    def drawn_lines(self) -> int:
        """Number of lines on the canvas (0 without matplotlib)."""
        if self.figure is None:
            return 0
        return sum(len(ax.lines) for ax in self.figure.axes)
