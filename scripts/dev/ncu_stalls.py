#!/usr/bin/env python3
"""Summarize `ncu --page source --csv --print-source sass` exports (gzipped): per stall reason, its share of
all warp-stall samples and the instructions that collect most of it. Usage: ncu_stalls.py FILE.csv.gz ..."""
import csv, gzip, os, sys
TOP = os.environ.get("TOP", "6")  # stall reasons shown, largest first
for fn in sys.argv[1:]:
    rows = list(csv.reader(gzip.open(fn, 'rt')))
    hdr = rows[1]; data = rows[2:]
    ix = {h:i for i,h in enumerate(hdr)}
    tot = sum(int(r[ix["Warp Stall Sampling (All Samples)"]] or 0) for r in data)
    print("==", fn, "total samples", tot, "instructions", len(data))
    cols = sorted((h for h in hdr if h.startswith("stall_") and "Not Issued" not in h), key=lambda c: -sum(int(r[ix[c]] or 0) for r in data))
    for c in cols[:int(TOP)]:
        if c not in ix: continue
        s = sum(int(r[ix[c]] or 0) for r in data)
        print(f"  {c}: {s} ({100*s/tot:.1f}%)")
        top = sorted(data, key=lambda r: -int(r[ix[c]] or 0))[:8]
        for r in top:
            print(f"     {int(r[ix[c]]):7d}  {r[ix['Address']][-5:]}  {r[ix['Source']].strip()[:90]}  exec={r[ix['Instructions Executed']]}")
