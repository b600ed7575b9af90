#!/usr/bin/env python3
"""attnforge's backends (through the Python binding) beside PyTorch SDPA's math, efficient, flash
and cudnn backends, in one process on one GPU: same inputs, same timer, forward and backward.

Timer: CUDA events around each call, warm-up first (400 ms by default: the GPU's power controller
moves the SM clock over a few hundred ms, so a short warm-up times an implementation at the clock
the previous one left; bench/NOTES-flash-bwd.md, sixteenth session), median of the repeats; when
one input set fits in L2, inputs rotate among enough copies to spill it. Memory: torch.cuda.max_memory_allocated()
over the call minus what was allocated before it (attnforge's workspace comes from torch's
allocator, so both sides are measured the same way). FLOPs (DESIGN.md): 4·B·H·Sq·Sk·D forward,
half for causal, ×2.5 backward. Writes compare.json and compare.md into --out and prints the table.

  python3 bench/compare_torch.py --quick --out build/compare      # the README's main job
  python3 bench/compare_torch.py --grid train,decode --out bench/results
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import attnforge  # noqa: E402

AF_IMPLS = ["af-unfused", "af-fused", "af-flash"]
TORCH_IMPLS = {"torch-math": SDPBackend.MATH, "torch-efficient": SDPBackend.EFFICIENT_ATTENTION,
               "torch-flash": SDPBackend.FLASH_ATTENTION, "torch-cudnn": SDPBackend.CUDNN_ATTENTION}
ALL_IMPLS = AF_IMPLS + list(TORCH_IMPLS) + ["torch-eager"]  # torch-eager: the weights grid only
REFERENCE = "torch-efficient"  # max_diff is measured against its output (bf16, exact softmax)


# ---- problems ---------------------------------------------------------------------------------

def training_grid(ds, ss, causals):
    """bf16, B·S = 16384 tokens, H·D = 2048 (DESIGN.md)."""
    return [dict(grid="train", B=16384 // s, Sq=s, Sk=s, H=2048 // d, D=d, causal=c)
            for d in ds for s in ss for c in causals]


def memory_grid(ss):
    """Fixed batch (B = 1, H = 16, D = 128): the call's memory against S — linear for flash,
    quadratic for unfused (the training grid fixes B·S, which makes flash's memory flat)."""
    return [dict(grid="memory", B=1, Sq=s, Sk=s, H=16, D=128, causal=False) for s in ss]


def decode_grid(sks):
    return [dict(grid="decode", B=16, Sq=1, Sk=sk, H=32, D=128, causal=False) for sk in sks]


def weights_grid(ds, ss, causals):
    """The training grid's shapes with the attention weights returned (issue 4: fused against unfused
    at S ≤ 1024); torch-eager is what a PyTorch user writes to get them: softmax(Q·Kᵀ·scale)·V."""
    return [dict(p, grid="weights") for p in training_grid(ds, ss, causals)]


def classic_grid():
    """(S, d_model, B), causal, multi-head with D = 64 (DESIGN.md's classic five)."""
    return [dict(grid="classic", B=b, Sq=s, Sk=s, H=dm // 64, D=64, causal=True)
            for s, dm, b in [(128, 512, 16), (512, 768, 8), (1024, 1024, 4), (2048, 1024, 2), (4096, 1024, 1)]]


def flops(p, backward):
    f = 4.0 * p["B"] * p["H"] * p["Sq"] * p["Sk"] * p["D"] * (0.5 if p["causal"] else 1.0)
    return 2.5 * f if backward else f


# ---- the callables under test -----------------------------------------------------------------

def make_fn(impl, p):
    """fn(q, k, v) → o with q (B, Sq, H, D): attnforge directly, torch SDPA on (B, H, S, D) views
    of the same memory (what a model holding (B, S, H, D) activations passes to SDPA)."""
    causal, weights = p["causal"], p["grid"] == "weights"
    if impl.startswith("af-"):
        backend, variant = af_variant(impl, p)
        return lambda q, k, v: attnforge.attention(q, k, v, causal=causal, backend=backend, variant=variant,
                                                   return_weights=weights)
    if impl == "torch-eager":
        return eager_fn(p)
    sdpb = TORCH_IMPLS[impl]

    def fn(q, k, v):
        with sdpa_kernel(sdpb):
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                               v.transpose(1, 2), is_causal=causal)
        return o.transpose(1, 2)
    return fn


def af_variant(impl, p):
    """"af-<backend>" → (backend, None): the library chooses the tile. "af-<backend>@<tile>" (e.g.
    af-fused@m128n1024w8s2_sm90a) → that backend's forward variant of this problem with that tile."""
    backend, _, tile = impl[3:].partition("@")
    if not tile:
        return backend, None
    mask = "causal" if p["causal"] else "none"
    return backend, f"{backend}_fwd_bf16_hd{p['D']}_{mask}_{tile}"


def eager_fn(p):
    """softmax(Q·Kᵀ·scale + mask)·V in plain PyTorch ops, returning (o, weights (B, H, Sq, Sk))."""
    scale = 1.0 / math.sqrt(p["D"])
    hidden = None
    if p["causal"]:  # bottom-right aligned, as everywhere here; built once, outside the timed call
        i = torch.arange(p["Sq"], device="cuda")[:, None]
        j = torch.arange(p["Sk"], device="cuda")[None, :]
        hidden = j > i + (p["Sk"] - p["Sq"])

    def fn(q, k, v):
        s = torch.matmul(q.transpose(1, 2), k.permute(0, 2, 3, 1)) * scale  # (B, H, Sq, Sk)
        if hidden is not None:
            s = s.masked_fill(hidden, float("-inf"))
        w = torch.softmax(s, dim=-1)
        return torch.matmul(w, v.transpose(1, 2)).transpose(1, 2), w
    return fn


_PREHEAT = {}


def preheat(ms):
    """A fixed bf16 GEMM for about `ms` ms (4096³ products back to back), so that every implementation's
    warm-up starts from the same hot, power-capped state instead of the one the implementation before it
    left: in the fixed order af-flash follows af-unfused (memory-bound, cooler) and cuDNN follows
    PyTorch's flash backend (bench/results/h200_2026-12-01zj_compare.md). 0: off (the protocol before)."""
    if ms <= 0:
        return
    if "ab" not in _PREHEAT:
        g = torch.Generator(device="cuda").manual_seed(1)
        _PREHEAT["ab"] = [torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(2)]
    a, b = _PREHEAT["ab"]
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    torch.mm(a, b)
    e.record()
    torch.cuda.synchronize()
    for _ in range(max(1, int(ms / max(s.elapsed_time(e), 1e-3)))):
        torch.mm(a, b)


def median_ms(calls, warmup_ms, rep_ms, preheat_ms=0.0):
    """Median time of one call in ms: events around each call, rotating through `calls`; preheat first."""
    preheat(preheat_ms)
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for i in range(3):
        calls[i % len(calls)]()
    e.record()
    torch.cuda.synchronize()
    est = max(s.elapsed_time(e) / 3, 1e-3)
    for i in range(max(1, int(warmup_ms / est))):
        calls[i % len(calls)]()
    n = min(max(int(rep_ms / est), 10), 1000)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    for i, (s, e) in enumerate(events):
        s.record()
        calls[i % len(calls)]()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events)


def peak_bytes(call):
    """Device bytes allocated during call() beyond what was allocated before it."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = call()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return peak


def input_sets(p, dtype, l2_bytes, max_sets=8):
    """Random normal q, k, v (and d_o) sets; several when one set fits in L2."""
    b, sq, sk, h, d = p["B"], p["Sq"], p["Sk"], p["H"], p["D"]
    one = (2 * b * sq * h * d + 2 * b * sk * h * d) * torch.finfo(dtype).bits // 8
    n = 1 if one > l2_bytes else min(max_sets, math.ceil(2 * l2_bytes / one) + 1)
    sets = []
    for _ in range(n):
        q = torch.randn(b, sq, h, d, device="cuda", dtype=dtype)
        k = torch.randn(b, sk, h, d, device="cuda", dtype=dtype)
        v = torch.randn(b, sk, h, d, device="cuda", dtype=dtype)
        sets.append((q, k, v, torch.randn_like(q)))
    return sets


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


def measure(impl, p, direction, sets, ref, args):
    """One row: time, TFLOP/s (GB/s for decode), peak memory and max|diff| from REFERENCE."""
    fn = make_fn(impl, p)
    row = dict(p, impl=impl, dir=direction)
    if impl == "torch-math" and max(p["Sq"], p["Sk"]) > args.math_max_s:
        row["error"] = f"skipped: S > --math-max-s {args.math_max_s} (O(S²) memory and time)"
        return row
    try:
        if impl.startswith("af-"):  # which compiled variant this backend runs, and why
            q, k, v, _ = sets[0]
            backend, variant = af_variant(impl, p)
            if variant:
                row["variant"], row["reason"] = variant, "named by the impl"
            else:
                _, row["variant"], row["reason"] = attnforge.select(
                    q, k, v, causal=p["causal"], backend=backend, return_weights=p["grid"] == "weights",
                    backward=direction == "bwd")
        if direction == "fwd":
            with torch.no_grad():
                calls = [lambda q=q, k=k, v=v: fn(q, k, v) for q, k, v, _ in sets]
                o = calls[0]()
                o = o[0] if isinstance(o, tuple) else o  # (o, weights) on the weights grid
                row["max_diff"] = max_diff(o, ref["o"]) if ref else None
                del o
                row["peak_bytes"] = peak_bytes(calls[0])
                row["ms"] = median_ms(calls, args.warmup_ms, args.rep_ms, args.preheat_ms)
        else:
            graphs = []
            for q, k, v, d_o in sets:
                qg, kg, vg = (t.detach().requires_grad_(True) for t in (q, k, v))
                graphs.append((fn(qg, kg, vg), (qg, kg, vg), d_o))
            calls = [lambda g=g: torch.autograd.grad(g[0], g[1], g[2], retain_graph=True) for g in graphs]
            grads = calls[0]()
            row["max_diff"] = max(max_diff(a, b) for a, b in zip(grads, ref["grads"])) if ref else None
            del grads
            row["peak_bytes"] = peak_bytes(calls[0])
            row["ms"] = median_ms(calls, args.warmup_ms, args.rep_ms, args.preheat_ms)
            del graphs, calls
        row["time"] = time.time()  # when it was timed: to match gpu-check.sh's clocks.csv
        row["tflops"] = flops(p, direction == "bwd") / (row["ms"] * 1e-3) * 1e-12
        if p["grid"] == "decode":
            kv = 2 * p["B"] * p["Sk"] * p["H"] * p["D"] * 2  # K + V bytes (bf16)
            row["gbps"] = kv / (row["ms"] * 1e-3) * 1e-9
    except Exception as e:  # noqa: BLE001 — an unbuilt backend, OOM, unsupported shape: recorded
        msg = str(e).strip().splitlines()
        row["error"] = f"{type(e).__name__}: {msg[0] if msg else ''}"[:300]
        if isinstance(e, torch.OutOfMemoryError):
            torch.cuda.empty_cache()
    return row


def reference(p, direction, sets):
    q, k, v, d_o = sets[0]
    fn = make_fn(REFERENCE, dict(p, grid="train"))  # O only, also for the weights grid
    try:
        if direction == "fwd":
            with torch.no_grad():
                return {"o": fn(q, k, v)}
        qg, kg, vg = (t.detach().requires_grad_(True) for t in (q, k, v))
        return {"grads": torch.autograd.grad(fn(qg, kg, vg), (qg, kg, vg), d_o)}
    except Exception as e:  # noqa: BLE001 — said once per problem: its rows then carry no max|diff|
        print(f"compare_torch: no reference ({REFERENCE}) for {p}: {type(e).__name__}: {e}", flush=True)
        return None


# ---- reporting --------------------------------------------------------------------------------

def fmt(x, digits=1):
    return "—" if x is None else f"{x:.{digits}f}"


def markdown(result):
    rows, impls = result["rows"], result["impls"]
    out = [f"# attnforge vs PyTorch SDPA — {result['device']}, {result['date']}"
           + (f" (GPU {result['uuid']})" if result.get("uuid") else ""),
           "",
           f"torch {result['torch']}, cuDNN {result['cudnn']}, attnforge {result['attnforge']} "
           f"(commit {result['commit']}); bf16; median of CUDA-event times; "
           + (f"a {result['timer']['preheat_ms']:g} ms GEMM before each warm-up; "
              if result.get("timer", {}).get("preheat_ms") else "")
           + "TFLOP/s = 4·B·H·Sq·Sk·D/t (half for causal), bwd ×2.5; decode: GB/s over K+V bytes.",
           ""]
    af = [i for i in impls if i.startswith("af-")]
    th = [i for i in impls if i.startswith("torch-") and i != "torch-math"]
    keys = []
    for r in rows:
        k = (r["grid"], r["dir"], r["D"], r["Sq"], r["Sk"], r["B"], r["H"], r["causal"])
        if k not in keys:
            keys.append(k)
    by = {(r["grid"], r["dir"], r["D"], r["Sq"], r["Sk"], r["B"], r["H"], r["causal"], r["impl"]): r for r in rows}
    for grid in dict.fromkeys(k[0] for k in keys):
        for direction in ("fwd", "bwd"):
            ks = [k for k in keys if k[0] == grid and k[1] == direction]
            if not ks:
                continue
            unit = "GB/s" if grid == "decode" else "TFLOP/s"
            out += [f"## {grid}, {direction} ({unit}; ratio = best attnforge / best PyTorch non-math)", ""]
            head = ["D", "Sq", "Sk", "B", "H", "causal"] + [i.replace("torch-", "") for i in impls] + \
                   ["best af / best torch", "fused / unfused" if grid == "weights" else "unfused / math"]
            out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for k in ks:
                vals = {}
                for i in impls:
                    r = by.get(k + (i,))
                    vals[i] = None if r is None or "ms" not in r else (r.get("gbps") if grid == "decode" else r["tflops"])
                best_af = max((vals[i] for i in af if vals.get(i)), default=None)
                best_th = max((vals[i] for i in th if vals.get(i)), default=None)
                ratio = f"{best_af / best_th:.2f}×" if best_af and best_th else "—"
                num, den = ("af-fused", "af-unfused") if grid == "weights" else ("af-unfused", "torch-math")
                um = f"{vals[num] / vals[den]:.2f}×" if vals.get(num) and vals.get(den) else "—"
                out.append("| " + " | ".join([str(k[2]), str(k[3]), str(k[4]), str(k[5]), str(k[6]),
                                              "yes" if k[7] else "no"] +
                                             [fmt(vals[i]) for i in impls] + [ratio, um]) + " |")
            out += ["", f"Peak device memory of the call ({grid}, {direction}; MiB beyond the inputs):", ""]
            head = ["D", "Sq", "Sk", "causal"] + [i.replace("torch-", "") for i in impls]
            out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for k in ks:
                cells = []
                for i in impls:
                    r = by.get(k + (i,))
                    cells.append("—" if r is None or "peak_bytes" not in r else f"{r['peak_bytes'] / 2**20:.0f}")
                out.append("| " + " | ".join([str(k[2]), str(k[3]), str(k[4]), "yes" if k[7] else "no"] + cells) + " |")
            out.append("")
    errors = [r for r in rows if r.get("error")]
    if errors:
        out += ["## Not measured", ""]
        groups = {}  # same backend and message up to its numbers and mask/direction words: one line
        for r in errors:
            shape = re.sub(r"\d+|\b(fwd|bwd|none|causal)\b", "#", r["error"])
            groups.setdefault((r["impl"], shape), []).append(r)
        for (impl, _), rs in groups.items():
            out.append(f"- {impl} ({len(rs)}×, e.g. {rs[0]['dir']} S={rs[0]['Sq']}x{rs[0]['Sk']}): {rs[0]['error']}")
        out.append("")
    diffs = [r for r in rows if r.get("max_diff") is not None and r["impl"].startswith("af-")]
    if diffs:
        worst = max(diffs, key=lambda r: r["max_diff"])
        out.append(f"Largest max|diff| of an attnforge output from {REFERENCE}: {worst['max_diff']:.3g} "
                   f"({worst['impl']}, {worst['grid']} {worst['dir']} D={worst['D']} S={worst['Sq']}).")
    return "\n".join(out) + "\n"


def git_commit():
    if os.environ.get("ATTNFORGE_COMMIT"):
        return os.environ["ATTNFORGE_COMMIT"]
    try:
        # "-dirty" when the tree differs from HEAD (a device copy may carry older git metadata)
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="D=128, S in {1024, 4096}, causal and not, "
                    "fwd+bwd, plus decode Sk=8192 (one to two minutes)")
    ap.add_argument("--grid", default="train,decode", help="comma list of train, memory, decode, classic, weights")
    ap.add_argument("--head-dims", default="64,128")
    ap.add_argument("--seqlens", default="512,1024,2048,4096,8192,16384")
    ap.add_argument("--memory-seqlens", default="512,1024,2048,4096,8192,16384,65536",
                    help="S of the fixed-batch memory grid (B = 1, H = 16, D = 128); 65536 for issue 3's 4k/16k/64k")
    ap.add_argument("--weights-seqlens", default="256,512,1024",
                    help="S of the weights grid (training shapes, forward with the attention weights returned)")
    ap.add_argument("--dirs", default="fwd,bwd")
    ap.add_argument("--impls", default=",".join(ALL_IMPLS))
    ap.add_argument("--math-max-s", type=int, default=4096, help="skip torch-math above this S")
    ap.add_argument("--warmup-ms", type=float, default=400,
                    help="warm-up per row before timing (the SM clock settles under the power cap)")
    ap.add_argument("--rep-ms", type=float, default=100)
    ap.add_argument("--preheat-ms", type=float, default=0,
                    help="a fixed GEMM load before each implementation's warm-up, so all start equally hot "
                         "(0: off, the protocol of the README's table)")
    ap.add_argument("--out", default="bench/results", help="directory for compare.json / compare.md")
    args = ap.parse_args(argv)

    if not torch.cuda.is_available():
        print("compare_torch: no CUDA device; nothing to compare.")
        return 0
    attnforge.variants()  # fail early, with the search path, if the library is missing
    dirs = args.dirs.split(",")
    impls = args.impls.split(",")
    problems = []
    if args.quick:
        problems = training_grid([128], [1024, 4096], [False, True]) + decode_grid([8192])
    else:
        grids = args.grid.split(",")
        if "train" in grids:
            problems += training_grid([int(d) for d in args.head_dims.split(",")],
                                      [int(s) for s in args.seqlens.split(",")], [False, True])
        if "memory" in grids:
            problems += memory_grid([int(s) for s in args.memory_seqlens.split(",")])
        if "decode" in grids:
            problems += decode_grid([1024, 8192, 32768])
        if "classic" in grids:
            problems += classic_grid()
        if "weights" in grids:
            problems += weights_grid([int(d) for d in args.head_dims.split(",")],
                                     [int(s) for s in args.weights_seqlens.split(",")], [False, True])

    props = torch.cuda.get_device_properties(0)
    l2 = getattr(props, "L2_cache_size", 50 * 2**20)
    result = dict(device=torch.cuda.get_device_name(0), uuid=str(getattr(props, "uuid", "")),
                  date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  torch=torch.__version__,
                  cudnn=str(torch.backends.cudnn.version()), attnforge=attnforge.version(),
                  library=attnforge.library_path(), commit=git_commit(), impls=impls, rows=[],
                  timer=dict(warmup_ms=args.warmup_ms, rep_ms=args.rep_ms, preheat_ms=args.preheat_ms,
                             stat="median"))
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    for p in problems:
        torch.manual_seed(0)
        sets = input_sets(p, torch.bfloat16, l2)
        for direction in dirs:
            if p["grid"] in ("decode", "weights") and direction == "bwd":
                continue  # decode is inference; the weights are a forward output
            ref = reference(p, direction, sets)
            for impl in impls:
                if (impl == "torch-eager") != (p["grid"] == "weights") and impl.startswith("torch-"):
                    continue  # torch-eager is the weights grid's PyTorch side, SDPA the others'
                row = measure(impl, p, direction, sets, ref, args)
                result["rows"].append(row)
                what = (f"{row['tflops']:7.1f} TFLOP/s {row['ms']:8.3f} ms" if "ms" in row
                        else row.get("error", ""))
                print(f"[{time.time() - t0:6.1f}s] {p['grid']:7s} {direction} D={p['D']:<3d} "
                      f"Sq={p['Sq']:<5d} Sk={p['Sk']:<5d} causal={int(p['causal'])} {impl:16s} {what}",
                      flush=True)
            del ref
        del sets
        torch.cuda.empty_cache()
        md = write(result, args.out)  # after every problem: a run cut short keeps what it measured
    print()
    print(md)
    return 0


def write(result, out_dir):
    with open(os.path.join(out_dir, "compare.json"), "w") as f:
        json.dump(result, f, indent=1)
    md = markdown(result)
    with open(os.path.join(out_dir, "compare.md"), "w") as f:
        f.write(md)
    return md


if __name__ == "__main__":
    sys.exit(main())
