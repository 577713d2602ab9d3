"""napari interface: readers, writers, sample data, layers and widgets.

The only part of the package that imports napari, magicgui or Qt, and only inside
functions, so napari starts fast and ``import napari_ptychotomo`` stays GUI-free.
"""

from .show import show

__all__ = ["show"]
