"""attention() / varlen_attention() on PyTorch CUDA tensors, with autograd, over the C API.

Owns: torch tensor → attnforge_tensor descriptors, the mapping of causal / window / attn_mask /
mask_kind onto the library's mask kinds, workspace allocation through PyTorch's caching allocator
(so torch.cuda.max_memory_allocated() sees it), and the autograd.Function that calls
attnforge_forward / attnforge_backward on the current torch CUDA stream.
"""
from __future__ import annotations

import contextlib
import ctypes
from dataclasses import dataclass

import torch

from . import _lib
from ._lib import AttnforgeError

_DTYPES = {torch.float32: _lib.F32, torch.float16: _lib.F16, torch.bfloat16: _lib.BF16,
           torch.bool: _lib.BOOL}


# ---- descriptors ----------------------------------------------------------------------------

def _desc(t: torch.Tensor | None) -> _lib.Tensor:
    """attnforge_tensor viewing t (sizes/strides in elements); zeroed (= absent) for None."""
    d = _lib.Tensor()
    if t is None:
        return d
    dtype = _DTYPES.get(t.dtype)
    if dtype is None:
        raise TypeError(f"attnforge: unsupported dtype {t.dtype}; expected float32, float16, bfloat16")
    rank = t.dim()
    if rank > _lib.MAX_RANK:
        raise ValueError(f"attnforge: tensor of rank {rank} > {_lib.MAX_RANK}")
    d.data = t.data_ptr()
    d.dtype = dtype
    d.rank = rank
    d.sizes[:rank] = t.shape  # one slice assignment each: this runs six times per call
    d.strides[:rank] = t.stride()
    return d


def _rows_strided(t: torch.Tensor) -> torch.Tensor:
    """t itself if its last dim is contiguous and no dim of size > 1 is broadcast (stride 0);
    a contiguous copy otherwise (the layout the library accepts: any strides, last dim dense)."""
    strides = t.stride()
    if strides[-1] == 1 and 0 not in strides:  # the common case, decided without a loop
        return t
    ok = strides[-1] == 1 or t.size(-1) == 1
    ok = ok and all(s != 0 for s, n in zip(strides, t.shape) if n > 1)
    return t if ok else t.contiguous()


def _check_cuda(name: str, t: torch.Tensor, device: torch.device) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"attnforge: expected {name} to be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cuda":
        raise ValueError(f"attnforge: expected {name} on a CUDA device, got {t.device}")
    if t.device != device:
        raise ValueError(f"attnforge: expected {name} on {device} (like q), got {t.device}")


# ---- masks ----------------------------------------------------------------------------------

def _normalise_window(causal: bool, window) -> tuple[int, int] | None:
    """(left, right) with -1 = unbounded, or None for no window. causal+window ⇒ right = 0."""
    left, right = (int(window[0]), int(window[1]))
    if left < -1 or right < -1:
        raise ValueError(f"attnforge: window entries must be >= -1 (-1 = unbounded), got {window}")
    if (left, right) == (-1, -1):
        return None
    if causal:
        right = 0 if right < 0 else min(right, 0)
    return left, right


def _visibility(sq: int, sk: int, causal: bool, window, device) -> torch.Tensor | None:
    """bool (Sq, Sk): key j visible to query i under causal/window, bottom-right aligned
    (query i sits at key position i + Sk - Sq), or None when every key is visible."""
    win = _normalise_window(causal, window)
    if not causal and win is None:
        return None
    i = torch.arange(sq, device=device).view(-1, 1) + (sk - sq)  # aligned query position
    j = torch.arange(sk, device=device).view(1, -1)
    vis = torch.ones(sq, sk, dtype=torch.bool, device=device)
    if win is None:
        return vis & (j <= i)
    left, right = win
    if left >= 0:
        vis &= j >= i - left
    if right >= 0:
        vis &= j <= i + right
    return vis


def _prepare_bias(mask: torch.Tensor, b: int, hq: int, sq: int, sk: int, qdtype, device,
                  fold: torch.Tensor | None) -> torch.Tensor:
    """attn_mask → a rank-4 view broadcast to (B, Hq, Sq, Sk) by zero strides, last dim dense.
    bool stays bool (True = visible); a float mask is additive, in q's dtype or fp32.
    fold: an extra (Sq, Sk) visibility (causal/window given beside attn_mask) merged in."""
    _check_cuda("attn_mask", mask, device)
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"attnforge: expected attn_mask to be bool or floating point, got {mask.dtype}")
    if mask.is_floating_point() and mask.dtype not in (qdtype, torch.float32):
        mask = mask.to(qdtype)
    if mask.dim() > 4:
        raise ValueError(f"attnforge: expected attn_mask of rank <= 4, got shape {tuple(mask.shape)}")
    while mask.dim() < 4:
        mask = mask.unsqueeze(0)
    if any(m not in (1, n) for m, n in zip(mask.shape, (b, hq, sq, sk))):
        raise ValueError(f"attnforge: attn_mask of shape {tuple(mask.shape)} does not broadcast to "
                         f"(B, Hq, Sq, Sk) = {(b, hq, sq, sk)}")
    if fold is not None:
        if mask.dtype == torch.bool:
            mask = mask & fold
        else:
            mask = mask.masked_fill(~fold, float("-inf"))
    if mask.size(-1) != sk or mask.stride(-1) != 1:
        mask = mask.expand(*mask.shape[:-1], sk).contiguous()
    return mask.expand(b, hq, sq, sk)


@dataclass(frozen=True)
class _Call:
    """The non-tensor part of one call (kept on the autograd ctx for backward)."""
    kind: str
    scalars: tuple
    scale: float
    backend: str
    variant: str | None
    deterministic: bool
    return_weights: bool
    varlen: tuple | None  # (batch, max_seqlen_q, max_seqlen_k) for varlen


def _mask_kind(causal, window, has_bias, mask_kind, mask_scalars) -> tuple[str, tuple]:
    if mask_kind is not None:
        if causal or tuple(window) != (-1, -1):
            raise ValueError("attnforge: give either mask_kind=... or causal/window, not both")
        scalars = tuple(int(s) for s in mask_scalars)
        if len(scalars) > _lib.MAX_MASK_SCALARS:
            raise ValueError(f"attnforge: at most {_lib.MAX_MASK_SCALARS} mask scalars, got {len(scalars)}")
        return str(mask_kind), scalars
    if has_bias:
        return "bias", ()  # causal/window were folded into the tensor
    win = _normalise_window(causal, window)
    if win is not None:
        return "window", win
    return ("causal", ()) if causal else ("none", ())


# ---- the C calls ----------------------------------------------------------------------------

def _fill(call: _Call, q, k, v, o, lse, bias, cu_q, cu_k) -> _lib.Args:
    a = _lib.new_args()
    a.q, a.k, a.v, a.o, a.lse = _desc(q), _desc(k), _desc(v), _desc(o), _desc(lse)
    if call.varlen is not None:
        a.cu_seqlens_q, a.cu_seqlens_k = cu_q.data_ptr(), cu_k.data_ptr()
        a.batch_varlen, a.max_seqlen_q, a.max_seqlen_k = call.varlen
    a.scale = call.scale
    a._kind = call.kind.encode()  # keep the bytes alive as long as the struct
    a.mask.kind = a._kind
    for i, s in enumerate(call.scalars):
        a.mask.scalars[i] = s
    a.mask.bias = _desc(bias)
    if call.backend not in _lib.BACKENDS:
        raise ValueError(f"attnforge: unknown backend {call.backend!r}; expected one of "
                         f"{', '.join(_lib.BACKENDS)}")
    a.backend = _lib.BACKENDS[call.backend]
    if call.variant is not None:
        a._variant = call.variant.encode()
        a.variant = a._variant
    a.deterministic = int(call.deterministic)
    return a


def _on_device(device: torch.device):
    """torch.cuda.device(device), or nothing when it is current already (the usual case; the
    context manager costs more than the rest of a call's descriptor work)."""
    if device.index is None or device.index == torch.cuda.current_device():
        return contextlib.nullcontext()
    return torch.cuda.device(device)


def _run(fn_name: str, a: _lib.Args, is_backward: int, device) -> None:
    """Workspace from torch's allocator (so torch's peak-memory stats count it), then the call
    on the current torch stream of the tensors' device."""
    L = _lib.lib()
    with _on_device(device):
        nbytes = ctypes.c_size_t(0)
        _lib.check(L.attnforge_workspace_size(ctypes.byref(a), is_backward, ctypes.byref(nbytes)),
                   "workspace_size")
        ws = None
        if nbytes.value > 0:
            ws = torch.empty(nbytes.value, dtype=torch.uint8, device=device)
            a.workspace, a.workspace_bytes = ws.data_ptr(), nbytes.value
        stream = torch.cuda.current_stream().cuda_stream
        _lib.check(getattr(L, fn_name)(ctypes.byref(a), ctypes.c_void_p(stream)), fn_name)
        # ws goes back to the caching allocator here; its stream-ordered reuse is safe because
        # the allocator records this (current) stream as the block's stream.
        del ws


def _lse_shape(call: _Call, q: torch.Tensor) -> tuple:
    if call.varlen is not None:
        return (q.size(1), q.size(0))  # (Hq, total_q)
    return (q.size(0), q.size(2), q.size(1))  # (B, Hq, Sq)


def _forward(call: _Call, q, k, v, bias, cu_q, cu_k):
    o = torch.empty(q.shape, dtype=q.dtype, device=q.device)  # (B, Sq, Hq, D), contiguous
    lse = torch.empty(_lse_shape(call, q), dtype=torch.float32, device=q.device)
    a = _fill(call, q, k, v, o, lse, bias, cu_q, cu_k)
    w = None
    if call.return_weights:
        if call.varlen is not None:
            raise ValueError("attnforge: return_weights is not available for varlen_attention")
        # P (B, Hq, Sq, Sk) in q's dtype
        w = torch.empty(q.size(0), q.size(2), q.size(1), k.size(1), dtype=q.dtype, device=q.device)
        a.weights = _desc(w)
    _run("attnforge_forward", a, 0, q.device)
    return o, lse, w


class _AttentionFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, bias, cu_q, cu_k, call: _Call):
        o, lse, w = _forward(call, q, k, v, bias, cu_q, cu_k)
        ctx.call = call
        ctx.save_for_backward(q, k, v, o, lse, bias, cu_q, cu_k)
        ctx.mark_non_differentiable(lse)
        if w is None:
            return o, lse
        ctx.mark_non_differentiable(w)
        return o, lse, w

    @staticmethod
    def backward(ctx, d_o, *_unused):  # gradients w.r.t. lse / weights are not propagated
        q, k, v, o, lse, bias, cu_q, cu_k = ctx.saved_tensors
        call = ctx.call
        d_o = _rows_strided(d_o)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        a = _fill(call, q, k, v, o, lse, bias, cu_q, cu_k)
        a.d_o, a.dq, a.dk, a.dv = _desc(d_o), _desc(dq), _desc(dk), _desc(dv)
        _run("attnforge_backward", a, 1, q.device)
        return dq, dk, dv, None, None, None, None


def _apply(q, k, v, bias, cu_q, cu_k, call: _Call):
    """(o, lse[, weights]): through autograd when a gradient may flow to q, k or v, else the
    forward alone (inference skips recording a graph node, a tenth of a short call's host time)."""
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return _AttentionFn.apply(q, k, v, bias, cu_q, cu_k, call)
    o, lse, w = _forward(call, q, k, v, bias, cu_q, cu_k)
    return (o, lse) if w is None else (o, lse, w)


# ---- public API -----------------------------------------------------------------------------

def _scale(scale) -> float:
    return 0.0 if scale is None else float(scale)  # 0 ⇒ the library's 1/sqrt(D)


def _prepare(q, k, v, rank, causal, window, attn_mask, mask_kind, mask_scalars):
    if not isinstance(q, torch.Tensor):
        raise TypeError(f"attnforge: expected q to be a torch.Tensor, got {type(q).__name__}")
    _check_cuda("q", q, q.device)
    _check_cuda("k", k, q.device)
    _check_cuda("v", v, q.device)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != rank:
            shape = "(B, S, H, D)" if rank == 4 else "(total, H, D)"
            raise ValueError(f"attnforge: expected {name} of rank {rank} {shape}, got shape {tuple(t.shape)}")
    q, k, v = _rows_strided(q), _rows_strided(k), _rows_strided(v)
    bias = None
    if attn_mask is not None:
        b, sq, hq = q.size(0), q.size(1), q.size(2)
        sk = k.size(1)
        fold = None if mask_kind is not None else _visibility(sq, sk, causal, window, q.device)
        bias = _prepare_bias(attn_mask, b, hq, sq, sk, q.dtype, q.device, fold)
    kind, scalars = _mask_kind(causal, window, bias is not None, mask_kind, mask_scalars)
    return q, k, v, bias, kind, scalars


def attention(q, k, v, *, causal=False, window=(-1, -1), attn_mask=None, scale=None,
              backend="auto", return_weights=False, return_lse=False, mask_kind=None,
              mask_scalars=(), variant=None, deterministic=False):
    """Exact softmax attention O = softmax(Q·Kᵀ·scale + mask)·V.

    q: (B, Sq, Hq, D); k, v: (B, Sk, Hkv, D) with Hq % Hkv == 0; CUDA tensors of one dtype
    (float32, float16, bfloat16), any strides with the last dim contiguous (else copied).
    causal: bottom-right aligned (key j visible to query i iff j <= i + Sk - Sq).
    window: (left, right), -1 = unbounded; with causal, right = 0.
    attn_mask: bool (True = visible) or additive float, broadcastable to (B, Hq, Sq, Sk);
      causal/window given beside it are folded into it. Not differentiated.
    mask_kind / mask_scalars: a mask kind by name (e.g. one defined in the variant TOML) and its
      runtime scalars in TOML order; attn_mask is its tensor if the kind reads one.
    backend: "auto", "unfused", "fused" or "flash"; variant: an exact variant name.
    Returns o (B, Sq, Hq, D); with return_weights / return_lse a tuple (o, [weights], [lse]):
    weights P (B, Hq, Sq, Sk) in q's dtype (unfused, fused), lse fp32 (B, Hq, Sq).
    """
    q, k, v, bias, kind, scalars = _prepare(q, k, v, 4, causal, window, attn_mask, mask_kind,
                                            mask_scalars)
    call = _Call(kind, scalars, _scale(scale), backend, variant, deterministic,
                 bool(return_weights), None)
    outs = _apply(q, k, v, bias, None, None, call)
    o, lse = outs[0], outs[1]
    extra = []
    if return_weights:
        extra.append(outs[2])
    if return_lse:
        extra.append(lse)
    return (o, *extra) if extra else o


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, *,
                     causal=False, window=(-1, -1), scale=None, backend="auto", return_lse=False,
                     mask_kind=None, mask_scalars=(), variant=None, deterministic=False):
    """Attention over packed sequences: q (total_q, Hq, D), k/v (total_k, Hkv, D), int32
    cu_seqlens (B+1) on q's device; sequence b is rows cu[b]..cu[b+1]. Masks align per
    sequence. Returns o (total_q, Hq, D), and lse fp32 (Hq, total_q) with return_lse."""
    q, k, v, bias, kind, scalars = _prepare(q, k, v, 3, causal, window, None, mask_kind,
                                            mask_scalars)
    cus = []
    for name, cu in (("cu_seqlens_q", cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k)):
        _check_cuda(name, cu, q.device)
        if cu.dim() != 1:
            raise ValueError(f"attnforge: expected {name} of rank 1 (B+1,), got shape {tuple(cu.shape)}")
        cus.append(cu.to(torch.int32).contiguous())
    if cus[0].numel() != cus[1].numel():
        raise ValueError(f"attnforge: cu_seqlens_q and cu_seqlens_k differ in length: "
                         f"{cus[0].numel()} and {cus[1].numel()}")
    call = _Call(kind, scalars, _scale(scale), backend, variant, deterministic, False,
                 (cus[0].numel() - 1, int(max_seqlen_q), int(max_seqlen_k)))
    o, lse = _apply(q, k, v, bias, cus[0], cus[1], call)[:2]
    return (o, lse) if return_lse else o


def select(q, k, v, *, causal=False, window=(-1, -1), attn_mask=None, backend="auto",
           return_weights=False, mask_kind=None, mask_scalars=(), backward=False,
           memory_budget=0):
    """Which backend and variant the library would run for attention(q, k, v, ...) and why:
    returns (backend name, variant name, reason). Launches nothing."""
    q, k, v, bias, kind, scalars = _prepare(q, k, v, 4, causal, window, attn_mask, mask_kind,
                                            mask_scalars)
    call = _Call(kind, scalars, 0.0, backend, None, False, bool(return_weights), None)
    o = torch.empty_like(q)
    lse = torch.empty(_lse_shape(call, q), dtype=torch.float32, device=q.device)
    a = _fill(call, q, k, v, o, lse, bias, None, None)
    a.memory_budget = int(memory_budget)
    if return_weights:
        w = torch.empty(q.size(0), q.size(2), q.size(1), k.size(1), dtype=q.dtype, device=q.device)
        a.weights = _desc(w)
    if backward:
        a.d_o, a.dq, a.dk, a.dv = _desc(o), _desc(q), _desc(k), _desc(v)  # shapes only
    chosen = ctypes.c_int(0)
    vbuf, rbuf = ctypes.create_string_buffer(256), ctypes.create_string_buffer(2048)
    with _on_device(q.device):
        _lib.check(_lib.lib().attnforge_select_backend(ctypes.byref(a), int(backward),
                                                       ctypes.byref(chosen), vbuf, 256, rbuf, 2048),
                   "select_backend")
    return _lib.BACKEND_NAMES.get(chosen.value, str(chosen.value)), vbuf.value.decode(), rbuf.value.decode()


def estimate(q, k, v, *, causal=False, window=(-1, -1), attn_mask=None, return_weights=False,
             mask_kind=None, mask_scalars=(), backward=False):
    """Per backend (unfused, fused, flash): whether a compiled variant runs attention(q, k, v, ...),
    which, its exact workspace, all device bytes of the call, FLOPs and kernel launches — a list of
    dicts from the library's attnforge_estimate. Launches nothing."""
    fn = _lib.optional_function("attnforge_estimate")
    if fn is None:
        raise NotImplementedError(f"{_lib.library_path()} has no attnforge_estimate")
    q, k, v, bias, kind, scalars = _prepare(q, k, v, 4, causal, window, attn_mask, mask_kind,
                                            mask_scalars)
    call = _Call(kind, scalars, 0.0, "auto", None, False, bool(return_weights), None)
    o = torch.empty_like(q)
    lse = torch.empty(_lse_shape(call, q), dtype=torch.float32, device=q.device)
    a = _fill(call, q, k, v, o, lse, bias, None, None)
    if return_weights:
        w = torch.empty(q.size(0), q.size(2), q.size(1), k.size(1), dtype=q.dtype, device=q.device)
        a.weights = _desc(w)
    if backward:
        a.d_o, a.dq, a.dk, a.dv = _desc(o), _desc(q), _desc(k), _desc(v)  # shapes only
    out = (_lib.BackendEstimate * 3)()
    count = ctypes.c_int(0)
    with _on_device(q.device):
        status = fn(ctypes.byref(a), int(backward), out, 3, ctypes.byref(count))
    if status != _lib.OK and count.value == 0 and out[0].reason:
        raise AttnforgeError(status, f"attnforge estimate failed: {out[0].reason.decode()}")
    _lib.check(status, "estimate")
    return [{"backend": _lib.BACKEND_NAMES.get(e.backend, str(e.backend)),
             "available": bool(e.available), "variant": e.variant.decode(),
             "reason": e.reason.decode(), "workspace_bytes": e.workspace_bytes,
             "scratch_bytes": e.scratch_bytes, "device_bytes": e.device_bytes, "flops": e.flops,
             "kernel_launches": e.kernel_launches} for e in out[:count.value]]


__all__ = ["attention", "varlen_attention", "select", "estimate", "AttnforgeError"]
