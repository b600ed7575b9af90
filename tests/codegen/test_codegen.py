"""Generator tests: determinism, write-if-different, --list/--filter/--check, clear errors for bad
TOML, and a user-defined prefix-LM mask compiled and evaluated end to end on the host."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "codegen/variants/default.toml"
CI = ROOT / "codegen/variants/ci.toml"
USER = ROOT / "tests/configs/user_variants.toml"


def codegen(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "codegen", *args], cwd=ROOT, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"codegen {args} failed ({r.returncode}): {r.stderr}")
    return r


def snapshot(d: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (p.read_text(), p.stat().st_mtime_ns) for p in sorted(d.iterdir())}


def flash_config(tmp_path: Path, name: str, flash_table: str) -> Path:
    """A variant TOML with the repository's mask kinds and the given [backend.flash] table."""
    cfg = tmp_path / name
    cfg.write_text(f'include = ["{ROOT}/codegen/variants/masks.toml"]\n' + textwrap.dedent(flash_table))
    return cfg


def listed(cfg: Path) -> tuple[list[str], str]:
    """The variants `codegen --list --verbose` builds from cfg, and its whole output (with the reasons
    for the dropped ones)."""
    r = codegen("--config", str(cfg), "--list", "--verbose")
    return [line for line in r.stdout.split("\n") if line and not line.startswith("#")], r.stdout


def test_generation_is_deterministic(tmp_path):
    codegen("--config", str(CI), "--out", str(tmp_path / "a"))
    codegen("--config", str(CI), "--out", str(tmp_path / "b"))
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 3
    assert all(a[n][0] == b[n][0] for n in a)


def test_write_if_different_keeps_mtimes(tmp_path):
    out = tmp_path / "g"
    codegen("--config", str(CI), "--out", str(out))
    before = snapshot(out)
    os.utime(out / "variants.hpp", ns=(1, 1))  # an old mtime that a rewrite would change
    r = codegen("--config", str(CI), "--out", str(out))
    assert "0 written" in r.stdout
    after = snapshot(out)
    assert after["variants.hpp"][1] == 1
    assert {n: m for n, (_, m) in after.items() if n != "variants.hpp"} == \
           {n: m for n, (_, m) in before.items() if n != "variants.hpp"}


def test_stale_variant_files_are_removed_and_check_notices(tmp_path):
    out = tmp_path / "g"
    codegen("--config", str(CI), "--out", str(out))
    assert codegen("--config", str(CI), "--out", str(out), "--check").returncode == 0
    codegen("--config", str(CI), "--out", str(out), "--filter", "flash_*")
    assert not list(out.glob("unfused_*.cu"))
    r = codegen("--config", str(CI), "--out", str(out), "--check", check=False)
    assert r.returncode == 1 and "stale" in r.stderr


def test_list_and_filter():
    names = codegen("--config", str(CI), "--list").stdout.split()
    assert "flash_fwd_bf16_hd64_causal_m128n64w4s2" in names
    assert "unfused_fwd_f32_hdany_none_w4" in names
    only = codegen("--config", str(CI), "--list", "--filter", "flash_fwd_*").stdout.split()
    assert only and all(n.startswith("flash_fwd_") for n in only)
    assert set(only) < set(names)


def test_generated_files_are_tiny_instantiations(tmp_path):
    codegen("--config", str(CI), "--out", str(tmp_path))
    man = json.loads((tmp_path / "manifest.json").read_text())
    for v in man["variants"]:
        text = (tmp_path / f"{v['name']}.cu").read_text()
        code = [l for l in text.splitlines() if l.strip() and not l.startswith("//")]
        assert len(code) == 3, text  # two includes and one explicit instantiation
        assert f"launch<attnforge::generated::{v['name']}>" in code[-1]


def test_committed_generated_dir_is_fresh():
    r = codegen("--check", check=False)
    assert r.returncode == 0, r.stderr


def test_fused_limit_is_in_name_and_manifest(tmp_path):
    codegen("--config", str(CI), "--out", str(tmp_path))
    man = json.loads((tmp_path / "manifest.json").read_text())
    fused = [v for v in man["variants"] if v["backend"] == "fused"]
    assert fused
    for v in fused:
        assert v["limits"]["max_seqlen_k"] == v["tile"]["n"] > 0
        assert f"n{v['tile']['n']}" in v["name"]


def test_fused_f32_sizes_its_score_row_from_shared_memory(tmp_path):
    """fp32 fused variants (runtime/kernels/fused/f32_cta.hpp) keep S in shared memory: the generator
    sizes n from the shared-memory plan (capped at 1024) and drops a tile with no room for 64 keys."""
    cfg = tmp_path / "f32.toml"
    cfg.write_text(f'include = ["{ROOT}/codegen/variants/masks.toml"]\n' + textwrap.dedent("""\
        [backend.fused]
        dtypes = ["f32"]
        head_dims = [64, 256]
        directions = ["fwd", "bwd"]
        masks = ["causal"]
        tiles = [{ m = 16, warps = 8 }, { m = 64, warps = 8 }]
        """))
    built, out = listed(cfg)
    assert "fused_fwd_f32_hd64_causal_m16n1024w8" in built, out
    assert "fused_bwd_f32_hd64_causal_m64n320w8" in built, out
    assert "fused_fwd_f32_hd256_causal_m64n192w8" in built, out  # (58112 − 41984 fixed floats) / 64 rows → 252 keys
    assert "fused_bwd_f32_hd256_causal_m64w8: no room for a 64-key fp32 score row" in out, out


def test_fused_streamed_tile_rules(tmp_path):
    """The streamed key row (runtime/kernels/fused/fwd_sm90_stream.cuh, fwd_sm90_ws.cuh): a fused tile with
    stages is sm90a, 16-bit, forward, 64 rows per consumer warpgroup (and one producer warpgroup: m 128 up to
    d 128 only); its limit is the fused cap; anything else is dropped with why."""
    cfg = tmp_path / "stream.toml"
    cfg.write_text(f'include = ["{ROOT}/codegen/variants/masks.toml"]\n' + textwrap.dedent("""\
        [backend.fused]
        dtypes = ["bf16", "f32"]
        head_dims = [64, 96]
        directions = ["fwd", "bwd"]
        masks = ["causal"]
        tiles = [
          { m = 64, warps = 4, stages = 2, arch = "sm90a" },
          { m = 128, warps = 4, stages = 2, arch = "sm90a", dtypes = ["bf16"], head_dims = [64], directions = ["fwd"] },
          { m = 64, warps = 4, stages = 2, dtypes = ["bf16"], head_dims = [64], directions = ["fwd"] },
          { m = 128, warps = 12, stages = 2, arch = "sm90a", dtypes = ["bf16"], directions = ["fwd"] },
          { m = 64, warps = 8, stages = 2, arch = "sm90a", dtypes = ["bf16"], head_dims = [64], directions = ["fwd"] },
        ]
        """))
    built, out = listed(cfg)
    assert "fused_fwd_bf16_hd64_causal_m64n1024w4s2_sm90a" in built, out
    assert "fused_fwd_bf16_hd64_causal_m128n1024w12s2_sm90a" in built, out
    assert "fused_fwd_bf16_hd96_causal_m128n1024w12s2_sm90a" not in built, out  # head dims ×64
    assert "the warp-specialized streamed kernel is m=128" in out, out  # m64 w8: a producer for one consumer
    sys.path.insert(0, str(ROOT))
    from codegen import limits  # noqa: E402  (the rule itself, for the shared-memory figure)
    # WsStreamConfig's plan at D 128: Q 32 KiB, two K and two V stages of 128 keys (128 KiB), two P staging
    # buffers per consumer (64 KiB), ten mbarriers, the published block's slot (128 B), 1 KiB of alignment:
    # one CTA per SM.
    assert limits.fused_fwd_stream("bf16", 128, 128, 12, 2, "fwd", "sm90a") == (1024, 32768 + 131072 + 65536 + 80 + 128 + 1024)
    assert not any(n.startswith("fused_bwd_") or "_f32_" in n or "hd96" in n for n in built), built
    assert "needs 64 rows per consumer warpgroup" in out, out
    assert "wgmma / sm_90a only" in out, out
    assert "is a forward" in out, out


def test_tile_dtypes_restrict_a_tile(tmp_path):
    """A tile's dtypes key keeps it to those dtypes (the fp32 fused tile beside the 16-bit ones)."""
    cfg = tmp_path / "tile_dtypes.toml"
    cfg.write_text(f'include = ["{ROOT}/codegen/variants/masks.toml"]\n' + textwrap.dedent("""\
        [backend.fused]
        dtypes = ["bf16", "f32"]
        head_dims = [64]
        directions = ["fwd"]
        masks = ["none"]
        tiles = [{ m = 64, warps = 8, dtypes = ["bf16"] }, { m = 16, warps = 8, dtypes = ["f32"] }]
        """))
    built, out = listed(cfg)
    assert built == ["fused_fwd_bf16_hd64_none_m64n512w8", "fused_fwd_f32_hd64_none_m16n1024w8"], out
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text().replace('dtypes = ["f32"] }', 'dtypes = ["f8"] }'))
    r = codegen("--config", str(bad), "--list", check=False)
    assert r.returncode != 0 and "tiles[1].dtypes[0]: expected one of" in r.stderr, r.stderr


def test_arch_axis_names_instantiates_and_drops(tmp_path):
    """A tile with arch = "sm90a" is a warp-specialized flash kernel: name suffix _sm90a,
    Tile<..., 90> in the variant list, dropped with a reason where the kernel cannot go."""
    cfg = flash_config(tmp_path, "arch.toml", """\
        [backend.flash]
        dtypes = ["bf16"]
        head_dims = [64, 96]
        directions = ["fwd", "bwd"]
        masks = ["causal", "bias"]
        tiles = [{ m = 128, n = 128, warps = 12, stages = 2, arch = "sm90a" }]
        """)
    out = tmp_path / "g"
    r = codegen("--config", str(cfg), "--out", str(out), "--list", "--verbose")
    assert r.stdout.split("\n")[0] == "flash_fwd_bf16_hd64_causal_m128n128w12s2_sm90a", r.stdout
    dropped = r.stdout
    assert "flash_fwd_bf16_hd64_bias_m128n128w12s2_sm90a: the sm90a forward has no mask tensor path" in dropped
    assert "flash_fwd_bf16_hd96_causal_m128n128w12s2_sm90a: the sm90a forward has head dims 64, 128, 192 and 256" in dropped
    assert "flash_bwd_bf16_hd96_causal_m128n128w12s2_sm90a: the sm90a backward has head dims 64, 128, 192 and 256" in dropped
    codegen("--config", str(cfg), "--out", str(out))
    man = json.loads((out / "manifest.json").read_text())
    assert [v["name"] for v in man["variants"]] == ["flash_fwd_bf16_hd64_causal_m128n128w12s2_sm90a",
                                                    "flash_bwd_bf16_hd64_causal_m128n128w12s2_sm90a"]
    assert man["variants"][0]["tile"]["arch"] == "sm90a"
    assert "Tile<128, 128, 12, 2, 90>" in (out / "variants.hpp").read_text()


def test_arch_axis_forward_m192_and_backward_tiles(tmp_path):
    """The fit rules' other sm90a shapes: three consumer warpgroups (m192 w16) at head dim 64 only, and
    the backward's warp-specialized form (m64 n128 w12 s2; 128-query steps at head dim 64 only)."""
    built, out = listed(flash_config(tmp_path, "arch2.toml", """\
        [backend.flash]
        dtypes = ["bf16"]
        head_dims = [64, 128]
        directions = ["fwd", "bwd"]
        masks = ["none"]
        tiles = [
          { m = 192, n = 128, warps = 16, stages = 2, arch = "sm90a", directions = ["fwd"] },
          { m = 64, n = 128, warps = 12, stages = 2, arch = "sm90a", directions = ["bwd"] },
          { m = 128, n = 128, warps = 12, stages = 2, arch = "sm90a", directions = ["bwd"] },
        ]
        """))
    assert built == ["flash_fwd_bf16_hd64_none_m192n128w16s2_sm90a", "flash_bwd_bf16_hd64_none_m64n128w12s2_sm90a",
                     "flash_bwd_bf16_hd64_none_m128n128w12s2_sm90a", "flash_bwd_bf16_hd128_none_m64n128w12s2_sm90a"], out
    assert "flash_bwd_bf16_hd128_none_m128n128w12s2_sm90a: the sm90a backward takes 128-query steps at head dim 64" in out
    assert "flash_fwd_bf16_hd128_none_m192n128w16s2_sm90a: three consumer warpgroups" in out


def test_arch_axis_backward_split_tile_at_head_dims_192_256(tmp_path):
    """Head dims 192 / 256's Hopper backward: both warpgroups on 64 keys (m64 n64 w12 s2) there only; the
    other shapes are dropped with the rule's reason."""
    built, out = listed(flash_config(tmp_path, "split.toml", """\
        [backend.flash]
        dtypes = ["bf16"]
        head_dims = [96, 128, 192, 256]
        directions = ["bwd"]
        masks = ["causal"]
        tiles = [
          { m = 64, n = 64, warps = 12, stages = 2, arch = "sm90a" },
          { m = 64, n = 128, warps = 12, stages = 2, arch = "sm90a" },
        ]
        """))
    assert built == ["flash_bwd_bf16_hd128_causal_m64n128w12s2_sm90a", "flash_bwd_bf16_hd192_causal_m64n64w12s2_sm90a",
                     "flash_bwd_bf16_hd256_causal_m64n64w12s2_sm90a"], out
    assert "flash_bwd_bf16_hd256_causal_m64n128w12s2_sm90a: the sm90a backward at head dims 192 and 256 is m=64 n=64" in out
    assert "flash_bwd_bf16_hd192_causal_m64n128w12s2_sm90a: the sm90a backward at head dims 192 and 256 is m=64 n=64" in out
    assert "flash_bwd_bf16_hd96_causal_m64n128w12s2_sm90a: the sm90a backward has head dims 64, 128, 192 and 256" in out
    assert "flash_bwd_bf16_hd128_causal_m64n64w12s2_sm90a: the sm90a backward is m=64 or 128, n=128" in out


def test_arch_axis_forward_wide_key_tiles(tmp_path):
    """The sm90a forward's 176- and 192-key tiles fit where S, P and O stay in registers: n176 at head
    dim 128, n192 at 64 only (208 accumulator registers at 128 spill), and O's own staging buffer only
    where shared memory has room for it."""
    built, out = listed(flash_config(tmp_path, "wide.toml", """\
        [backend.flash]
        dtypes = ["bf16"]
        head_dims = [64, 128]
        directions = ["fwd"]
        masks = ["none"]
        tiles = [
          { m = 128, n = 176, warps = 12, stages = 2, arch = "sm90a" },
          { m = 128, n = 192, warps = 12, stages = 2, arch = "sm90a" },
        ]
        """))
    assert built == ["flash_fwd_bf16_hd64_none_m128n176w12s2_sm90a", "flash_fwd_bf16_hd64_none_m128n192w12s2_sm90a",
                     "flash_fwd_bf16_hd128_none_m128n176w12s2_sm90a"], out
    assert "flash_fwd_bf16_hd128_none_m128n192w12s2_sm90a: 208 accumulator registers" in out
    sys.path.insert(0, str(ROOT))
    from codegen import limits  # noqa: E402  (the rule itself, for the shared-memory figures)

    class NoMask:
        tensor, name = False, "none"
    # D 128 m128 s2 n128: Q 32 KiB + K/V 128 KiB + own O 32 KiB + 10 mbarriers + the published block's slot
    # (128 B, a ping-pong tile: FwdWsConfig::kBlockSlotBytes) + 1 KiB alignment.
    assert limits.flash_fwd_sm90a("bf16", 128, 128, 128, 12, 2, NoMask)["smem_bytes"] == 196608 + 80 + 128 + 1024
    # D 128 n176: no room for O's buffer, so it is staged in Q's rows.
    assert limits.flash_fwd_sm90a("bf16", 128, 128, 176, 12, 2, NoMask)["smem_bytes"] == 32768 + 180224 + 80 + 128 + 1024
    # D 64 m128 (no ping-pong, no slot) and m192.
    assert limits.flash_fwd_sm90a("bf16", 64, 128, 128, 12, 2, NoMask)["smem_bytes"] == 16384 + 65536 + 16384 + 80 + 1024
    assert limits.flash_fwd_sm90a("bf16", 64, 192, 128, 16, 2, NoMask)["smem_bytes"] == 24576 + 65536 + 24576 + 80 + 1024


@pytest.mark.parametrize("body, key", [
    ("[backend.flash]\ndtypes = [\"bf16\"]\nhead_dims = [\"abc\"]\ndirections = [\"fwd\"]\n"
     "masks = [\"none\"]\ntiles = [{ m = 64, n = 64, warps = 4, stages = 2 }]\n", "backend.flash.head_dims[0]"),
    ("[backend.flash]\ndtypes = [\"f64\"]\nhead_dims = [64]\ndirections = [\"fwd\"]\n"
     "masks = [\"none\"]\ntiles = [{ m = 64, n = 64, warps = 4, stages = 2 }]\n", "backend.flash.dtypes[0]"),
    ("[backend.flash]\ndtypes = [\"bf16\"]\nhead_dims = [64]\ndirections = [\"fwd\"]\n"
     "masks = [\"nope\"]\ntiles = [{ m = 64, n = 64, warps = 4, stages = 2 }]\n", "backend.flash.masks[0]"),
    ("[backend.flash]\ndtypes = [\"bf16\"]\nhead_dims = [64]\ndirections = [\"fwd\"]\n"
     "masks = [\"none\"]\ntiles = [{ m = 64, q = 64 }]\n", "backend.flash.tiles[0].q"),
    ("[backend.flash]\ndtypes = [\"bf16\"]\nhead_dims = [64]\ndirections = [\"fwd\"]\n"
     "masks = [\"none\"]\ntiles = [{ m = 128, n = 128, warps = 12, stages = 2, arch = \"sm100\" }]\n",
     "backend.flash.tiles[0].arch"),
    ("[backend.warp]\n", "backend.warp"),
    ("[mask.prefix]\npredicate = \"true\"\nfull = \"true\"\n", "mask.prefix.empty"),
    ("[mask.prefix]\npredicate = \"true\"\nfull = \"true\"\nempty = \"false\"\nscalars = [\"a b\"]\n", "mask.prefix.scalars"),
    ("[mask.prefix]\npredicate = \"true\"\nfull = \"true\"\nempty = \"false\"\nrelative = 1\n", "mask.prefix.relative"),
    ("[mask.prefix]\npredicate = \"true\"\nfull = \"false\"\nempty = \"false\"\ntensor = true\nrelative = true\n",
     "mask.prefix.relative"),
    ("this is = = not toml\n", "invalid TOML"),
])
def test_bad_toml_names_file_and_key(tmp_path, body, key):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'include = ["{ROOT}/codegen/variants/masks.toml"]\n' + body)
    r = codegen("--config", str(cfg), "--list", check=False)
    assert r.returncode == 2
    assert str(cfg) in r.stderr and key in r.stderr, r.stderr


def test_user_defined_prefix_lm_mask_end_to_end(tmp_path):
    """A mask added in TOML only: generated, compiled by the host compiler, and its predicate and
    tile classifier agree with the Python definition on every element and tile of a grid."""
    out = tmp_path / "gen"
    codegen("--config", str(USER), "--out", str(out))
    names = codegen("--config", str(USER), "--list").stdout.split()
    assert "unfused_fwd_bf16_hd80_prefix_lm_w4" in names
    prog = tmp_path / "probe.cpp"
    prog.write_text(textwrap.dedent("""
        #include <cstdio>
        #include "masks.hpp"
        using namespace attnforge;
        using M = generated::mask::prefix_lm;
        int main() {
          static_assert(M::kNumScalars == 1 && !M::kHasTensor);
          const int sq = 7, sk = 11;
          for (int p = 0; p <= sk; p += 3) {
            MaskScalars s{{p, 0, 0, 0}};
            for (int i = 0; i < sq; ++i)
              for (int j = 0; j < sk; ++j) std::printf("v %d %d %d %d\\n", p, i, j, int(M::visible(i, j, sq, sk, s)));
            for (int i0 = 0; i0 < sq; i0 += 2)
              for (int j0 = 0; j0 < sk; j0 += 4)
                std::printf("t %d %d %d %d\\n", p, i0, j0,
                            int(M::classify(i0, i0 + 1 < sq ? i0 + 1 : sq - 1, j0, j0 + 3 < sk ? j0 + 3 : sk - 1, sq, sk, s)));
          }
        }
    """))
    exe = tmp_path / "probe"
    cc = subprocess.run(["g++", "-std=c++20", f"-I{out}", f"-I{ROOT}/runtime/kernels", f"-I{ROOT}/runtime/include",
                         "-I/usr/local/cuda/include", str(prog), "-o", str(exe)], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    sq, sk = 7, 11
    vis = lambda p, i, j: j < p or j <= i + sk - sq
    checked = 0
    for line in lines:
        kind, p, i, j, val = line.split()[0], *map(int, line.split()[1:])
        if kind == "v":
            assert bool(val) == vis(p, i, j), line
        else:
            cells = [vis(p, a, b) for a in range(i, min(i + 2, sq)) for b in range(j, min(j + 4, sk))]
            want = 2 if all(cells) else 0 if not any(cells) else 1
            # the classifier may be conservative (partial), never wrong
            assert val == want or val == 1, line
        checked += 1
    assert checked > 300


def test_wgmma_wrappers_are_the_generators_output():
    """runtime/kernels/common/wgmma.cuh's wrapper section is codegen/wgmma.py's output, and a hand edit
    inside it is reported stale."""
    from codegen import wgmma
    text = wgmma.HEADER.read_text()
    assert wgmma.render(text) == text
    edited = text.replace("m64n80k16.f32.bf16.bf16", "m64n80k16.f32.f16.f16", 1)
    assert edited != text and wgmma.render(edited) == text
    assert "struct Wgmma<DType::f16, 112>" in wgmma.section()
