# Device run: why the flash backward is slower through the binding than in the dev driver (D 128,
# S 16384: 482–492 against 512 TFLOP/s). Times attnforge's backward on real inputs (O and LSE from the
# forward) and on the dev driver's synthetic ones (random O, LSE = 6), and cuDNN's, each for ~SECS s,
# while nvidia-smi samples the SM clock, power and clock-event reasons every 50 ms.
#   ATTNFORGE_LIBRARY=build/libattnforge.so PYTHONPATH=python python3 scripts/dev/bwd_power.py OUTDIR
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import attnforge
from attnforge.functional import _Call, _desc, _fill, _run
from power_log import SmiLog, timed

SECS = float(os.environ.get("SECS", "3"))


def af_backward(q, k, v, o, lse, d_o, causal):
    """The library's backward on given O and LSE (the path autograd takes, without the graph)."""
    call = _Call("causal" if causal else "none", (), 0.0, "flash", None, False, False, None)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    a = _fill(call, q, k, v, o, lse, None, None, None)
    a.d_o, a.dq, a.dk, a.dv = _desc(d_o), _desc(dq), _desc(dk), _desc(dv)
    _run("attnforge_backward", a, 1, q.device)
    return dq, dk, dv


def main(out):
    smi = SmiLog(f"{out}/smi.csv")
    B, S, H, D = 1, 16384, 16, 128
    torch.manual_seed(0)
    q, k, v, d_o = (torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    rows = []
    for causal in (False, True):
        flops = 2.5 * 4 * B * H * S * S * D * (0.5 if causal else 1.0)
        o, lse = attnforge.attention(q, k, v, causal=causal, backend="flash", return_lse=True)
        o_syn = torch.randn_like(o)
        lse_syn = torch.full_like(lse, 6.0)
        qg, kg, vg = (t.detach().requires_grad_(True) for t in (q, k, v))
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            ot = F.scaled_dot_product_attention(qg.transpose(1, 2), kg.transpose(1, 2), vg.transpose(1, 2),
                                                is_causal=causal)
        cases = [
            ("af real", lambda: af_backward(q, k, v, o, lse, d_o, causal)),
            ("af synthetic", lambda: af_backward(q, k, v, o_syn, lse_syn, d_o, causal)),
            ("cudnn", lambda: torch.autograd.grad(ot, (qg, kg, vg), d_o.transpose(1, 2), retain_graph=True)),
            ("af real again", lambda: af_backward(q, k, v, o, lse, d_o, causal)),
        ]
        for name, fn in cases:
            time.sleep(1.0)  # idle gap between phases, so each starts from the same temperature
            ms, t0, t1 = timed(fn, SECS)
            rows.append((causal, name, ms, flops / (ms * 1e-3) / 1e12, t0, t1))
            print(f"causal={int(causal)} {name:14s} {ms:8.3f} ms {rows[-1][3]:7.1f} TFLOP/s", flush=True)
        del ot, qg, kg, vg
    smi.stop()
    # Per phase: SM clock min / median, power mean / max, the clock-event reasons seen.
    for causal, name, ms, tf, t0, t1 in rows:
        w = smi.window(t0, t1)
        if w is None:
            print(f"causal={int(causal)} {name:14s} no samples")
            continue
        med, lo, pw, pmax, reasons, n = w
        print(f"causal={int(causal)} {name:14s} {tf:7.1f} TFLOP/s  clock min {lo:.0f} median "
              f"{med:.0f} MHz  power mean {pw:.0f} max {pmax:.0f} W  n={n} reasons {reasons}")


if __name__ == "__main__":
    main(sys.argv[1])
