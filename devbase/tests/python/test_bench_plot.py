"""pytest of bench/plot.py without a GPU: it reads compare_torch.py's JSON and attnforge-bench's
Google Benchmark JSON (names as the benchmark registers them) and writes the PNGs it promises.
The rows are synthetic — this checks the plumbing, not any figure."""
from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
pytest.importorskip("matplotlib", reason="matplotlib is not installed (plot.py needs it)")
import plot  # noqa: E402


def _compare_rows():
    rows = []
    for grid, b_of in (("train", lambda s: 16384 // s), ("memory", lambda s: 1)):
        for s in (512, 1024, 2048):
            for impl, tflops, quadratic in (("af-unfused", 100.0, True), ("af-flash", 400.0, False),
                                            ("torch-flash", 330.0, False)):
                b, h, d = b_of(s), 16, 128
                ms = 4.0 * b * h * s * s * d / (tflops * 1e12) * 1e3
                mem = b * h * s * s * 6 if quadratic else b * s * h * d * 2
                rows.append(dict(grid=grid, B=b, Sq=s, Sk=s, H=h, D=d, causal=False, impl=impl,
                                 dir="fwd", ms=ms, tflops=tflops, peak_bytes=mem))
    rows.append(dict(grid="train", B=4, Sq=4096, Sk=4096, H=16, D=128, causal=False, impl="af-fused",
                     dir="fwd", error="UnsupportedError: fused supports seqlen_k up to 1024"))
    return rows


def test_plot_from_compare_and_bench_json(tmp_path):
    compare = tmp_path / "compare.json"
    compare.write_text(json.dumps(dict(device="TEST GPU", date="2026-01-01 00:00 UTC", rows=_compare_rows())))
    bench = tmp_path / "bench.json"
    benchmarks = []
    for s, b in ((512, 32), (1024, 16), (2048, 8)):
        for backend, tf in (("unfused", 90.0), ("flash", 380.0)):
            benchmarks.append({"name": f"train/{backend}/fwd/D128/S{s}/none/B{b}_H16/manual_time",
                               "run_name": f"train/{backend}/fwd/D128/S{s}/none/B{b}_H16/manual_time",
                               "median_ms": 1.0, "TFLOP/s": tf, "mem_MiB": 64.0})
    benchmarks.append({"name": "train/fused/fwd/D128/S4096/none/B4_H16/manual_time", "error_occurred": True,
                       "error_message": "not built"})
    bench.write_text(json.dumps({"context": {"device": "TEST GPU", "date": "2026-01-01T00:00:00"},
                                 "benchmarks": benchmarks}))
    out = tmp_path / "png"
    assert plot.main([str(compare), str(bench), "--out", str(out)]) == 0
    expected = ["four_panel_D128_nomask_fwd.png", "four_panel_memory_D128_nomask_fwd.png", "tflops_vs_S.png",
                "four_panel_D128_nomask_fwd_bench.png", "tflops_vs_S_bench.png"]
    for name in expected:
        assert (out / name).stat().st_size > 10_000, name


def test_bench_names_parse():
    """The names attnforge_bench.cpp registers (bench_name()) are the ones plot.py reads."""
    m = plot.BENCH_NAME.match("decode/flash/fwd/D128/Sq1_Sk8192/none/B16_H32/manual_time")
    assert m and (m["grid"], m["backend"], m["Sq"], m["Sk"], m["B"], m["H"]) == ("decode", "flash", "1", "8192", "16", "32")
    m = plot.BENCH_NAME.match("classic/unfused/bwd/D1024/S4096/causal/B1_H1/manual_time")
    assert m and (m["D"], m["S"], m["mask"]) == ("1024", "4096", "causal")
    src = open(os.path.join(ROOT, "bench", "attnforge_bench.cpp")).read()
    assert '"%s/%s/%s/D%d/%s/%s/B%d_H%d"' in src, "bench_name() format changed: update plot.BENCH_NAME"
