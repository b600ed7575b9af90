"""attnforge: generated CUDA attention kernels (unfused, fused, flash) from Python.

A ctypes binding over libattnforge.so's C API; no compiled extension. `variants()` and `version()`
need only the library; `attention`, `varlen_attention` and `select` need PyTorch with CUDA and are
imported on first use, so `import attnforge` works on a machine without either.
"""
from ._lib import (AttnforgeError, LibraryNotFound, UnsupportedError, is_available,
                   library_path, variants, version)

_TORCH_API = ("attention", "varlen_attention", "select", "estimate")


def __getattr__(name):  # PEP 562: torch is imported only when the torch API is first touched
    if name in _TORCH_API:
        from . import functional
        return getattr(functional, name)
    raise AttributeError(f"module 'attnforge' has no attribute {name!r}")


__all__ = ["attention", "varlen_attention", "select", "variants", "version", "estimate",
           "is_available", "library_path", "AttnforgeError", "UnsupportedError", "LibraryNotFound"]
