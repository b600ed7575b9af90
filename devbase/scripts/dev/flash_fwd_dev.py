#!/usr/bin/env python3
"""Dev-only check and timing of the flash forward (scripts/dev/flash_fwd_dev.cu, loaded through ctypes),
beside PyTorch SDPA in one process. Not part of the library; the real tests are tests/gpu/test_flash_fwd.cpp.

  python3 scripts/dev/flash_fwd_dev.py LIB.so [check] [time] [--quick]

check: fp64 reference on the GPU, the numerics rule of DESIGN.md against a plain bf16/f16 unfused
implementation, outputs NaN-poisoned before each run, fully masked rows, NaN in masked K/V, varlen, GQA.
time: the training grid (bf16, B*S=16384, H*D=2048), TFLOP/s of each dev variant and of SDPA flash/cudnn.
"""
import os
import ctypes
import math
import sys

import torch
import torch.nn.functional as F

LIB = ctypes.CDLL(sys.argv[1])
LIB.dev_variant_name.restype = ctypes.c_char_p
LIB.dev_flash_fwd.restype = ctypes.c_int
VARIANTS = [LIB.dev_variant_name(i).decode() for i in range(LIB.dev_num_variants())]
F32, F16, BF16, BOOL = 0, 1, 2, 3
TORCH_DT = {"bf16": torch.bfloat16, "f16": torch.float16}
MASK_ID = {"none": 0, "causal": 1, "window": 2, "bias": 3}

def vparse(name):  # bf16_hd64_causal_m128n64w4s2
    dt, hd, mask, tile = name.split("_")[:4]  # an arch tag (_sm90a) may follow the tile
    return dt, int(hd[2:]), mask, tile

def ll_array(xs):
    return (ctypes.c_longlong * len(xs))(*[int(x) for x in xs])

def call(vi, q, k, v, o, lse, *, B, Sq, Sk, Hq, Hkv, D, cu_q=None, cu_k=None, scale, win=(-1, -1),
         bias=None):
    def st(t):  # (batch, row, head) strides; varlen tensors are (total, H, D)
        return [0, t.stride(0), t.stride(1)] if t.dim() == 3 else [t.stride(0), t.stride(1), t.stride(2)]
    strides = ll_array(st(q) + st(k) + st(v) + st(o))
    total_q = q.shape[0] if q.dim() == 3 else B * Sq
    total_k = k.shape[0] if k.dim() == 3 else B * Sk
    bptr, bdt, bst = None, 0, None
    if bias is not None:
        bdt = {torch.float32: F32, torch.float16: F16, torch.bfloat16: BF16, torch.bool: BOOL}[bias.dtype]
        bptr = ctypes.c_void_p(bias.data_ptr())
        bst = ll_array([0 if bias.shape[i] == 1 else bias.stride(i) for i in range(4)])  # broadcast dims: stride 0
    rc = LIB.dev_flash_fwd(
        vi, PATH[0], ctypes.c_void_p(q.data_ptr()), ctypes.c_void_p(k.data_ptr()), ctypes.c_void_p(v.data_ptr()),
        ctypes.c_void_p(o.data_ptr()), ctypes.c_void_p(lse.data_ptr()), strides, B, Sq, Sk, Hq, Hkv, D,
        ctypes.c_void_p(cu_q.data_ptr() if cu_q is not None else 0),
        ctypes.c_void_p(cu_k.data_ptr() if cu_k is not None else 0),
        ctypes.c_longlong(total_q), ctypes.c_longlong(total_k), ctypes.c_float(scale), win[0], win[1],
        bptr, bdt, bst, ctypes.c_void_p(torch.cuda.current_stream().cuda_stream))
    if rc != 0:
        raise RuntimeError(f"dev_flash_fwd returned {rc}")

def visibility(mask, Sq, Sk, win, device):
    qi = torch.arange(Sq, device=device)[:, None]
    kj = torch.arange(Sk, device=device)[None, :]
    d = qi + Sk - Sq
    if mask == "causal":
        return kj <= d
    if mask == "window":
        l, r = win
        return ((kj >= d - l) if l >= 0 else True) & ((kj <= d + r) if r >= 0 else True) & (kj >= 0)
    return torch.ones(Sq, Sk, dtype=torch.bool, device=device)

def attention_ref(q, k, v, vis, bias, scale, dtype):
    """q (B,Sq,Hq,D), k/v (B,Sk,Hkv,D); dtype float64 = reference, else plain low-precision unfused."""
    Hq, Hkv = q.shape[2], k.shape[2]
    qf = q.to(dtype).permute(0, 2, 1, 3)
    kf = k.to(dtype).permute(0, 2, 1, 3).repeat_interleave(Hq // Hkv, dim=1)
    vf = v.to(dtype).permute(0, 2, 1, 3).repeat_interleave(Hq // Hkv, dim=1)
    s = (qf @ kf.transpose(-1, -2)) * scale
    vis = vis.expand(s.shape).clone() if vis is not None else torch.ones_like(s, dtype=torch.bool)
    if bias is not None:
        if bias.dtype == torch.bool:
            vis &= bias.expand(s.shape)
        else:
            s = s + bias.to(dtype)
    s = s.masked_fill(~vis, float("-inf"))
    if dtype == torch.float64:
        lse = torch.logsumexp(s, -1)
        p = torch.where(torch.isinf(lse)[..., None], torch.zeros_like(s), torch.exp(s - lse[..., None]))
    else:
        p = torch.softmax(s, -1).nan_to_num(0.0)
        lse = None
    o = (p.to(dtype) @ vf).permute(0, 2, 1, 3)
    return o, lse

FAILS = []
PATH = [0]  # 0 auto (wgmma on sm_90 where the variant fits), 1 mma.sync, 2 wgmma

def report(name, ok, msg):
    print(f"{'PASS' if ok else 'FAIL'} {name}: {msg}", flush=True)
    if not ok:
        FAILS.append(name)

def check_dense(vname, B, Sq, Sk, Hq, Hkv, *, win=(-1, -1), bias_kind=None, big=False, kv_pad=0,
                poison_pad=False, seed=0):
    dt, D, mask, _ = vparse(vname)
    vi = VARIANTS.index(vname)
    g = torch.Generator(device="cuda").manual_seed(seed)
    tdt = TORCH_DT[dt]
    mul = 40.0 if big else 1.0
    q = (torch.randn(B, Sq, Hq, D, device="cuda", generator=g) * mul).to(tdt)
    # K/V possibly views into a longer buffer whose rows ≥ Sk hold NaN (must never be read)
    kbuf = torch.randn(B, Sk + kv_pad, Hkv, D, device="cuda", generator=g) * mul
    vbuf = torch.randn(B, Sk + kv_pad, Hkv, D, device="cuda", generator=g)
    if poison_pad and kv_pad:
        kbuf[:, Sk:] = float("nan")
        vbuf[:, Sk:] = float("nan")
    k = kbuf.to(tdt)[:, :Sk]
    v = vbuf.to(tdt)[:, :Sk]
    scale = 1.0 / math.sqrt(D)
    bias = None
    if mask == "bias":
        if bias_kind == "f32":
            bias = torch.randn(B, Hq, Sq, Sk, device="cuda", generator=g)
        elif bias_kind == "bf16_bcast":  # (1,1,Sq,Sk) with some -inf, incl. a fully masked row
            bias = torch.randn(1, 1, Sq, Sk, device="cuda", generator=g)
            bias[..., ::3] = float("-inf")
            bias[:, :, 0, :] = float("-inf")
            bias = bias.to(torch.bfloat16)
        elif bias_kind == "bool":
            bias = torch.rand(B, 1, Sq, Sk, device="cuda", generator=g) > 0.3
            bias[:, :, -1, :] = False  # a fully masked row
    o = torch.full((B, Sq, Hq, D), float("nan"), device="cuda", dtype=tdt)
    lse = torch.full((B, Hq, Sq), float("nan"), device="cuda")
    call(vi, q, k, v, o, lse, B=B, Sq=Sq, Sk=Sk, Hq=Hq, Hkv=Hkv, D=D, scale=scale, win=win, bias=bias)
    torch.cuda.synchronize()
    vis = visibility(mask, Sq, Sk, win, "cuda")
    ref, ref_lse = attention_ref(q, k, v, vis, bias, scale, torch.float64)
    low, _ = attention_ref(q, k, v, vis, bias, scale, tdt)
    err = (o.double() - ref).abs().max().item()
    err_low = (low.double() - ref).abs().max().item()
    tol = 2 * err_low + 1e-5
    finite_ref = torch.isfinite(ref_lse)
    lse_err = (lse.double() - ref_lse)[finite_ref].abs().max().item() if finite_ref.any() else 0.0
    dead_ok = bool((lse[~finite_ref] == float("-inf")).all()) and bool((o.permute(0, 2, 1, 3)[~finite_ref] == 0).all())
    ok = (not torch.isnan(o).any().item()) and (not torch.isnan(lse).any().item()) and err <= tol and \
        lse_err < 2e-3 * max(1.0, ref_lse[finite_ref].abs().max().item() if finite_ref.any() else 1) and dead_ok
    tag = f"{vname} B{B} Sq{Sq} Sk{Sk} H{Hq}/{Hkv} win{win} bias{bias_kind} big{big} pad{kv_pad}"
    tag = f"path{PATH[0]} " + tag
    report(tag, ok, f"err {err:.3e} tol {tol:.3e} lse_err {lse_err:.2e} dead_rows {int((~finite_ref).sum())} dead_ok {dead_ok}")
    return o, lse, (q, k, v, scale, bias)

def check_nan_masked_kv(vname):
    """NaN / 1e10 in K/V positions no query sees (window with left bound) must change nothing."""
    dt, D, mask, _ = vparse(vname)
    vi = VARIANTS.index(vname)
    B, Sq, Sk, H = 2, 200, 1000, 2
    win = (100, 0)
    tdt = TORCH_DT[dt]
    torch.manual_seed(1)
    q = torch.randn(B, Sq, H, D, device="cuda").to(tdt)
    k = torch.randn(B, Sk, H, D, device="cuda").to(tdt)
    v = torch.randn(B, Sk, H, D, device="cuda").to(tdt)
    dead = Sk - Sq - win[0]  # keys < dead are visible to no query
    outs = []
    for poison in (False, True):
        kk, vv = k.clone(), v.clone()
        if poison:
            kk[:, :dead:2] = float("nan"); vv[:, :dead:2] = float("nan")
            kk[:, 1:dead:2] = 1e10; vv[:, 1:dead:2] = float("inf")
        o = torch.full((B, Sq, H, D), float("nan"), device="cuda", dtype=tdt)
        lse = torch.full((B, H, Sq), float("nan"), device="cuda")
        call(vi, q, kk, vv, o, lse, B=B, Sq=Sq, Sk=Sk, Hq=H, Hkv=H, D=D, scale=D ** -0.5, win=win)
        outs.append((o, lse))
    torch.cuda.synchronize()
    same = torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    report(f"path{PATH[0]} {vname} NaN/1e10/inf in masked K/V", same and not torch.isnan(outs[1][0]).any().item(),
           f"bitwise equal: {same}")

def check_varlen(vname, seqs_q, seqs_k, Hq, Hkv, win=(-1, -1)):
    dt, D, mask, _ = vparse(vname)
    vi = VARIANTS.index(vname)
    tdt = TORCH_DT[dt]
    torch.manual_seed(2)
    tq, tk = sum(seqs_q), sum(seqs_k)
    q = torch.randn(tq, Hq, D, device="cuda").to(tdt)
    k = torch.randn(tk, Hkv, D, device="cuda").to(tdt)
    v = torch.randn(tk, Hkv, D, device="cuda").to(tdt)
    cu_q = torch.tensor([0] + list(torch.tensor(seqs_q).cumsum(0)), dtype=torch.int32, device="cuda")
    cu_k = torch.tensor([0] + list(torch.tensor(seqs_k).cumsum(0)), dtype=torch.int32, device="cuda")
    o = torch.full((tq, Hq, D), float("nan"), device="cuda", dtype=tdt)
    lse = torch.full((Hq, tq), float("nan"), device="cuda")
    scale = D ** -0.5
    call(vi, q, k, v, o, lse, B=len(seqs_q), Sq=max(seqs_q), Sk=max(seqs_k), Hq=Hq, Hkv=Hkv, D=D,
         cu_q=cu_q, cu_k=cu_k, scale=scale, win=win)
    torch.cuda.synchronize()
    ok, worst, wtol = True, 0.0, 0.0
    for b in range(len(seqs_q)):
        q0, q1 = int(cu_q[b]), int(cu_q[b + 1])
        k0, k1 = int(cu_k[b]), int(cu_k[b + 1])
        if q1 == q0:
            continue
        vis = visibility(mask, q1 - q0, k1 - k0, win, "cuda")
        ref, ref_lse = attention_ref(q[None, q0:q1], k[None, k0:k1], v[None, k0:k1], vis, None, scale, torch.float64)
        low, _ = attention_ref(q[None, q0:q1], k[None, k0:k1], v[None, k0:k1], vis, None, scale, tdt)
        err = (o[None, q0:q1].double() - ref).abs().max().item()
        tol = 2 * (low.double() - ref).abs().max().item() + 1e-5
        got_lse = lse[:, q0:q1].double()
        lse_ok = bool(((got_lse - ref_lse[0]).abs() < 2e-3).logical_or(got_lse == ref_lse[0]).all())
        ok &= err <= tol and lse_ok and not torch.isnan(o[q0:q1]).any().item()
        worst, wtol = max(worst, err), max(wtol, tol)
    report(f"path{PATH[0]} {vname} varlen q{seqs_q} k{seqs_k} H{Hq}/{Hkv}", ok, f"max err {worst:.3e} (tol up to {wtol:.3e})")

def run_checks(quick):
    pairs = [(1, 1), (239, 1), (799, 3), (113, 203), (128, 217), (1023, 1024), (1024, 1023), (4224, 4224)]
    for vname in VARIANTS:
        dt, D, mask, tile = vparse(vname)
        if mask == "bias":
            for bk in ("f32", "bf16_bcast", "bool"):
                check_dense(vname, 2, 113, 203, 4, 2, bias_kind=bk)
            check_dense(vname, 1, 1024, 1023, 2, 1, bias_kind="f32")
            continue
        if mask == "window":
            for win in ((64, 0), (-1, 17), (5, 300), (0, 0)):
                check_dense(vname, 2, 300, 517, 4, 2, win=win)
            check_nan_masked_kv(vname)
            check_varlen(vname, [0, 37, 300, 129], [5, 0, 290, 700], 4, 2, win=(50, 3))
            continue
        for (sq, sk) in (pairs if not quick else pairs[:5]):
            B, H = (1, 2) if sq * sk > 2_000_000 else (2, 4)
            check_dense(vname, B, sq, sk, H, H // 2 if H > 1 else 1)
        check_dense(vname, 2, 300, 333, 4, 4, kv_pad=37, poison_pad=True)   # rows ≥ Sk are NaN
        check_dense(vname, 2, 256, 256, 2, 1, big=True)                      # logits ~1e3..1e4
        check_varlen(vname, [0, 37, 300, 129], [5, 0, 290, 129], 4, 2)

def time_grid():
    # DEV_SS: comma-separated sequence lengths (default the training grid's 1024 … 16384)
    SS = [int(x) for x in os.environ.get("DEV_SS", "1024,2048,4096,8192,16384").split(",")]
    # DEV_DS: head dims (default 64,128); H = 2048 // D heads (D 192: 10 heads, H·D = 1920)
    DS = [int(x) for x in os.environ.get("DEV_DS", "64,128").split(",")]
    from torch.nn.attention import SDPBackend, sdpa_kernel
    def bench(fn, reps=9, inner=8):
        # inner back-to-back calls per event pair: host launch cost (ctypes) hides behind the GPU
        for _ in range(3):
            fn()
        ts = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(inner):
                fn()
            b.record()
            b.synchronize()
            ts.append(a.elapsed_time(b) / inner)
        ts.sort()
        return ts[len(ts) // 2]
    rows = []
    for D in DS:
        for S in SS:
            for causal in (False, True):
                B, H = 16384 // S, 2048 // D
                flops = 4 * B * H * S * S * D / (2 if causal else 1)
                q = torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16)
                k = torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16)
                v = torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16)
                o = torch.empty_like(q)
                lse = torch.empty(B, H, S, device="cuda")
                res = {}
                for be, name in ((SDPBackend.FLASH_ATTENTION, "torch_flash"), (SDPBackend.CUDNN_ATTENTION, "torch_cudnn")):
                    try:
                        with sdpa_kernel(be):
                            ms = bench(lambda: F.scaled_dot_product_attention(
                                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal))
                        res[name] = flops / ms / 1e9
                    except Exception as e:  # noqa
                        res[name] = float("nan")
                for vname in VARIANTS:
                    dt, hd, mask, tile = vparse(vname)
                    if dt != "bf16" or hd != D or mask != ("causal" if causal else "none"):
                        continue
                    vi = VARIANTS.index(vname)
                    for path, tag in ((1, "mma:"), (2, "wg:")):
                        if path == 1 and tile not in ("m128n64w4s2",):
                            continue
                        PATH[0] = path
                        ms = bench(lambda: call(vi, q, k, v, o, lse, B=B, Sq=S, Sk=S, Hq=H, Hkv=H, D=D, scale=D ** -0.5))
                        res[tag + tile] = flops / ms / 1e9
                PATH[0] = 0
                best = max(v for kk, v in res.items() if not kk.startswith("torch"))
                rows.append((D, S, causal, res, best))
                print(f"D={D:3d} S={S:5d} causal={int(causal)} " + " ".join(f"{kk}={v:6.1f}" for kk, v in res.items())
                      + f"  best/flash={best / res['torch_flash']:.3f}", flush=True)
                del q, k, v, o, lse
    return rows

def trace():
    """Timeline of the warp-specialized forward (a build with -DATTNFORGE_FLASH_FWD_TRACE=1 -DDEV_WS):
    per row block, the cycles of each phase, and a fit of block cycles = overhead + tiles · per-tile."""
    import statistics as st_
    names = os.environ.get("DEV_TRACE_VARIANTS", "bf16_hd64_causal_m128n128w12s2_sm90a").split(",")
    SS = [int(x) for x in os.environ.get("DEV_SS", "2048").split(",")]
    dims = (ctypes.c_int * 4)()
    LIB.dev_trace_dims(dims)  # the extents of fwd_trace::g (flash/fwd_trace.cuh)
    n_ctas, n_roles, n_blocks, n_ev = dims
    buf = (ctypes.c_longlong * (n_ctas * n_roles * n_blocks * n_ev))()
    at = lambda c, r, b, e: buf[((c * n_roles + r) * n_blocks + b) * n_ev + e]
    for name in names:
        vi = VARIANTS.index(name)
        dt, D, mask, _ = vparse(name)
        for S in SS:
            B, H = 16384 // S, 2048 // D
            q, k, v = (torch.randn(B, S, H, D, device="cuda", dtype=TORCH_DT[dt]) for _ in range(3))
            o = torch.empty_like(q)
            lse = torch.empty(B, H, S, device="cuda", dtype=torch.float32)
            run = lambda: call(vi, q, k, v, o, lse, B=B, Sq=S, Sk=S, Hq=H, Hkv=H, D=D, scale=D ** -0.5)
            for _ in range(5):
                run()
            torch.cuda.synchronize()
            assert LIB.dev_trace_clear() == 0
            a, b_ = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(); run(); b_.record(); b_.synchronize()
            ms = a.elapsed_time(b_)
            assert LIB.dev_trace_read(buf) == 0
            if os.environ.get("OUT"):  # the raw (CTA, role, block, event) arrays for offline analysis
                import numpy as np
                np.save(f"{os.environ['OUT']}/trace_{name}_S{S}.npy",
                        np.frombuffer(buf, dtype=np.int64).reshape(n_ctas, n_roles, n_blocks, n_ev).copy())
            consumers = int(name.split("_m")[-1].split("n")[0]) // 64
            mhz = []
            phases = {k_: [] for k_ in ("q_wait", "turn0", "s0", "softmax0", "loop", "finalize", "sts", "stg", "gap")}
            xs, ys, per_tile = [], [], []
            for c in range(n_ctas):
                kc0, kg0, kc1, kg1 = (at(c, 4, 0, e) for e in range(4))
                if kg1 > kg0 > 0:
                    mhz.append((kc1 - kc0) / (kg1 - kg0) * 1e3)
                for r in range(1, 1 + consumers):
                    prev_it = 0
                    for bl in range(n_blocks - 1):
                        ev = [at(c, r, bl, e) for e in range(n_ev)]
                        if ev[0] == 0 or ev[6] == 0:
                            break
                        n = ev[7] - prev_it
                        prev_it = ev[7]
                        nxt = at(c, r, bl + 1, 0)
                        if n >= 1 and ev[5] > 0:
                            phases["q_wait"].append(ev[1] - ev[0]); phases["turn0"].append(ev[2] - ev[1])
                            phases["s0"].append(ev[3] - ev[2]); phases["softmax0"].append(ev[4] - ev[3])
                            phases["loop"].append(ev[5] - ev[4]); phases["finalize"].append(ev[8] - ev[5])
                            phases["sts"].append(ev[9] - ev[8]); phases["stg"].append(ev[6] - ev[9])
                            if n >= 2:
                                per_tile.append((ev[5] - ev[4]) / n)
                        if nxt > 0:
                            phases["gap"].append(nxt - ev[6])
                            xs.append(n); ys.append(nxt - ev[0])
            f = st_.median(mhz) if mhz else float("nan")
            mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
            sxx = sum((x - mean_x) ** 2 for x in xs)
            slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx if sxx else float("nan")
            icpt = mean_y - slope * mean_x
            print(f"== {name} S={S} B={B} H={H}: {ms * 1e3:.1f} µs, SM clock {f:.0f} MHz, blocks {len(xs)}", flush=True)
            print("   median cycles: " + "  ".join(f"{k_}={st_.median(v_):.0f}" for k_, v_ in phases.items() if v_))
            print(f"   fit block cycles = {icpt:.0f} + {slope:.0f}·tiles   (loop/tiles median {st_.median(per_tile):.0f})"
                  if per_tile else f"   fit {icpt:.0f} + {slope:.0f}·tiles")
            del q, k, v, o, lse

if __name__ == "__main__":
    args = sys.argv[2:]
    quick = "--quick" in args
    if "check" in args:
        for path in (1, 2):
            PATH[0] = path
            run_checks(quick)
        PATH[0] = 0
        print(f"checks: {len(FAILS)} failed: {FAILS}", flush=True)
    if "time" in args:
        time_grid()
    if "trace" in args:
        trace()
