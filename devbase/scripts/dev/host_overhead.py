# Dev: is a short row of compare_torch.py timing the kernel or the host? For each shape and impl it
# prints three figures, µs per call:
#   events  compare_torch's figure: median of CUDA events around each call (includes host gaps when the
#           host enqueues slower than the GPU runs, since the start event fires on an idle stream)
#   gpu     the GPU alone: torch.cuda._sleep fills the stream first, then N calls are enqueued behind it,
#           so they run back to back whatever the host costs; one event pair around the N
#   host    Python wall time per call while enqueuing those N (the binding's host path)
#   ATTNFORGE_LIBRARY=... PYTHONPATH=python python3 scripts/dev/host_overhead.py [--seqs 512,1024]
# --profile N: instead, cProfile of N attnforge calls on a small shape (where the binding's time goes).
import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import compare_torch as ct  # noqa: E402  (make_fn, median_ms: the compare's own callables and timer)


def gpu_and_host_us(call, n):
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(int(2e9))  # ~1 s at 1.9 GHz: the N enqueues below finish before it does
    s.record()
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    host = (time.perf_counter() - t0) / n * 1e6
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e) / n * 1e3, host


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqs", default="512,1024,2048")
    ap.add_argument("--impls", default="af-flash,torch-cudnn,torch-flash")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--profile", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.profile:
        p = dict(B=1, Sq=128, Sk=128, H=8, D=64, causal=True)
        q, k, v = (torch.randn(1, 128, 8, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        for impl in ("af-flash", "torch-cudnn"):
            fn = ct.make_fn(impl, p)
            with torch.no_grad():
                fn(q, k, v)
                _, host = gpu_and_host_us(lambda: fn(q, k, v), args.profile)
                print(f"{impl}: {host:.1f} µs of host time per call")
                if impl.startswith("af"):
                    prof = cProfile.Profile()
                    prof.enable()
                    for _ in range(args.profile):
                        fn(q, k, v)
                    prof.disable()
                    torch.cuda.synchronize()
                    pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    print(f"{'D':>3} {'S':>6} {'causal':>6} {'impl':>9} {'events':>8} {'gpu':>8} {'host':>8}")
    for d in (64, 128):
        for s in map(int, args.seqs.split(",")):
            for causal in (False, True):
                p = ct.training_grid([d], [s], [causal])[0]
                q, k, v = (torch.randn(p["B"], s, p["H"], d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
                for impl in args.impls.split(","):
                    fn = ct.make_fn(impl, p)
                    with torch.no_grad():
                        call = lambda: fn(q, k, v)  # noqa: E731
                        call()
                        ev = ct.median_ms([call], 400, 25) * 1e3
                        gpu, host = gpu_and_host_us(call, args.n)
                    print(f"{d:>3} {s:>6} {int(causal):>6} {impl:>9} {ev:8.1f} {gpu:8.1f} {host:8.1f}", flush=True)


if __name__ == "__main__":
    main()
