# Device run: forward tiles and PyTorch's cuDNN / flash backends timed sustained, each for ~SECS s of
# back-to-back calls after an idle second, with the SM clock and board power of its window past the
# first second (nvidia-smi's power.draw lags by about that much: a 2 s window's mean mixed in the idle
# ramp, h200_2026-11-30r_fwd_sustained.md): at the H200's 700 W cap the tile that wins a short burst
# need not win sustained.
#   ATTNFORGE_LIBRARY=build/libattnforge.so PYTHONPATH=python python3 scripts/dev/sustained.py OUTDIR \
#       "64:2048:1:flash_fwd_bf16_hd64_causal_m128n128w12s2_sm90a,flash_fwd_bf16_hd64_causal_m192n128w16s2_sm90a" ...
# Each argument after OUTDIR is D:S:causal:variants (comma list; "auto" = the library's own choice),
# timed with cudnn and flash, bf16, B·S = 16384, H·D = 2048.
import os
import sys
import time

import torch

import attnforge
from power_log import SmiLog, timed

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from compare_torch import flops, make_fn, training_grid  # noqa: E402  (the compare's grid, FLOP count, SDPA callables)

SECS = float(os.environ.get("SECS", "4"))


def main(out, specs):
    smi = SmiLog(f"{out}/smi.csv")
    rows = []
    for spec in specs:
        d, s, c, names = spec.split(":")
        D, S, causal = int(d), int(s), c == "1"
        shape = training_grid([D], [S], [causal])[0]
        B, H = shape["B"], shape["H"]
        torch.manual_seed(0)
        q, k, v = (torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        cases = [(n, lambda n=n: attnforge.attention(q, k, v, causal=causal, variant=None if n == "auto" else n))
                 for n in names.split(",")]
        for name in ("torch-cudnn", "torch-flash"):
            fn = make_fn(name, shape)
            cases.append((name, lambda fn=fn: fn(q, k, v)))
        for name, fn in cases:
            time.sleep(1.0)  # idle between phases, so each starts from a similar state
            ms, t0, t1 = timed(fn, SECS)
            rows.append((D, S, causal, name, ms, flops(shape, False) / (ms * 1e-3) / 1e12, t0, t1))
            print(f"D={D} S={S} causal={int(causal)} {name:48s} {rows[-1][5]:7.1f} TFLOP/s", flush=True)
        del q, k, v
    smi.stop()
    print("\n| D | S | causal | implementation | TFLOP/s | SM MHz (median) | W (mean) | pJ / FLOP |")
    print("|---|---|---|---|---|---|---|---|")
    for D, S, causal, name, ms, tf, t0, t1 in rows:
        w = smi.window(t0 + 1.0, t1)  # past the power reading's lag
        med, _, pw, _, _, _ = w if w else (float("nan"),) * 6
        print(f"| {D} | {S} | {'yes' if causal else 'no'} | {name} | {tf:.1f} | {med:.0f} | {pw:.0f} | {pw / tf:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
