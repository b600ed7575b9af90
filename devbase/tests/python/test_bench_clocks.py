"""pytest of bench/clocks.py without a GPU: nvidia-smi samples are matched to the comparison rows by
the time each row finished. Synthetic rows and samples — this checks the matching, not any figure."""
from __future__ import annotations

import datetime
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import clocks  # noqa: E402

T0 = datetime.datetime(2026, 11, 30, 8, 0, 0, tzinfo=datetime.timezone.utc).timestamp()


def _sample(t, mhz, watts):
    stamp = datetime.datetime.fromtimestamp(T0 + t, datetime.timezone.utc).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]
    return f"{stamp}, {mhz}, 3201, 50, {watts}\n"


def _row(impl, t, s=4096, direction="bwd"):
    return dict(grid="train", B=4, Sq=s, Sk=s, H=16, D=128, causal=False, impl=impl, dir=direction, ms=1.0,
                tflops=500.0, time=T0 + t)


def test_rows_get_the_samples_taken_while_they_ran(tmp_path):
    # af-flash runs over (0, 1] s, torch-cudnn over (1, 2] s; the clock dips to 1815 MHz at 1.5 s only.
    samples = [_sample(i * 0.25, 1815 if i == 6 else 1980, 690 if i == 6 else 600) for i in range(9)]
    (tmp_path / "clocks.csv").write_text("".join(samples) + "not a sample line\n")
    rows = [_row("af-flash", 1.0), _row("torch-cudnn", 2.0), _row("af-unfused", 2.5, s=512),
            dict(_row("af-fused", 2.6), error="UnsupportedError")]
    del rows[-1]["time"]  # rows that did not run carry no time
    (tmp_path / "compare.json").write_text(json.dumps(dict(rows=rows)))

    table = dict(clocks.annotate(rows, clocks.read_samples(tmp_path / "clocks.csv"), ["af-flash", "torch-cudnn"]))
    key = ("train", "bwd", 128, 4096, 4096, False)
    assert set(table) == {key}
    assert table[key]["af-flash"][:2] == (1980, 600)
    assert table[key]["torch-cudnn"][:2] == (1815, 690)


def test_no_samples_says_so(tmp_path, capsys):
    (tmp_path / "clocks.csv").write_text("")
    (tmp_path / "compare.json").write_text(json.dumps(dict(rows=[_row("af-flash", 1.0)])))
    sys.argv = ["clocks.py", str(tmp_path / "compare.json"), str(tmp_path / "clocks.csv")]
    assert clocks.main() == 0
    assert "no samples" in capsys.readouterr().out
