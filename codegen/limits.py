"""Hardware fit rules: which tiles a backend can build for a head dim, and the limits a variant
carries (fused: the largest Sk its on-chip score row holds). The kernels static_assert the same
budgets; keep the two in step. Figures are for sm_90 (H100): 227 KiB of shared memory per block."""
from __future__ import annotations

SMEM_BYTES_PER_BLOCK = 227 * 1024
MAX_ACC_FLOATS_PER_THREAD = 192  # fp32 accumulators a thread can hold without spilling
FUSED_MAX_SEQLEN_K_CAP = 1024  # fused targets short keys; past this flash wins anyway

ELEM_BYTES = {"f32": 4, "f16": 2, "bf16": 2}


class Unfit(Exception):
    """The tile does not fit; the message says why (shown by --list --verbose)."""


def flash_fwd(dtype: str, d: int, m: int, n: int, w: int, s: int) -> dict:
    e = ELEM_BYTES[dtype]
    smem = (m * d + s * 2 * n * d) * e  # Q tile + `s` stages of K and V tiles
    acc = (m * d + m * n) // (32 * w)  # O accumulator + S fragment per thread
    if smem > SMEM_BYTES_PER_BLOCK:
        raise Unfit(f"shared memory {smem} B > {SMEM_BYTES_PER_BLOCK} B")
    if acc > MAX_ACC_FLOATS_PER_THREAD:
        raise Unfit(f"{acc} fp32 accumulators per thread > {MAX_ACC_FLOATS_PER_THREAD}")
    if m % (16 * w) and m % 16:
        raise Unfit(f"block m={m} not a multiple of 16")
    return {"smem_bytes": smem}


def flash_bwd(dtype: str, d: int, m: int, n: int, w: int, s: int) -> dict:
    e = ELEM_BYTES[dtype]
    # K, V tiles resident; Q and dO tiles double-buffered; P/dS staging tile.
    smem = (2 * n * d + max(s, 1) * 2 * m * d + 2 * m * n) * e
    acc = (2 * n * d) // (32 * w)  # dK and dV accumulators per thread
    if smem > SMEM_BYTES_PER_BLOCK:
        raise Unfit(f"shared memory {smem} B > {SMEM_BYTES_PER_BLOCK} B")
    if acc > MAX_ACC_FLOATS_PER_THREAD:
        raise Unfit(f"{acc} fp32 accumulators per thread > {MAX_ACC_FLOATS_PER_THREAD}")
    return {"smem_bytes": smem}


def fused_max_seqlen_k(dtype: str, d: int, m: int) -> tuple[int, int]:
    """Largest multiple of 64 keys whose fp32 score block (m × Sk) fits beside the Q tile and a
    double-buffered 64-row K/V tile; returns (max_seqlen_k, smem bytes at that size)."""
    e = ELEM_BYTES[dtype]
    fixed = m * d * e + 2 * 2 * 64 * d * e
    n = (SMEM_BYTES_PER_BLOCK - fixed) // (m * 4) // 64 * 64
    n = min(n, FUSED_MAX_SEQLEN_K_CAP)
    if n < 64:
        raise Unfit(f"no room for a 64-key score row (fixed use {fixed} B)")
    return n, fixed + m * n * 4


def fit(backend: str, direction: str, dtype: str, d: int, tile: dict) -> tuple[dict, dict]:
    """Returns (tile knobs as built, limits) or raises Unfit."""
    m, n, w, s = (tile.get(k, 0) for k in ("m", "n", "warps", "stages"))
    if backend == "unfused":
        return {"m": 0, "n": 0, "w": w, "s": 0}, {}
    if backend == "fused":
        max_sk, smem = fused_max_seqlen_k(dtype, d, m)
        return {"m": m, "n": max_sk, "w": w, "s": 0}, {"max_seqlen_k": max_sk, "smem_bytes": smem}
    rule = flash_fwd if direction == "fwd" else flash_bwd
    return {"m": m, "n": n, "w": w, "s": s}, rule(dtype, d, m, n, w, s)
