#!/usr/bin/env python3
"""Pictures of the measured comparison (matplotlib): for each (head dim, causal, direction) of the
training grid, the classic four panels — time vs S, peak memory vs S, speedup over the unfused
backend, memory saving over the unfused backend — for attnforge's three backends and PyTorch
SDPA's (also for the fixed-batch "memory" grid, where flash's memory is linear in S and unfused's
quadratic); plus TFLOP/s vs S, one panel per head dim. Device and date in every title; S on a log scale.

Inputs: compare_torch.py's compare.json and/or attnforge-bench's Google Benchmark JSON
(--benchmark_out), any number of each. PNGs go to --out (default bench/results/).

  python3 bench/plot.py build/compare/compare.json --out bench/results
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

STYLE = {  # impl: (colour, line style, marker, label)
    "af-unfused": ("tab:red", "-", "o", "attnforge unfused"),
    "af-fused": ("tab:orange", "-", "s", "attnforge fused"),
    "af-flash": ("tab:blue", "-", "D", "attnforge flash"),
    "torch-math": ("0.45", "--", "x", "PyTorch math"),
    "torch-efficient": ("tab:green", "--", "^", "PyTorch efficient"),
    "torch-flash": ("tab:purple", "--", "v", "PyTorch flash"),
    "torch-cudnn": ("tab:brown", "--", "P", "PyTorch cuDNN"),
}
BENCH_NAME = re.compile(r"^(?P<grid>\w+)/(?P<backend>\w+)/(?P<dir>fwd|bwd)/D(?P<D>\d+)/"
                        r"(?:S(?P<S>\d+)|Sq(?P<Sq>\d+)_Sk(?P<Sk>\d+))/(?P<mask>\w+)/B(?P<B>\d+)_H(?P<H>\d+)")


def load(paths):
    """Rows of {grid, impl, dir, D, Sq, Sk, B, H, causal, ms, tflops, peak_bytes} and (device, date)."""
    rows, device, date = [], None, None
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        if "benchmarks" in data:  # Google Benchmark JSON from attnforge-bench
            ctx = data.get("context", {})
            device = device or ctx.get("device")
            date = date or ctx.get("date", "")[:16]
            for b in data["benchmarks"]:
                m = BENCH_NAME.match(b.get("run_name", b["name"]))
                if not m or b.get("error_occurred") or "median_ms" not in b:
                    continue
                if b.get("aggregate_name") not in (None, "", "median"):
                    continue
                sq = int(m["S"] or m["Sq"])
                sk = int(m["S"] or m["Sk"])
                rows.append(dict(grid=m["grid"], impl="af-" + m["backend"], dir=m["dir"], D=int(m["D"]),
                                 Sq=sq, Sk=sk, B=int(m["B"]), H=int(m["H"]), causal=m["mask"] == "causal",
                                 ms=b["median_ms"], tflops=b.get("TFLOP/s"),
                                 peak_bytes=b.get("mem_MiB", 0) * 2**20, source="attnforge-bench"))
        else:  # compare_torch.py
            device = device or data.get("device")
            date = date or data.get("date")
            rows += [dict(r, source="compare_torch") for r in data["rows"] if "ms" in r]
    latest = {}  # the same measurement in several files: the last file wins
    for r in rows:
        latest[(r["source"], r["grid"], r["impl"], r["dir"], r["D"], r["Sq"], r["Sk"], r["B"], r["H"],
                r["causal"])] = r
    return list(latest.values()), device or "unknown device", date or ""


def series(rows, impl, key):
    pts = sorted((r["Sq"], r[key]) for r in rows if r["impl"] == impl and r.get(key))
    return [p[0] for p in pts], [p[1] for p in pts]


def log2_axis(ax):
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{int(x)}" if x >= 1 else f"{x:g}"))
    ax.grid(True, which="both", alpha=0.3)


def draw(ax, xs, ys, impl):
    colour, ls, marker, label = STYLE.get(impl, ("k", ":", ".", impl))
    ax.plot(xs, ys, ls, color=colour, marker=marker, label=label, markersize=5, linewidth=1.6)


def ratio_series(rows, impl, key, base="af-unfused", invert=True):
    """base/impl (invert) per S where both exist: speedup (time) or saving (memory) over unfused."""
    b = dict(zip(*series(rows, base, key)))
    xs, ys = series(rows, impl, key)
    pts = [(x, (b[x] / y) if invert else (y / b[x])) for x, y in zip(xs, ys) if x in b and y]
    return [p[0] for p in pts], [p[1] for p in pts]


def four_panel(rows, device, date, grid, d, causal, direction, out_dir, source):
    sel = [r for r in rows if r["grid"] == grid and r["D"] == d and r["causal"] == causal
           and r["dir"] == direction and r.get("source") == source]
    if not sel:
        return None
    impls = [i for i in STYLE if any(r["impl"] == i for r in sel)]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    (a_t, a_m), (a_s, a_ms) = axes
    for impl in impls:
        draw(a_t, *series(sel, impl, "ms"), impl)
        xs, ys = series(sel, impl, "peak_bytes")
        draw(a_m, xs, [y / 2**20 for y in ys], impl)
        if impl != "af-unfused":
            draw(a_s, *ratio_series(sel, impl, "ms"), impl)
            draw(a_ms, *ratio_series(sel, impl, "peak_bytes"), impl)
    a_t.set(title="time per call", ylabel="time (ms, log)", yscale="log")
    a_m.set(title="peak device memory of the call (measured)", ylabel="MiB beyond the inputs (log)",
            yscale="log")
    a_s.set(title="speedup over attnforge unfused", ylabel="× faster than unfused (log)", yscale="log")
    a_ms.set(title="memory saving over attnforge unfused", ylabel="× less memory than unfused (log)",
             yscale="log")
    for ax in axes.flat:
        log2_axis(ax)
        ax.set_xlabel("sequence length S (log₂)")
    for ax in (a_s, a_ms):
        ax.axhline(1.0, color="k", linewidth=0.8)
    handles, labels = a_t.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), frameon=False)
    shape = ("B·S = 16384 tokens, H·D = 2048" if grid == "train" else
             f"fixed batch B = {sel[0]['B']}, H = {sel[0]['H']}")
    fig.suptitle(f"attnforge vs PyTorch SDPA — {device}, {date}\n"
                 f"bf16, {shape}, D = {d}, {'causal' if causal else 'no mask'}, "
                 f"{'forward' if direction == 'fwd' else 'backward'}  (source: {source})", fontsize=12)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    name = (f"four_panel{'' if grid == 'train' else '_' + grid}_D{d}_{'causal' if causal else 'nomask'}_"
            f"{direction}{'' if source == 'compare_torch' else '_bench'}.png")
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tflops_panels(rows, device, date, out_dir, source):
    sel = [r for r in rows if r["grid"] == "train" and r.get("tflops") and r.get("source") == source]
    if not sel:
        return None
    dims = sorted({r["D"] for r in sel})
    causals = sorted({r["causal"] for r in sel})
    fig, axes = plt.subplots(len(causals), len(dims), figsize=(6.5 * len(dims), 4.8 * len(causals)),
                             squeeze=False)
    for ri, causal in enumerate(causals):
        for ci, d in enumerate(dims):
            ax = axes[ri][ci]
            for direction, alpha in (("fwd", 1.0), ("bwd", 0.55)):
                part = [r for r in sel if r["D"] == d and r["causal"] == causal and r["dir"] == direction]
                for impl in STYLE:
                    xs, ys = series(part, impl, "tflops")
                    if xs:
                        colour, ls, marker, label = STYLE[impl]
                        ax.plot(xs, ys, ls, color=colour, marker=marker, alpha=alpha, markersize=4,
                                label=f"{label} {direction}")
            log2_axis(ax)
            ax.set(title=f"D = {d}, {'causal' if causal else 'no mask'} (faded = backward)",
                   xlabel="sequence length S (log₂)", ylabel="TFLOP/s")
            ax.set_ylim(bottom=0)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, fontsize=8)
    fig.suptitle(f"TFLOP/s vs S — {device}, {date}  (bf16, B·S = 16384, H·D = 2048; source: {source})")
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    path = os.path.join(out_dir, f"tflops_vs_S{'' if source == 'compare_torch' else '_bench'}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="compare.json and/or attnforge-bench JSON files")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = ap.parse_args(argv)
    rows, device, date = load(args.inputs)
    if not rows:
        print("plot: no measured rows in", ", ".join(args.inputs))
        return 1
    os.makedirs(args.out, exist_ok=True)
    written = []
    for source in ("compare_torch", "attnforge-bench"):
        keys = sorted({(r["grid"], r["D"], r["causal"], r["dir"]) for r in rows
                       if r["grid"] in ("train", "memory") and r.get("source") == source})
        for grid, d, causal, direction in keys:
            written.append(four_panel(rows, device, date, grid, d, causal, direction, args.out, source))
        written.append(tflops_panels(rows, device, date, args.out, source))
    written = [w for w in written if w]
    for w in written:
        print("plot:", w)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
