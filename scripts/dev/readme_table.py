# Dev: the README's flash table from full compares (compare_torch.py's compare.json): the first run's
# TFLOP/s per implementation, and flash / cuDNN of every run side by side, train grid, S >= 1024.
#   python3 scripts/dev/readme_table.py bench/results/h200_2026-12-01zk_compare.json [more runs ...]
import sys

from lib_ab_compare_table import rows


def main():
    runs = [rows(p, grid="train") for p in sys.argv[1:]]
    names = [p.rsplit("_compare", 1)[0][-2:] for p in sys.argv[1:]]
    ratio = lambda row: row["af-flash"] / row["torch-cudnn"]  # noqa: E731
    bold = lambda x, s: f"**{s}**" if x >= 1.0 else s  # noqa: E731
    print("| D | dir | S | causal | attnforge flash | PyTorch flash | PyTorch cuDNN | flash / PyTorch flash "
          f"| flash / cuDNN | flash / cuDNN, runs {' / '.join(names[1:])} | attnforge unfused | PyTorch math |")
    print("|---" * 12 + "|")
    first = runs[0]
    keys = sorted((k for k in first if k[2] >= 1024), key=lambda k: (k[0] != "fwd", -k[1], k[2], k[3]))
    for k in keys:
        row = first[k]
        f = lambda impl: f"{row[impl]:.1f}" if impl in row else "—"  # noqa: E731
        r0, vs_fa2 = ratio(row), row["af-flash"] / row["torch-flash"]
        others = " / ".join(f"{ratio(run[k]):.3f}" for run in runs[1:] if k in run)
        print(f"| {k[1]} | {k[0]} | {k[2]} | {'yes' if k[3] else 'no '} | {f('af-flash')} | {f('torch-flash')} "
              f"| {f('torch-cudnn')} | {bold(vs_fa2, f'{vs_fa2:.2f}×')} "
              f"| {bold(r0, f'{r0:.3f}×')} | {others} | {f('af-unfused')} | {f('torch-math')} |")


if __name__ == "__main__":
    main()
