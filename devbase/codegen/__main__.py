"""CLI: python3 -m codegen [--config FILE] [--out DIR] [--filter GLOB]... [--list [--verbose]] [--check]"""
from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

from . import emit
from .config import ConfigError, load

ROOT = Path(__file__).resolve().parent.parent


def print_table(variants) -> None:
    rows: dict[tuple, tuple[list, list]] = {}
    for v in variants:
        hds, tiles = rows.setdefault((v.backend, v.direction, v.dtype, v.mask.name), ([], []))
        hd = "any" if v.head_dim == 0 else str(v.head_dim)
        hds.append(hd) if hd not in hds else None
        label = v.tile.name + ("_" + v.tile.arch if v.tile.arch != "any" else "")
        tiles.append(label) if label not in tiles else None
    print(f"{'backend':8} {'dir':4} {'dtype':5} {'mask':10} {'head dims':26} tiles")
    for (b, d, t, m), (hds, tiles) in rows.items():
        print(f"{b:8} {d:4} {t:5} {m:10} {','.join(hds):26} {','.join(tiles)}")
    print(f"{len(variants)} variants")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m codegen", description=__doc__)
    ap.add_argument("--config", default=str(ROOT / "codegen/variants/default.toml"), help="variant TOML")
    ap.add_argument("--out", default=str(ROOT / "generated"), help="output folder")
    ap.add_argument("--filter", action="append", default=[], metavar="GLOB",
                    help="keep only variants whose name matches (repeatable; any match keeps)")
    ap.add_argument("--list", action="store_true", help="print the variant names and exit")
    ap.add_argument("--table", action="store_true",
                    help="print one row per (backend, direction, dtype, mask) with its head dims and tiles, and exit")
    ap.add_argument("--verbose", action="store_true", help="with --list: also the dropped combinations and why")
    ap.add_argument("--check", action="store_true", help="exit 1 if --out is not what the config generates")
    ap.add_argument("--deps", action="store_true", help="print the input files (for build systems) and exit")
    args = ap.parse_args(argv)

    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(f"codegen: error: {e}", file=sys.stderr)
        return 2
    if args.filter:
        cfg.variants = [v for v in cfg.variants if any(fnmatch.fnmatchcase(v.name, g) for g in args.filter)]
        if not cfg.variants:
            print(f"codegen: error: no variant matches {' '.join(args.filter)}", file=sys.stderr)
            return 2
    if args.deps:
        for f in cfg.files + sorted(emit.TEMPLATES.glob("*.j2")) + sorted(Path(__file__).parent.glob("*.py")):
            print(f)
        return 0
    if args.table:
        print_table(cfg.variants)
        return 0
    if args.list:
        for v in cfg.variants:
            print(v.name)
        if args.verbose:
            for d in cfg.dropped:
                print(f"# dropped {d.name}: {d.reason}")
        return 0

    try:
        name = Path(args.config).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        name = Path(args.config).name
    files = emit.render(cfg, name, args.filter)
    out = Path(args.out)
    if args.check:
        diffs = emit.check(out, files)
        if diffs:
            print(f"codegen: {out} is stale ({len(diffs)} files differ, e.g. {', '.join(diffs[:5])}); "
                  f"run: python3 -m codegen --config {args.config} --out {args.out}", file=sys.stderr)
            return 1
        print(f"codegen: {out} is fresh ({len(files)} files)")
        return 0
    written, removed = emit.write(out, files)
    print(f"codegen: {len(cfg.variants)} variants, {len(cfg.masks)} mask kinds -> {out} "
          f"({len(written)} written, {len(removed)} removed, {len(files) - len(written)} unchanged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
