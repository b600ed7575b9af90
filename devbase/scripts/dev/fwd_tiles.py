# Dev: the library's forward tiles side by side with PyTorch's cuDNN backend, timed by compare_torch's own
# timer (400 ms warm-up, median of per-call events), in alternating rounds so drift falls on every tile:
# the evidence behind a row of runtime/src/select.cpp. bf16, B·S = 16384, H·D = 2048.
#   ATTNFORGE_LIBRARY=... PYTHONPATH=python python3 scripts/dev/fwd_tiles.py --dim 64 --seqs 1024,2048 \
#       --causal 1 --tiles m128n128w4s2,m128n128w12s2_sm90a [--rounds 2]
import argparse
import statistics
import sys
from pathlib import Path

import torch

import attnforge

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import compare_torch as ct  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--seqs", default="2048")
    ap.add_argument("--causal", default="0,1")
    ap.add_argument("--tiles", required=True, help="comma list of tile suffixes of flash_fwd_bf16_hd<D>_<mask>_")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--warmup-ms", type=float, default=400)
    a = ap.parse_args()
    d = a.dim
    for s in map(int, a.seqs.split(",")):
        for causal in (c == "1" for c in a.causal.split(",")):
            p = ct.training_grid([d], [s], [causal])[0]
            q, k, v = (torch.randn(p["B"], s, p["H"], d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            impls = {"torch-cudnn": ct.make_fn("torch-cudnn", p)}
            for t in a.tiles.split(","):
                name = f"flash_fwd_bf16_hd{d}_{'causal' if causal else 'none'}_{t}"
                impls[t] = lambda q, k, v, name=name: attnforge.attention(q, k, v, causal=causal, variant=name)
            ms, failed = {n: [] for n in impls}, set()
            with torch.no_grad():
                for _ in range(a.rounds):
                    for n, fn in impls.items():
                        if n in failed:
                            continue
                        try:
                            ms[n].append(ct.median_ms([lambda fn=fn: fn(q, k, v)], a.warmup_ms, 25))
                        except RuntimeError as e:  # a tile this build lacks
                            print(f"  {n} not run: {str(e)[:100]}")
                            failed.add(n)
            ref = statistics.median(ms["torch-cudnn"])
            print(f"== D {d} S {s} causal={int(causal)}")
            for n, xs in ms.items():
                if not xs:
                    continue
                tf = [ct.flops(p, False) / (x * 1e-3) * 1e-12 for x in xs]
                print(f"  {n:24s} " + " ".join(f"{x:6.1f}" for x in tf) + f"  TFLOP/s   {ref / statistics.median(xs):5.3f}x cuDNN",
                      flush=True)


if __name__ == "__main__":
    main()
