"""The table of `TIMER=compare scripts/dev/lib_ab.sh`: attnforge's TFLOP/s per row (the runs' first af-* impl, e.g.
af-flash) for every tree (base, new and, where present, alt) in every alternating run, the first torch-* impl's range
over all of them (e.g. cuDNN), and each tree / base on the means (the figure to read; absolute numbers move with what
ran before, see README "Measured results").
    python3 scripts/dev/lib_ab_compare_table.py OUT_DIR     (reads OUT_DIR/cmp_{base,new,alt}_{1,2,…}/compare.json)"""
import json
import pathlib
import sys


def rows(path):
    """({(grid, dir, D, Sq, causal): {impl: TFLOP/s}}, [impl, …]) of a compare.json."""
    out = {}
    if not pathlib.Path(path).exists():  # that tree's run failed: its cells stay empty
        return out, []
    result = json.loads(pathlib.Path(path).read_text())
    for r in result["rows"]:
        if r.get("tflops") is not None:
            out.setdefault((r.get("grid", "train"), r["dir"], r["D"], r["Sq"], r["causal"]), {})[r["impl"]] = r["tflops"]
    return out, result.get("impls", [])


def main(out_dir):
    root = pathlib.Path(out_dir)
    reps = sorted(int(p.name.rsplit("_", 1)[1]) for p in root.glob("cmp_base_*") if p.is_dir())
    trees = [t for t in ("base", "new", "alt") if (root / f"cmp_{t}_{reps[0]}").is_dir()]
    loaded = {(t, i): rows(root / f"cmp_{t}_{i}" / "compare.json") for t in trees for i in reps}
    runs = {k: v[0] for k, v in loaded.items()}
    impls = next((v[1] for v in loaded.values() if v[1]), ["af-flash", "torch-cudnn"])
    af = next(i for i in impls if i.startswith("af-"))
    ref = next(i for i in impls if i.startswith("torch-"))
    which = " / ".join(str(i) for i in reps)
    others = [t for t in trees if t != "base"]
    print(f"{af} TFLOP/s per tree and run, {ref}'s range over all runs\n")
    print("| grid | dir | D | S | causal | " + " | ".join(f"{t} run {which}" for t in trees) + f" | {ref} (all runs) | " +
          " | ".join(f"{t} / base (means)" for t in others) + " |")
    print("|---|---|---|---|---|" + "---|" * (len(trees) + 1 + len(others)))
    ratios = {t: [] for t in others}
    keys = sorted({k for run in runs.values() for k in run})
    for key in keys:
        vals = {t: [runs[(t, i)].get(key, {}).get(af) for i in reps] for t in trees}
        ref_vals = [run[key][ref] for run in runs.values() if ref in run.get(key, {})]
        cells = [" / ".join("—" if x is None else f"{x:.1f}" for x in vals[t]) for t in trees]
        base_ok = None not in vals["base"]
        rs = []
        for t in others:
            if base_ok and None not in vals[t]:
                ratios[t].append(sum(vals[t]) / sum(vals["base"]))
                rs.append(f"{ratios[t][-1]:.3f}")
            else:
                rs.append("—")
        ref_range = f"{min(ref_vals):.1f}–{max(ref_vals):.1f}" if ref_vals else "—"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {'yes' if key[4] else 'no'} | " + " | ".join(cells) +
              f" | {ref_range} | " + " | ".join(rs) + " |")
    for t in others:
        if ratios[t]:
            print(f"\nMean {t} / base over {len(ratios[t])} rows: {sum(ratios[t]) / len(ratios[t]):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
