# Device run: per-kernel GPU time of one attention call, attnforge (flash) against PyTorch's cuDNN
# backend, from torch.profiler: where the gap of a row is (main kernel, or the passes around it: the
# backward's D pass, dQ zeroing and conversion). bf16, B·S = 16384, H·D = 2048, like the compare grid.
#   ATTNFORGE_LIBRARY=build/libattnforge.so PYTHONPATH=python python3 scripts/dev/kernel_breakdown.py \
#       [--dims 64,128] [--seqs 2048,16384] [--dirs fwd,bwd] [--iters 5] [--causal 0,1]
#       [--fwd-tiles m128n128w12s2_sm90a,m128n128w4s2]   (forward rows: each named tile, "af.<tile>";
#       a tile the build or the head dim lacks is reported and skipped) [--timeline] [--window 256,0]
# --window LEFT,RIGHT: attnforge with that sliding window (-1 = unbounded; causal rows take right = 0),
# cuDNN skipped (PyTorch's SDPA has no window); TFLOP/s then count every score, masked or not.
# --timeline: also each kernel's start / end in the last profiled call, µs from its first kernel's start
# (overlapping launches show as a start before the previous kernel's end), and the span per call.
# --plain: no profiler, one call per implementation (for ncu: scripts/dev/ncu_vs_cudnn.sh).
import argparse
import collections

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

import attnforge


def call(impl, q, k, v, d_o, causal, direction, window=(-1, -1)):
    """One call's closure: forward, or backward through autograd on a graph built once. impl "af.<tile>"
    asks for that forward tile by variant name."""
    if impl.startswith("af"):
        variant = None
        if "." in impl:
            variant = f"flash_fwd_bf16_hd{q.shape[-1]}_{'causal' if causal else 'none'}_{impl.split('.', 1)[1]}"
        f = lambda q, k, v: attnforge.attention(q, k, v, causal=causal, window=window, backend="flash",  # noqa: E731
                                                  variant=variant)
    else:
        def f(q, k, v):
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                      is_causal=causal).transpose(1, 2)
    if direction == "fwd":
        return lambda: f(q, k, v)
    qg, kg, vg = (t.detach().requires_grad_(True) for t in (q, k, v))
    o = f(qg, kg, vg)
    return lambda: torch.autograd.grad(o, (qg, kg, vg), d_o, retain_graph=True)


def breakdown(fn, iters, timeline=False):
    """{kernel name: mean µs per call} over iters calls (after two warm-up calls)."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    per = collections.defaultdict(float)
    cuda = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    for e in cuda:
        per[e.name] += e.device_time / iters
    if timeline and cuda:
        cuda.sort(key=lambda e: e.time_range.start)
        k = len(cuda) // iters  # kernels per call
        t0 = cuda[0].time_range.start
        span = (max(e.time_range.end for e in cuda) - t0) / iters
        print(f"      span {span:9.1f} µs per call; last call's kernels (start, end; µs from its first):")
        first = cuda[-k].time_range.start
        for e in cuda[-k:]:
            print(f"      {e.time_range.start - first:9.1f} {e.time_range.end - first:9.1f}  {e.name[:90]}")
    return per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", default="64,128")
    ap.add_argument("--seqs", default="2048,16384")
    ap.add_argument("--dirs", default="fwd,bwd")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--causal", default="0,1")
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--fwd-tiles", default="")
    ap.add_argument("--timeline", action="store_true")
    ap.add_argument("--window", default="")
    a = ap.parse_args()
    window = tuple(map(int, a.window.split(","))) if a.window else (-1, -1)
    for d in map(int, a.dims.split(",")):
        for s in map(int, a.seqs.split(",")):
            b, h = 16384 // s, 2048 // d
            q, k, v, d_o = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
            for direction in a.dirs.split(","):
                for causal in (c == "1" for c in a.causal.split(",")):
                    flops = 4 * b * h * s * s * d * (0.5 if causal else 1.0) * (2.5 if direction == "bwd" else 1.0)
                    print(f"== D {d} S {s} B {b} H {h} {direction} causal={int(causal)}")
                    tiles = [t for t in a.fwd_tiles.split(",") if t] if direction == "fwd" else []
                    for impl in ([f"af.{t}" for t in tiles] or ["af"]) + ([] if a.window else ["cudnn"]):
                        if a.plain:
                            call(impl, q, k, v, d_o, causal, direction, window)()
                            torch.cuda.synchronize()
                            continue
                        try:
                            per = breakdown(call(impl, q, k, v, d_o, causal, direction, window), a.iters, a.timeline)
                        except RuntimeError as e:  # a --fwd-tiles tile this build or head dim lacks
                            print(f"  {impl:6s} not run: {str(e)[:100]}")
                            continue
                        total = sum(per.values())
                        print(f"  {impl:6s} total {total:9.1f} µs  {flops / (total * 1e-6) / 1e12:6.1f} TFLOP/s")
                        for name, us in sorted(per.items(), key=lambda x: -x[1]):
                            print(f"      {us:9.1f} µs  {name[:110]}")


if __name__ == "__main__":
    main()
