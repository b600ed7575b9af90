#!/usr/bin/env python3
"""Summarize `ncu --page source --csv --print-source sass` exports (gzipped).

Default: per stall reason (largest first, $TOP of them), its share of all warp-stall samples and the
instructions that collect most of it. --by-exec: the samples grouped by how often each instruction ran
(in a persistent kernel the per-key-tile loop, the per-row-block code and the producer separate by their
execution counts), with each group's five largest stall reasons.
Usage: ncu_stalls.py [--by-exec] FILE.csv.gz ..."""
import collections
import csv
import gzip
import os
import sys

ALL = "Warp Stall Sampling (All Samples)"


def load(fn):
    """(header index, rows, total samples, stall-reason columns) of one export."""
    rows = list(csv.reader(gzip.open(fn, "rt")))
    hdr, data = rows[1], rows[2:]
    ix = {h: i for i, h in enumerate(hdr)}
    tot = sum(int(r[ix[ALL]] or 0) for r in data)
    reasons = [h for h in hdr if h.startswith("stall_") and "Not Issued" not in h]
    return ix, data, tot, reasons


def by_reason(fn, top):
    ix, data, tot, reasons = load(fn)
    print("==", fn, "total samples", tot, "instructions", len(data))
    share = {c: sum(int(r[ix[c]] or 0) for r in data) for c in reasons}
    for c in sorted(reasons, key=lambda c: -share[c])[:top]:
        print(f"  {c}: {share[c]} ({100 * share[c] / tot:.1f}%)")
        for r in sorted(data, key=lambda r: -int(r[ix[c]] or 0))[:8]:
            print(f"     {int(r[ix[c]]):7d}  {r[ix['Address']][-5:]}  {r[ix['Source']].strip()[:90]}  "
                  f"exec={r[ix['Instructions Executed']]}")


def by_exec(fn):
    ix, data, tot, reasons = load(fn)
    groups = collections.defaultdict(collections.Counter)  # execution count → samples per reason
    n = collections.Counter()
    for r in data:
        k = str(int((r[ix["Instructions Executed"]] or "0").replace(",", "")))
        n[k] += 1
        groups[k]["all"] += int(r[ix[ALL]] or 0)
        for c in reasons:
            groups[k][c[6:]] += int(r[ix[c]] or 0)
    for k in sorted(groups, key=lambda k: -groups[k]["all"])[:12]:
        g = groups[k]
        worst = sorted(((x, v) for x, v in g.items() if x != "all"), key=lambda t: -t[1])[:5]
        print(f"exec={k:>8} instrs={n[k]:4d} {100 * g['all'] / tot:5.1f}%  " +
              " ".join(f"{x}:{100 * v / tot:.1f}" for x, v in worst))


if __name__ == "__main__":
    files = [a for a in sys.argv[1:] if a != "--by-exec"]
    for fn in files:
        if "--by-exec" in sys.argv[1:]:
            by_exec(fn)
        else:
            by_reason(fn, int(os.environ.get("TOP", "6")))
