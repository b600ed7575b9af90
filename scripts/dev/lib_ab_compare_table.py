"""The table of `TIMER=compare scripts/dev/lib_ab.sh`: attnforge's flash TFLOP/s per row for base and new in both
alternating runs, cuDNN's range over the four, and new / base on the means (the figure to read; absolute
numbers move with what ran before, see README "Measured results").
    python3 scripts/dev/lib_ab_compare_table.py OUT_DIR     (reads OUT_DIR/cmp_{base,new}_{1,2}/compare.json)"""
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
    runs = {k: rows(f"{out_dir}/cmp_{k}/compare.json") for k in ("base_1", "base_2", "new_1", "new_2")}
    print("| dir | D | S | causal | base run 1 / 2 | new run 1 / 2 | cuDNN (four runs) | new / base (means) |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for key in sorted(runs["base_1"]):
        try:
            b = [runs[f"base_{i}"][key]["af-flash"] for i in (1, 2)]
            n = [runs[f"new_{i}"][key]["af-flash"] for i in (1, 2)]
        except KeyError:
            continue
        c = [runs[k][key]["torch-cudnn"] for k in runs if "torch-cudnn" in runs[k].get(key, {})]
        ratios.append(sum(n) / sum(b))
        cudnn = f"{min(c):.1f}–{max(c):.1f}" if c else "—"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {'yes' if key[3] else 'no'} | {b[0]:.1f} / {b[1]:.1f} | "
              f"{n[0]:.1f} / {n[1]:.1f} | {cudnn} | {ratios[-1]:.3f} |")
    if ratios:
        print(f"\nMean new / base over {len(ratios)} rows: {sum(ratios) / len(ratios):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
