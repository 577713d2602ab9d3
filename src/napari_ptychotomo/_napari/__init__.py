"""napari interface: readers, writers, sample data, layers and widgets.

The only part of the package that imports napari, magicgui or Qt, and only inside
functions or in widget modules that napari imports when a widget is opened, so napari
starts fast and ``import napari_ptychotomo`` stays GUI-free.

Modules: ``layers`` / ``scan_views`` (data objects → layer tuples, pure), ``show``
(``show(obj, viewer)``), ``reader`` / ``writer`` / ``sample_data`` (npe2 contributions,
pure), ``_runner`` (Run / Stop frame, throttled previews), ``plots`` (live matplotlib
plots, text fallback), ``previews`` (orthogonal-slice mosaic, a stopped engine's state,
pure), ``inspection`` (slice views, line profiles, region statistics, pure), the docked
widgets in ``widgets/``, one per module (``msp``, ``msp_projections``, ``denoise``,
``align``, ``linear``, ``end_to_end``, ``plane_wave``, ``fsc``, ``atoms``, ``inspect``; what
several share in ``_stack``, ``_joint``, ``_volume``; their engine fields from
``widgets/fields.py``), and ``choices`` (layer look-ups for combo boxes).
"""

from .show import show

__all__ = ["show"]
