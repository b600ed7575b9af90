"""The GPU's SM clock and power while each row of a comparison was timed: gpu-check.sh samples
nvidia-smi every CLOCK_MS (250) ms during bench/compare_torch.py (clocks.csv) and every row of compare.json
carries when it finished ("time"), so a row's samples are those since the row before it.

    python3 bench/clocks.py compare.json clocks.csv [--impls af-flash,torch-cudnn] >> compare.md

Prints a markdown section: per (grid, dir, D, S, causal) and implementation, the lowest SM clock and
the highest power drawn while it ran — a row measured on a power-capped or throttled GPU shows.
"""
import argparse
import datetime
import json
import sys


def read_samples(path):
    """[(unix time, SM MHz, power W, temperature C)] from nvidia-smi's csv (timestamp, clocks.sm,
    clocks.mem, temperature.gpu, power.draw; noheader, nounits). Unparsable lines are skipped."""
    out = []
    for line in open(path):
        f = [x.strip() for x in line.split(",")]
        try:
            t = datetime.datetime.strptime(f[0], "%Y/%m/%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
            out.append((t.timestamp(), float(f[1]), float(f[4]), float(f[3])))
        except (IndexError, ValueError):
            continue
    return out


def summary(path):
    """'; SM lo-hi MHz, T C, P W max' over the whole file (gpu-check.sh's compare line), '' if none."""
    try:
        samples = read_samples(path)
    except OSError:
        return ""
    if not samples:
        return ""
    return (f"; SM {min(s[1] for s in samples):.0f}-{max(s[1] for s in samples):.0f} MHz, "
            f"{max(s[3] for s in samples):.0f} C, {max(s[2] for s in samples):.0f} W max")


def annotate(rows, samples, impls):
    """Rows of the section: (key, {impl: (min MHz, max W, samples)}), in the comparison's order."""
    gaps = sorted(b[0] - a[0] for a, b in zip(samples, samples[1:]))
    half = gaps[len(gaps) // 2] / 2 if gaps else 0.5  # half the sampling period
    timed = sorted((r for r in rows if "time" in r), key=lambda r: r["time"])
    table, prev = {}, None
    for r in timed:
        start = prev if prev is not None else r["time"] - 1.0
        prev = r["time"]
        if r["impl"] not in impls:
            continue
        win = [s for s in samples if start - half <= s[0] <= r["time"] + half]
        if not win:
            continue
        key = (r.get("grid", ""), r["dir"], r["D"], r["Sq"], r["Sk"], r["causal"])
        table.setdefault(key, {})[r["impl"]] = (min(s[1] for s in win), max(s[2] for s in win), len(win))
    return list(table.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("compare_json")
    ap.add_argument("clocks_csv")
    ap.add_argument("--impls", default="af-flash,torch-cudnn,torch-flash")
    args = ap.parse_args()
    rows = json.load(open(args.compare_json))["rows"]
    samples = read_samples(args.clocks_csv)
    impls = args.impls.split(",")
    table = annotate(rows, samples, impls)
    if not samples or not table:
        print("\n## SM clock and power per row\n\nno samples (nvidia-smi missing, or rows without times)")
        return 0
    print("\n## SM clock and power per row\n")
    print("Lowest SM clock (MHz) / highest power (W) among the nvidia-smi samples taken while the")
    print(f"implementation ran; {len(samples)} samples, SM {min(s[1] for s in samples):.0f}–"
          f"{max(s[1] for s in samples):.0f} MHz over the run.\n")
    print("| grid | dir | D | Sq | Sk | causal | " + " | ".join(impls) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(impls))
    for (grid, d, hd, sq, sk, causal), by in table:
        cells = [f"{by[i][0]:.0f} / {by[i][1]:.0f}" if i in by else "—" for i in impls]
        print(f"| {grid} | {d} | {hd} | {sq} | {sk} | {'yes' if causal else 'no'} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
