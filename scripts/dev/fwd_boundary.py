"""Dev: the warp-specialized forward's row-block boundary, from a trace array (flash_fwd_dev.py trace with
OUT set saves trace_<variant>_S<S>.npy: (CTA, role, block, event) clock64 values, events as listed in
runtime/kernels/flash/fwd_trace.cuh). For every CTA and block b with a successor, times are taken relative
to consumer warpgroup 0's "last P·V issued" (event 10) of block b; the medians over all such boundaries
give one timeline of both consumer warpgroups and the producer around a boundary, in cycles.
  python3 scripts/dev/fwd_boundary.py trace_bf16_hd128_none_m128n128w12s2_sm90a_S2048.npy [--consumers 2]"""
import statistics
import sys

import numpy as np

CONSUMER = {0: "block start", 1: "Q landed", 11: "K_0 landed", 2: "S_0 turn", 3: "S_0 landed", 4: "P_0 ready",
            12: "1st steady turn", 14: "last steady turn", 13: "last P·V turn", 10: "last P·V issued",
            5: "last P·V done", 8: "O finalized", 9: "O staged", 6: "O stored"}
PRODUCER = {0: "block start", 3: "K_0 stage free", 1: "Q slot free", 2: "Q issued"}


def main(path, consumers):
    g = np.load(path)  # (CTA, role, block, event)
    rows = {}  # (who, block offset, event) -> [relative cycles]
    steady = []
    for c in range(g.shape[0]):
        for b in range(g.shape[2] - 1):
            ref = g[c, 1, b, 10]
            if ref == 0 or g[c, 1, b + 1, 10] == 0:
                continue
            for r in range(1, 1 + consumers):
                for off in (0, 1):
                    for e in CONSUMER:
                        v = g[c, r, b + off, e]
                        if v:
                            rows.setdefault((f"wg{r - 1}", off, e), []).append(int(v - ref))
                n = g[c, r, b, 7] - (g[c, r, b - 1, 7] if b else 0)  # key tiles of block b
                if n > 3 and g[c, r, b, 12] and g[c, r, b, 14]:
                    steady.append((g[c, r, b, 14] - g[c, r, b, 12]) / (n - 2))
            for e in PRODUCER:
                v = g[c, 0, b + 1, e]
                if v:
                    rows.setdefault(("producer", 1, e), []).append(int(v - ref))
    order = sorted(rows, key=lambda k: statistics.median(rows[k]))
    print(f"{path}: median cycles relative to warpgroup 0's last P·V issue of block b ({len(rows.get(('wg0', 0, 10), []))} boundaries)")
    for k in order:
        who, off, e = k
        name = (PRODUCER if who == "producer" else CONSUMER)[e]
        v = rows[k]
        print(f"  {statistics.median(v):8.0f}  (p10 {np.percentile(v, 10):8.0f}, p90 {np.percentile(v, 90):8.0f})  "
              f"{who:8s} block {'b' if off == 0 else 'b+1'}: {name}")
    if steady:
        print(f"  steady turn period (per warpgroup, between its 1st and last steady turns): {statistics.median(steady):.0f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(args[args.index("--consumers") + 1]) if "--consumers" in args else 2
    for p in [a for a in args if a.endswith(".npy")]:
        main(p, n)
