"""The table of `TIMER=compare scripts/dev/lib_ab.sh`: attnforge's flash TFLOP/s per row for base and new in every
alternating run, cuDNN's range over all of them, and new / base on the means (the figure to read; absolute
numbers move with what ran before, see README "Measured results").
    python3 scripts/dev/lib_ab_compare_table.py OUT_DIR     (reads OUT_DIR/cmp_{base,new}_{1,2,…}/compare.json)"""
import json
import pathlib
import sys


def rows(path):
    out = {}
    for r in json.loads(pathlib.Path(path).read_text())["rows"]:
        if r.get("tflops") is not None:
            out.setdefault((r["dir"], r["D"], r["Sq"], r["causal"]), {})[r["impl"]] = r["tflops"]
    return out


def main(out_dir):
    reps = sorted(int(p.name.rsplit("_", 1)[1]) for p in pathlib.Path(out_dir).glob("cmp_base_*") if p.is_dir())
    runs = {f"{t}_{i}": rows(f"{out_dir}/cmp_{t}_{i}/compare.json") for t in ("base", "new") for i in reps}
    which = " / ".join(str(i) for i in reps)
    print(f"| dir | D | S | causal | base run {which} | new run {which} | cuDNN (all runs) | new / base (means) |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for key in sorted(runs[f"base_{reps[0]}"]):
        try:
            b = [runs[f"base_{i}"][key]["af-flash"] for i in reps]
            n = [runs[f"new_{i}"][key]["af-flash"] for i in reps]
        except KeyError:
            continue
        c = [runs[k][key]["torch-cudnn"] for k in runs if "torch-cudnn" in runs[k].get(key, {})]
        ratios.append(sum(n) / sum(b))
        cudnn = f"{min(c):.1f}–{max(c):.1f}" if c else "—"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {'yes' if key[3] else 'no'} | {' / '.join(f'{x:.1f}' for x in b)} | "
              f"{' / '.join(f'{x:.1f}' for x in n)} | {cudnn} | {ratios[-1]:.3f} |")
    if ratios:
        print(f"\nMean new / base over {len(ratios)} rows: {sum(ratios) / len(ratios):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
