"""A variant is data: one (backend, direction, dtype, head dim, mask, tile) with one canonical name."""
from __future__ import annotations

from dataclasses import dataclass, field

BACKENDS = ("unfused", "fused", "flash")
DIRECTIONS = ("fwd", "bwd")
DTYPES = ("f32", "f16", "bf16")
HEAD_DIM_ANY = 0  # a variant that serves every head dim in [1, 1024] (unfused only)
ARCHS = {"any": 0, "sm90a": 90}  # a tile's `arch`: where its kernel runs (C++ Tile<..., kArch>)

# C++ spellings, used by the templates.
CPP_DTYPE = {"f32": "DType::f32", "f16": "DType::f16", "bf16": "DType::bf16"}


@dataclass(frozen=True)
class Tile:
    """Tile knobs; 0 = the backend has no such knob (meaning per backend: common/variant.hpp)."""
    m: int = 0  # query rows per CTA
    n: int = 0  # key columns per step (fused: the whole on-chip key row = its max Sk)
    w: int = 0  # warps per CTA
    s: int = 0  # pipeline stages
    arch: str = "any"  # "sm90a": a kernel only sm_90 devices run (name suffix _sm90a)

    @property
    def name(self) -> str:
        return "".join(f"{k}{v}" for k, v in (("m", self.m), ("n", self.n), ("w", self.w), ("s", self.s)) if v)

    @property
    def arch_code(self) -> int:
        return ARCHS[self.arch]


@dataclass(frozen=True)
class Mask:
    """A mask kind: a C++ predicate over q_idx, k_idx, seqlen_q, seqlen_k and named scalars, plus a
    tile classifier over inclusive ranges (q_first..q_last, k_first..k_last)."""
    name: str
    id: int
    predicate: str
    full: str
    empty: str
    scalars: tuple[str, ...] = ()
    tensor: bool = False
    relative: bool = False  # the predicate reads only k_idx − q_idx − (seqlen_k − seqlen_q) and the scalars
    doc: str = ""


@dataclass(frozen=True)
class Variant:
    backend: str
    direction: str
    dtype: str
    head_dim: int
    mask: Mask
    tile: Tile
    limits: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        hd = "any" if self.head_dim == HEAD_DIM_ANY else str(self.head_dim)
        parts = [self.backend, self.direction, self.dtype, f"hd{hd}", self.mask.name]
        if self.tile.name:
            parts.append(self.tile.name)
        if self.tile.arch != "any":
            parts.append(self.tile.arch)
        return "_".join(parts)

    def key(self) -> dict:
        return {
            "backend": self.backend, "direction": self.direction, "dtype": self.dtype,
            "head_dim": self.head_dim, "mask": self.mask.name,
            "tile": {"m": self.tile.m, "n": self.tile.n, "w": self.tile.w, "s": self.tile.s, "arch": self.tile.arch},
        }
