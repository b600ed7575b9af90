"""Hardware fit rules: which tiles a backend can build for a head dim, and the limits a variant
carries (fused: the largest Sk its on-chip score row holds). The kernels static_assert the same
budgets; keep the two in step. Figures are for sm_90 (H100): 227 KiB of shared memory per block."""
from __future__ import annotations

SMEM_BYTES_PER_BLOCK = 227 * 1024
MAX_ACC_FLOATS_PER_THREAD = 192  # fp32 accumulators a thread can hold without spilling
FUSED_MAX_SEQLEN_K_CAP = 1024  # fused targets short keys; past this flash wins anyway

ELEM_BYTES = {"f32": 4, "f16": 2, "bf16": 2}
# The row-block slot a warp-specialized forward's producer publishes each block through
# (prim::tma::kWsBlockSlotBytes, common/ws_barriers.cuh): the flash ping-pong tiles and every fused one.
WS_BLOCK_SLOT_BYTES = 128


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


FUSED_MAX_ACC_FLOATS = 192  # fused: fp32 score row + O accumulators per thread (fused/config.cuh kMaxAccFloats)
FUSED_MAX_S_FLOATS = 128  # fused: of which fp32 scores per thread (fused/config.cuh kMaxScoreFloats)
FUSED_KEY_TILE = 64  # keys per warp tile


def _smem_tile_bytes(rows: int, cols: int, e: int) -> int:
    """Bytes of a common/smem_layout.cuh SmemTile: swizzled rows of whole 8-chunk groups, else one
    16-byte chunk of padding per row."""
    chunks = cols * e // 16
    return rows * (chunks if chunks % 8 == 0 else chunks + 1) * 16


FUSED_F32_KEY_TILE = 32  # K/V rows per shared-memory tile of the fp32 kernel (F32Plan::kKeyTile)


def fused_f32_max_seqlen_k(d: int, m: int, w: int, direction: str) -> tuple[int, int]:
    """The fp32 fused kernel (runtime/kernels/fused/f32_cta.hpp, F32Plan) keeps the score block in shared
    memory: Q (m, d+4), a K/V tile (32, d+4), S (m, n+1), O (m, d), LSE (m) and the row phases'
    partials (2, 32·w) floats, and for the backward dO (m, d+4) and dP (m, n+1) too. n: the largest
    multiple of 64 that fits, at most the cap."""
    pitch = d + 4
    fixed = m * pitch + FUSED_F32_KEY_TILE * pitch + m * d + m + 2 * 32 * w + m  # + m: the score row's pad
    per_key = m
    if direction == "bwd":
        fixed += m * pitch + m
        per_key += m
    n = min((SMEM_BYTES_PER_BLOCK // 4 - fixed) // per_key // 64 * 64, FUSED_MAX_SEQLEN_K_CAP)
    if n < 64:
        raise Unfit(f"no room for a 64-key fp32 score row of {m} rows beside d={d} in shared memory")
    return n, (fixed + per_key * n) * 4


def fused_max_seqlen_k(dtype: str, d: int, m: int, w: int, direction: str = "fwd") -> tuple[int, int]:
    """Largest Sk the fused kernel (runtime/kernels/fused/) keeps on chip; returns (max_seqlen_k,
    smem bytes of the `direction` kernel). Warps form (m/16 row bands) × (wn key columns); each warp
    holds its 16 rows × (Sk / wn) keys as fp32 registers, 32 per 64-key tile, beside the O accumulator
    (d/2 floats): steps = min((FUSED_MAX_ACC_FLOATS − d/2) // 32, FUSED_MAX_S_FLOATS // 32) tiles per
    warp, Sk = steps · 64 · wn."""
    if dtype == "f32":
        return fused_f32_max_seqlen_k(d, m, w, direction)
    e = ELEM_BYTES[dtype]
    if m % 16 or m == 0:
        raise Unfit(f"block m={m} is not a multiple of 16")
    wm = m // 16
    if w % wm:
        raise Unfit(f"{w} warps do not split into {wm} bands of 16 rows")
    wn = w // wm
    key_block = FUSED_KEY_TILE * wn
    steps = min((FUSED_MAX_ACC_FLOATS - d // 2) // 32, FUSED_MAX_S_FLOATS // 32)
    steps = min(steps, FUSED_MAX_SEQLEN_K_CAP // key_block)
    if steps < 1:
        raise Unfit(f"no room for a {key_block}-key score row beside a d={d} accumulator")
    n = steps * key_block
    q = _smem_tile_bytes(m, d, e)
    kv = _smem_tile_bytes(key_block, d, e)
    stats = 2 * wn * m * 4
    if direction == "fwd":
        # Q, a 2-stage K/V ring (reused for the cross-warp O reduction), row max/sum exchange.
        smem = q + max(2 * kv, (wn - 1) * m * d * 4) + stats
    else:
        # Q, dO, one K and one V block, P and dS staging (m × key_block), LSE and rowsum(dO∘O).
        smem = 2 * q + 2 * kv + 2 * _smem_tile_bytes(m, key_block, e) + 2 * m * 4
    if smem > SMEM_BYTES_PER_BLOCK:
        raise Unfit(f"shared memory {smem} B > {SMEM_BYTES_PER_BLOCK} B")
    return n, smem


def fused_fwd_stream(dtype: str, d: int, m: int, w: int, s: int, direction: str, arch: str) -> tuple[int, int]:
    """The streamed-key-row fused forward: 64 rows per consumer warpgroup, S formed per key step twice
    (statistics, then P), so the key row is not held on chip and its limit is the fused backend's cap.
    Two forms: one warpgroup per 64 rows and cp.async (w = m / 16; runtime/kernels/fused/fwd_sm90_stream.cuh,
    StreamConfig: 128-key steps up to d 64, 64 above), or a TMA producer warpgroup beside two consumers
    (m 128, w 12, d ≤ 128; fwd_sm90_ws.cuh, WsStreamConfig: 128-key steps). Returns (max_seqlen_k, smem
    bytes): Q, `s` stages of K and V steps, two staging buffers of P (m rows of the step's keys), the ws
    form's mbarriers, 1 KiB of alignment."""
    if direction != "fwd":
        raise Unfit("the streamed fused kernel is a forward (its tiles set directions = [\"fwd\"])")
    if arch != "sm90a":
        raise Unfit("the streamed fused kernel is wgmma / sm_90a only (arch = \"sm90a\")")
    if dtype not in ("f16", "bf16") or d % 64 or d > 256:
        raise Unfit(f"the streamed fused kernel takes 16-bit inputs and head dims 64..256, ×64, got {dtype} d={d}")
    producer = w % 4 == 0 and m == 64 * (w // 4 - 1)
    if w % 4 or s < 2 or (m != 64 * (w // 4) and not producer):
        raise Unfit(f"the streamed fused kernel needs 64 rows per consumer warpgroup (and one producer warpgroup "
                    f"or none) and ≥ 2 stages, got m={m} w={w} s={s}")
    if producer and (m != 128 or d > 128):
        raise Unfit(f"the warp-specialized streamed kernel is m=128 (two consumers of 64 rows) up to head dim 128 "
                    f"(S, O, P and Q in 240 registers), got m={m} d={d}")
    e = ELEM_BYTES[dtype]
    step = 128 if d <= 64 or producer else 64
    # q full / empty; k, v full / empty per stage (WsStreamConfig::kNumBars); the published block's slot
    bars = (2 + 4 * s) * 8 + WS_BLOCK_SLOT_BYTES if producer else 0
    smem = _smem_tile_bytes(m, d, e) + 2 * s * _smem_tile_bytes(step, d, e) + 2 * m * 2 * step + bars + 1024
    if smem > SMEM_BYTES_PER_BLOCK:
        raise Unfit(f"shared memory {smem} B > {SMEM_BYTES_PER_BLOCK} B")
    return FUSED_MAX_SEQLEN_K_CAP, smem


def flash_fwd_sm90a(dtype: str, d: int, m: int, n: int, w: int, s: int, mask) -> dict:
    """The warp-specialized TMA forward (runtime/kernels/flash/fwd_sm90_ws.cuh, FwdWsConfig): a
    producer warpgroup and two (m 128, 12 warps) or three (m 192, 16 warps; 160 registers per consumer
    thread, so head dim 64 only) consumer warpgroups of 64 rows, 128-byte-swizzled 64-column slabs."""
    if (m, w) not in ((128, 12), (192, 16)):
        raise Unfit(f"the sm90a forward is m=128 with 12 warps or m=192 with 16 (a producer + 64-row consumer "
                    f"warpgroups), got m={m} w={w}")
    if d not in (64, 128, 192, 256):
        raise Unfit(f"the sm90a forward has head dims 64, 128, 192 and 256 (whole 64-column slabs), got {d}")
    # At D 128 the 64- and 80-key tiles would fit (112 / 124 accumulators) and pass the tests, but measured 0–10 %
    # slower than m128n128w12 (bench/results/h200_2026-12-02zzc_fwd_d128_m192_tiles.md), so they are not admitted.
    if m == 192 and d != 64:
        raise Unfit(f"three consumer warpgroups hold 160 registers per thread: head dim 64 only, got {d}")
    if n not in (64, 80, 96, 112, 128, 176, 192) or s < 2:
        raise Unfit(f"the sm90a forward streams 64, 80, 96, 112, 128, 176 or 192 keys through >= 2 stages, got n={n} s={s}")
    # Accumulator registers per consumer thread: S (n/2), P in 16 bits (n/4), O (d/2), as FwdWsConfig::kAccRegs
    # counts them. ptxas, sm_90a: m128 d128 n176 (196) and m192 d64 n128 (128) do not spill, m128 d128 n192
    # (208) does.
    acc = n // 2 + n // 4 + d // 2
    if acc > (200 if m == 128 else 128):
        raise Unfit(f"{acc} accumulator registers per consumer thread (S, P, O) for m={m} d={d} n={n}: it would spill")
    if mask.tensor:
        raise Unfit(f"the sm90a forward has no mask tensor path (mask {mask.name})")
    # [Q][K, V × s]([O])[mbarriers]([block slot]) + 1 KiB alignment; O gets its own buffer where it fits (kOwnO);
    # the ping-pong tiles (two consumers at D ≥ 128) publish their row blocks in a slot (kPublishBlocks).
    e = ELEM_BYTES[dtype]
    slot = WS_BLOCK_SLOT_BYTES if m == 128 and d >= 128 else 0
    tiles, bars = (m * d + s * 2 * n * d) * e, (2 + 4 * s) * 8 + slot
    own_o = tiles + m * d * e + bars + 1024 <= SMEM_BYTES_PER_BLOCK
    smem = tiles + (m * d * e if own_o else 0) + bars + 1024
    if smem > SMEM_BYTES_PER_BLOCK:
        raise Unfit(f"shared memory {smem} B > {SMEM_BYTES_PER_BLOCK} B")
    return {"smem_bytes": smem}


def flash_bwd_sm90a(dtype: str, d: int, m: int, n: int, w: int, s: int, mask) -> dict:
    """The warp-specialized form of the Hopper backward (runtime/kernels/flash/bwd_sm90.cuh, kWS): a TMA
    producer warpgroup and two consumer warpgroups of 64 keys, 64 queries per step (128 at head dim 64);
    at head dims 192 and 256 both warpgroups share 64 keys and split the column slabs (m64 n64); falls
    back to the 64-query tile with 8 warps."""
    if d in (192, 256):
        if (m, n, w, s) != (64, 64, 12, 2):
            raise Unfit(f"the sm90a backward at head dims 192 and 256 is m=64 n=64 with 12 warps and 2 stages, got m={m} n={n} w={w} s={s}")
    elif (n, w, s) != (128, 12, 2) or m not in (64, 128):
        raise Unfit(f"the sm90a backward is m=64 or 128, n=128 with 12 warps and 2 stages, got m={m} n={n} w={w} s={s}")
    if d not in (64, 128, 192, 256):
        raise Unfit(f"the sm90a backward has head dims 64, 128, 192 and 256, got {d}")
    if m == 128 and d != 64:
        raise Unfit(f"the sm90a backward takes 128-query steps at head dim 64 only, got {d}")
    if mask.tensor:
        raise Unfit(f"the sm90a backward has no mask tensor path (mask {mask.name})")
    return flash_bwd(dtype, d, 64, n, w - 4, s)


def fit(backend: str, direction: str, dtype: str, d: int, tile: dict, mask) -> tuple[dict, dict]:
    """Returns (tile knobs as built, limits) or raises Unfit."""
    m, n, w, s = (tile.get(k, 0) for k in ("m", "n", "warps", "stages"))
    arch = tile.get("arch", "any")
    if arch != "any" and backend != "flash" and not (backend == "fused" and s):
        raise Unfit(f"arch {arch} exists for the flash backend and the fused streamed tiles (stages) only")
    if backend == "unfused":
        return {"m": 0, "n": 0, "w": w, "s": 0, "arch": arch}, {}
    if backend == "fused":
        if s:  # stages: the streamed key row
            max_sk, smem = fused_fwd_stream(dtype, d, m, w, s, direction, arch)
        else:
            max_sk, smem = fused_max_seqlen_k(dtype, d, m, w, direction)
        return {"m": m, "n": max_sk, "w": w, "s": s, "arch": arch}, {"max_seqlen_k": max_sk, "smem_bytes": smem}
    if arch == "sm90a":
        rule90 = flash_fwd_sm90a if direction == "fwd" else flash_bwd_sm90a
        return {"m": m, "n": n, "w": w, "s": s, "arch": arch}, rule90(dtype, d, m, n, w, s, mask)
    rule = flash_fwd if direction == "fwd" else flash_bwd
    return {"m": m, "n": n, "w": w, "s": s, "arch": arch}, rule(dtype, d, m, n, w, s)
