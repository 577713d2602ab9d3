"""Load triton so that it cannot crash next to an OpenGL driver built on LLVM.

The default torch wheel on Linux installs triton, and torch imports it the first time an
optimiser steps (``torch.optim``'s ``step`` imports ``torch._dynamo``, which imports
triton when it is installed). triton's ``libtriton.so`` carries its own LLVM and exports
its symbols. Once Mesa's llvmpipe (software OpenGL: Xvfb, VMs, remote desktops) or
another LLVM-based driver has loaded its ``libLLVM`` into the process, as napari's canvas
does, the dynamic linker binds libtriton's LLVM references to that other LLVM, and the
library's initialisers crash the process (segmentation fault) while it is imported.

:func:`load_triton_safely` imports triton with ``RTLD_DEEPBIND``, so libtriton resolves
its symbols in itself first, whatever is loaded already. It is called before every
engine starts, so no engine is the first to import triton in the ordinary way.
``torch.compile`` keeps working: triton is loaded, just bound to its own LLVM.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading

__all__ = ["load_triton_safely"]

_lock = threading.Lock()
_absent = False  # find_spec found no triton once: do not search sys.path again


def load_triton_safely() -> bool:
    """Import triton (when installed and not yet imported) with ``RTLD_DEEPBIND``.

    Returns whether triton is imported afterwards. Does nothing where the flag does not
    exist (not Linux / glibc), where triton is not installed, or where it is already
    imported; an import that fails is left for torch to report when it needs triton.
    """
    global _absent
    if "triton" in sys.modules:
        return sys.modules["triton"] is not None
    if _absent:
        return False
    deepbind = getattr(os, "RTLD_DEEPBIND", None)
    if deepbind is None or not hasattr(sys, "setdlopenflags"):
        return False
    with _lock:
        if "triton" in sys.modules:
            return sys.modules["triton"] is not None
        try:
            if importlib.util.find_spec("triton") is None:
                _absent = True
                return False
        except (ImportError, ValueError):
            return False
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | deepbind)
        try:
            import triton  # noqa: F401
        except Exception:  # a broken triton is torch's to report, with its own message
            return False
        finally:
            sys.setdlopenflags(flags)
    return True
