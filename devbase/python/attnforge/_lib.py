"""ctypes mirror of runtime/include/attnforge/attnforge.h and the loader of libattnforge.so.

Owns: the C struct layouts (checked against the header by tests/python/test_binding.py), the
library search order (ATTNFORGE_LIBRARY, the build tree, the system) and status → exception.
Needs no torch: `attnforge.variants()` works on a machine without PyTorch or a GPU.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import threading

MAX_RANK = 4  # ATTNFORGE_MAX_RANK
MAX_MASK_SCALARS = 4  # ATTNFORGE_MAX_MASK_SCALARS

# attnforge_status
OK, INVALID_ARGUMENT, UNSUPPORTED, CUDA_ERROR, OUT_OF_MEMORY, INTERNAL = range(6)
# attnforge_dtype
F32, F16, BF16, BOOL = range(4)
# attnforge_backend
BACKENDS = {"auto": 0, "unfused": 1, "fused": 2, "flash": 3}
BACKEND_NAMES = {v: k for k, v in BACKENDS.items()}


class Tensor(ctypes.Structure):
    """attnforge_tensor: a strided view of device memory; sizes/strides in elements."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int),  # attnforge_dtype (a C enum: int-sized)
        ("rank", ctypes.c_int32),
        ("sizes", ctypes.c_int64 * MAX_RANK),
        ("strides", ctypes.c_int64 * MAX_RANK),
    ]


class Mask(ctypes.Structure):
    """attnforge_mask: kind by name, its runtime scalars in TOML order, optional bias tensor."""

    _fields_ = [
        ("kind", ctypes.c_char_p),
        ("scalars", ctypes.c_int64 * MAX_MASK_SCALARS),
        ("bias", Tensor),
    ]


class Args(ctypes.Structure):
    """attnforge_args: everything one forward or backward call sees."""

    _fields_ = [
        ("q", Tensor),  # (B, Sq, Hq, D) or varlen (total_q, Hq, D)
        ("k", Tensor),  # (B, Sk, Hkv, D) or varlen (total_k, Hkv, D)
        ("v", Tensor),
        ("o", Tensor),  # like q
        ("lse", Tensor),  # fp32 (B, Hq, Sq) or varlen (Hq, total_q)
        ("weights", Tensor),  # optional P (B, Hq, Sq, Sk)
        ("d_o", Tensor),
        ("dq", Tensor),
        ("dk", Tensor),
        ("dv", Tensor),
        ("cu_seqlens_q", ctypes.c_void_p),  # const int32_t* (device)
        ("cu_seqlens_k", ctypes.c_void_p),
        ("batch_varlen", ctypes.c_int32),
        ("max_seqlen_q", ctypes.c_int32),
        ("max_seqlen_k", ctypes.c_int32),
        ("scale", ctypes.c_float),
        ("mask", Mask),
        ("backend", ctypes.c_int),  # attnforge_backend
        ("variant", ctypes.c_char_p),
        ("deterministic", ctypes.c_int32),
        ("workspace", ctypes.c_void_p),
        ("workspace_bytes", ctypes.c_size_t),
        ("memory_budget", ctypes.c_size_t),
    ]


class BackendEstimate(ctypes.Structure):
    """attnforge_backend_estimate: what one backend would need for a call (attnforge_estimate)."""

    _fields_ = [
        ("backend", ctypes.c_int),
        ("available", ctypes.c_int32),
        ("variant", ctypes.c_char * 96),
        ("reason", ctypes.c_char * 256),
        ("workspace_bytes", ctypes.c_size_t),
        ("scratch_bytes", ctypes.c_size_t),
        ("device_bytes", ctypes.c_size_t),
        ("flops", ctypes.c_double),
        ("kernel_launches", ctypes.c_int32),
    ]


class AttnforgeError(RuntimeError):
    """A failed library call; .status is the attnforge_status, the text is the library's message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class UnsupportedError(AttnforgeError):
    """ATTNFORGE_UNSUPPORTED: valid input, but no compiled variant (or backend) covers it."""


class LibraryNotFound(ImportError):
    """libattnforge.so could not be loaded (see candidate_paths()); .broken is True when a file
    was found but the dynamic loader refused it (missing symbol, wrong architecture)."""

    def __init__(self, message: str, broken: bool = False):
        super().__init__(message)
        self.broken = broken


_REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def candidate_paths() -> list[str]:
    """Where the library is looked for, in order: $ATTNFORGE_LIBRARY (a file or a directory),
    the build trees of this checkout (build*/libattnforge.so, newest first), the system."""
    out: list[str] = []
    env = os.environ.get("ATTNFORGE_LIBRARY")
    if env:
        out.append(os.path.join(env, "libattnforge.so") if os.path.isdir(env) else env)
    found = glob.glob(os.path.join(_REPO_ROOT, "build*", "libattnforge.so"))
    found += glob.glob(os.path.join(_REPO_ROOT, "build*", "*", "libattnforge.so"))
    found = [p for p in set(found) if os.path.exists(p)]  # drops dangling symlinks
    out += sorted(found, key=os.path.getmtime, reverse=True)
    system = ctypes.util.find_library("attnforge")
    out.append(system or "libattnforge.so")  # the dynamic loader's own search path last
    return out


_lock = threading.Lock()
_lib = None
_lib_path = None


def _declare(lib: ctypes.CDLL) -> None:
    """Argument and result types of every C function (wrong ones would corrupt the call)."""
    P = ctypes.POINTER
    lib.attnforge_args_init.argtypes = [P(Args)]
    lib.attnforge_args_init.restype = None
    for fn in (lib.attnforge_forward, lib.attnforge_backward):
        fn.argtypes = [P(Args), ctypes.c_void_p]
        fn.restype = ctypes.c_int
    lib.attnforge_workspace_size.argtypes = [P(Args), ctypes.c_int, P(ctypes.c_size_t)]
    lib.attnforge_workspace_size.restype = ctypes.c_int
    lib.attnforge_select_backend.argtypes = [
        P(Args), ctypes.c_int, P(ctypes.c_int), ctypes.c_char_p, ctypes.c_size_t,
        ctypes.c_char_p, ctypes.c_size_t]
    lib.attnforge_select_backend.restype = ctypes.c_int
    lib.attnforge_last_error.argtypes = []
    lib.attnforge_last_error.restype = ctypes.c_char_p
    lib.attnforge_status_string.argtypes = [ctypes.c_int]
    lib.attnforge_status_string.restype = ctypes.c_char_p
    lib.attnforge_backend_name.argtypes = [ctypes.c_int]
    lib.attnforge_backend_name.restype = ctypes.c_char_p
    lib.attnforge_version.argtypes = []
    lib.attnforge_version.restype = ctypes.c_char_p
    lib.attnforge_variant_count.argtypes = []
    lib.attnforge_variant_count.restype = ctypes.c_int
    lib.attnforge_variant_name.argtypes = [ctypes.c_int]
    lib.attnforge_variant_name.restype = ctypes.c_char_p
    if hasattr(lib, "attnforge_estimate"):  # added after 0.1.0's first cut
        lib.attnforge_estimate.argtypes = [P(Args), ctypes.c_int, P(BackendEstimate), ctypes.c_int,
                                           P(ctypes.c_int)]
        lib.attnforge_estimate.restype = ctypes.c_int


def lib() -> ctypes.CDLL:
    """The loaded library (loaded once, on first use). Raises LibraryNotFound with every path tried."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        errors, broken = [], []
        for path in candidate_paths():
            try:
                handle = ctypes.CDLL(path)
            except OSError as e:
                errors.append(f"  {path}: {e}")
                if os.path.exists(path):
                    broken.append(f"{path} exists but does not load ({e})")
                continue
            _declare(handle)
            _lib, _lib_path = handle, path
            return handle
        if broken:
            raise LibraryNotFound("; ".join(broken), broken=True)
        raise LibraryNotFound(
            "libattnforge.so not found; build it (cmake -B build -G Ninja && cmake --build build) or "
            "set ATTNFORGE_LIBRARY to its path. Tried:\n" + "\n".join(errors))


def library_path() -> str | None:
    """Path of the loaded library (None before the first successful load)."""
    return _lib_path


def is_available() -> bool:
    try:
        lib()
        return True
    except LibraryNotFound:
        return False


def last_error() -> str:
    msg = lib().attnforge_last_error()
    return msg.decode() if msg else ""


def check(status: int, what: str) -> None:
    """Raise the library's own message for a non-OK status."""
    if status == OK:
        return
    name = lib().attnforge_status_string(status)
    name = name.decode() if name else f"status {status}"
    text = f"attnforge {what} failed ({name}): {last_error() or '(no message)'}"
    raise (UnsupportedError if status == UNSUPPORTED else AttnforgeError)(status, text)


def new_args() -> Args:
    """An Args initialised by the library's own defaults (attnforge_args_init)."""
    a = Args()
    lib().attnforge_args_init(ctypes.byref(a))
    return a


def variants() -> list[str]:
    """Canonical names of the compiled variants, in the library's table order."""
    L = lib()
    return [L.attnforge_variant_name(i).decode() for i in range(L.attnforge_variant_count())]


def version() -> str:
    return lib().attnforge_version().decode()


def optional_function(name: str):
    """A C function that later versions add (e.g. attnforge_estimate); None if absent."""
    return getattr(lib(), name, None)
