"""Loads a variant TOML (with its `include`s), checks it, and expands it into masks and variants.
Every error names the file and the key: `ci.toml: backend.flash.head_dims[2]: expected ...`."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import limits
from .variant import ARCHS, BACKENDS, DIRECTIONS, DTYPES, HEAD_DIM_ANY, Mask, Tile, Variant

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SCALARS = 4
# A tile's own directions / head_dims / dtypes restrict it to those of its backend's combinations.
TILE_KEYS = {"m", "n", "warps", "stages", "arch", "directions", "head_dims", "dtypes"}
MASK_KEYS = {"doc", "predicate", "full", "empty", "scalars", "tensor", "relative"}
BACKEND_KEYS = {"dtypes", "head_dims", "directions", "masks", "tiles"}


class ConfigError(Exception):
    def __init__(self, file: Path, key: str, msg: str):
        super().__init__(f"{file}: {key}: {msg}")


@dataclass
class Dropped:
    """A combination the fit rules rejected, kept for --list --verbose."""
    name: str
    reason: str


@dataclass
class Config:
    path: Path
    files: list[Path]  # the config and everything it includes (build dependencies)
    masks: list[Mask]
    variants: list[Variant]
    dropped: list[Dropped]


def _load(path: Path, seen: list[Path]) -> list[tuple[Path, dict]]:
    """The TOML documents of `path` and its includes, includes first."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(path, "include", "include cycle")
    seen.append(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "<file>", "no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(path, "<file>", f"invalid TOML: {e}") from None
    inc = doc.get("include", [])
    if not isinstance(inc, list) or not all(isinstance(i, str) for i in inc):
        raise ConfigError(path, "include", f"expected a list of file names, got {inc!r}")
    docs = []
    for i in inc:
        docs += _load(path.parent / i, seen)
    unknown = set(doc) - {"include", "mask", "backend"}
    if unknown:
        raise ConfigError(path, sorted(unknown)[0], "unknown table (expected include, mask, backend)")
    return docs + [(path, doc)]


def _str(file, key, v) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(file, key, f"expected a non-empty C++ expression string, got {v!r}")
    return v


def _masks(docs) -> dict[str, Mask]:
    masks: dict[str, Mask] = {}
    for file, doc in docs:
        table = doc.get("mask", {})
        if not isinstance(table, dict):
            raise ConfigError(file, "mask", "expected tables [mask.NAME]")
        for name, m in table.items():
            key = f"mask.{name}"
            if not IDENT.match(name):
                raise ConfigError(file, key, "mask names must be C identifiers")
            if name in masks:
                raise ConfigError(file, key, "defined twice")
            if not isinstance(m, dict):
                raise ConfigError(file, key, "expected a table")
            if set(m) - MASK_KEYS:
                raise ConfigError(file, f"{key}.{sorted(set(m) - MASK_KEYS)[0]}",
                                  f"unknown key (expected {', '.join(sorted(MASK_KEYS))})")
            for k in ("predicate", "full", "empty"):
                if k not in m:
                    raise ConfigError(file, f"{key}.{k}", "missing")
            scalars = m.get("scalars", [])
            if not isinstance(scalars, list) or not all(isinstance(s, str) and IDENT.match(s) for s in scalars):
                raise ConfigError(file, f"{key}.scalars", f"expected a list of C identifiers, got {scalars!r}")
            if len(scalars) > MAX_SCALARS:
                raise ConfigError(file, f"{key}.scalars", f"at most {MAX_SCALARS} scalars, got {len(scalars)}")
            tensor = m.get("tensor", False)
            if not isinstance(tensor, bool):
                raise ConfigError(file, f"{key}.tensor", f"expected true or false, got {tensor!r}")
            relative = m.get("relative", False)
            if not isinstance(relative, bool):
                raise ConfigError(file, f"{key}.relative", f"expected true or false, got {relative!r}")
            if relative and tensor:
                raise ConfigError(file, f"{key}.relative", "a kind with a tensor reads absolute positions")
            masks[name] = Mask(name=name, id=len(masks), predicate=_str(file, f"{key}.predicate", m["predicate"]),
                               full=_str(file, f"{key}.full", m["full"]), empty=_str(file, f"{key}.empty", m["empty"]),
                               scalars=tuple(scalars), tensor=tensor, relative=relative, doc=str(m.get("doc", "")))
    return masks


def _choices(file, key, v, allowed) -> list:
    if not isinstance(v, list) or not v:
        raise ConfigError(file, key, f"expected a non-empty list, got {v!r}")
    for i, x in enumerate(v):
        if x not in allowed:
            raise ConfigError(file, f"{key}[{i}]", f"expected one of {', '.join(map(str, allowed))}, got {x!r}")
    return v


def _head_dims(file, key, v, backend) -> list[int]:
    if not isinstance(v, list) or not v:
        raise ConfigError(file, key, f"expected a non-empty list, got {v!r}")
    out = []
    for i, x in enumerate(v):
        if x == "any" and backend == "unfused":
            out.append(HEAD_DIM_ANY)
        elif isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 1024 and (backend == "unfused" or x % 8 == 0):
            out.append(x)
        else:
            want = "an integer 1..1024 or \"any\"" if backend == "unfused" else "a multiple of 8 in 8..1024"
            raise ConfigError(file, f"{key}[{i}]", f"expected {want}, got {x!r}")
    return out


def _tiles(file, key, v) -> list[dict]:
    if not isinstance(v, list) or not v:
        raise ConfigError(file, key, f"expected a non-empty list of tiles, got {v!r}")
    for i, t in enumerate(v):
        k = f"{key}[{i}]"
        if not isinstance(t, dict):
            raise ConfigError(file, k, f"expected an inline table like {{ m = 128, n = 64, warps = 4 }}, got {t!r}")
        if set(t) - TILE_KEYS:
            raise ConfigError(file, f"{k}.{sorted(set(t) - TILE_KEYS)[0]}",
                              f"unknown key (expected {', '.join(sorted(TILE_KEYS))})")
        for kk in ("m", "n", "warps", "stages"):
            x = t.get(kk, 0)
            if not isinstance(x, int) or isinstance(x, bool) or x < 0:
                raise ConfigError(file, f"{k}.{kk}", f"expected a non-negative integer, got {x!r}")
        if "directions" in t:
            _choices(file, f"{k}.directions", t["directions"], DIRECTIONS)
        if "dtypes" in t:
            _choices(file, f"{k}.dtypes", t["dtypes"], DTYPES)
        if t.get("arch", "any") not in ARCHS:
            raise ConfigError(file, f"{k}.arch", f"expected one of {', '.join(ARCHS)}, got {t['arch']!r}")
    return v


def load(path: str | Path) -> Config:
    path = Path(path)
    docs = _load(path, [])
    masks = _masks(docs)
    backends: dict[str, tuple[Path, dict]] = {}
    for file, doc in docs:
        table = doc.get("backend", {})
        if not isinstance(table, dict):
            raise ConfigError(file, "backend", "expected tables [backend.NAME]")
        for name, b in table.items():
            if name not in BACKENDS:
                raise ConfigError(file, f"backend.{name}", f"unknown backend (expected {', '.join(BACKENDS)})")
            backends[name] = (file, b)  # a later file's table replaces an included one
    variants, dropped = [], []
    for name in BACKENDS:  # fixed order: deterministic output whatever the TOML order
        if name not in backends:
            continue
        file, b = backends[name]
        key = f"backend.{name}"
        if not isinstance(b, dict):
            raise ConfigError(file, key, "expected a table")
        if set(b) - BACKEND_KEYS:
            raise ConfigError(file, f"{key}.{sorted(set(b) - BACKEND_KEYS)[0]}",
                              f"unknown key (expected {', '.join(sorted(BACKEND_KEYS))})")
        for k in BACKEND_KEYS:
            if k not in b:
                raise ConfigError(file, f"{key}.{k}", "missing")
        # Flash is 16-bit only; unfused (cuBLAS) and fused (fp32 on CUDA cores, fused/f32_cta.hpp) take f32 too.
        dtypes = _choices(file, f"{key}.dtypes", b["dtypes"], ("f16", "bf16") if name == "flash" else DTYPES)
        hds = _head_dims(file, f"{key}.head_dims", b["head_dims"], name)
        dirs = _choices(file, f"{key}.directions", b["directions"], DIRECTIONS)
        mks = _choices(file, f"{key}.masks", b["masks"], list(masks))
        tiles = _tiles(file, f"{key}.tiles", b["tiles"])
        for dt in dtypes:
            for hd in hds:
                for dr in dirs:
                    for mk in mks:
                        for t in tiles:
                            if (dr not in t.get("directions", DIRECTIONS) or hd not in t.get("head_dims", [hd])
                                    or dt not in t.get("dtypes", DTYPES)):
                                continue
                            knobs = {"m": t.get("m", 0), "n": t.get("n", 0), "w": t.get("warps", 0), "s": t.get("stages", 0),
                                     "arch": t.get("arch", "any")}
                            try:
                                knobs, lim = limits.fit(name, dr, dt, hd, t, masks[mk])
                            except limits.Unfit as e:
                                probe = Variant(name, dr, dt, hd, masks[mk], Tile(**knobs))
                                dropped.append(Dropped(probe.name, str(e)))
                                continue
                            v = Variant(name, dr, dt, hd, masks[mk], Tile(**knobs), lim)
                            if any(x.name == v.name for x in variants):
                                raise ConfigError(file, f"{key}.tiles", f"two tiles give the same variant {v.name}")
                            variants.append(v)
    return Config(path=path, files=[f for f, _ in docs], masks=list(masks.values()),
                  variants=variants, dropped=dropped)
