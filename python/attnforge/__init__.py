"""attnforge: generated CUDA attention kernels (unfused, fused, flash) from Python.

A ctypes binding over libattnforge.so's C API; no compiled extension. `variants()` and `version()`
need only the library; `attention`, `varlen_attention` and `select` need PyTorch with CUDA and are
imported on first use, so `import attnforge` works on a machine without either.
"""
from ._lib import (AttnforgeError, LibraryNotFound, UnsupportedError, is_available,
                   library_path, variants, version)

_TORCH_API = ("attention", "varlen_attention", "select")


def __getattr__(name):  # PEP 562: torch is imported only when the torch API is first touched
    if name in _TORCH_API:
        from . import functional
        return getattr(functional, name)
    raise AttributeError(f"module 'attnforge' has no attribute {name!r}")


def estimate(*args, **kwargs):
    """Predicted time / memory of a call, from the library's attnforge_estimate (if built)."""
    from . import _lib
    fn = _lib.optional_function("attnforge_estimate")
    if fn is None:
        raise NotImplementedError("this libattnforge.so has no attnforge_estimate")
    raise NotImplementedError("attnforge.estimate: the C function exists but its binding is not written yet")


__all__ = ["attention", "varlen_attention", "select", "variants", "version", "estimate",
           "is_available", "library_path", "AttnforgeError", "UnsupportedError", "LibraryNotFound"]
