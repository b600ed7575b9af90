"""Sustained timing under the power cap (dev tools): back-to-back calls for a few seconds while
nvidia-smi samples the SM clock, board power and clock-event reasons every 50 ms; per window, the
median clock, mean power and the energy per call. Used by bwd_power.py and sustained.py."""
import datetime
import subprocess
import time

import torch


def timed(fn, secs):
    """Mean ms of fn over ~secs s of back-to-back calls, and the wall window (t0, t1) they ran in."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    fn()
    e1.record()
    torch.cuda.synchronize()
    n = max(5, int(secs * 1e3 / e0.elapsed_time(e1)))
    t0 = time.time()
    e0.record()
    for _ in range(n):
        fn()
    e1.record()
    torch.cuda.synchronize()
    return e0.elapsed_time(e1) / n, t0, time.time()


class SmiLog:
    """nvidia-smi in the background, writing to `path`; window(t0, t1) summarises the samples in it."""

    def __init__(self, path):
        self.path = path
        self.proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=timestamp,clocks.sm,power.draw,clocks_event_reasons.active",
             "--format=csv,noheader,nounits", "-lms", "50"],
            stdout=open(path, "w"), stderr=subprocess.STDOUT)
        time.sleep(1)

    def stop(self):
        time.sleep(0.5)
        self.proc.terminate()
        self.proc.wait()
        self.samples = []
        for line in open(self.path):
            f = [x.strip() for x in line.split(",")]
            try:  # nvidia-smi prints local time, as time.time() is read here
                ts = datetime.datetime.strptime(f[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
                self.samples.append((ts, float(f[1]), float(f[2]), f[3]))
            except (ValueError, IndexError):
                continue

    def window(self, t0, t1):
        """(median MHz, min MHz, mean W, max W, reasons, n) over [t0, t1], or None without samples."""
        win = [s for s in self.samples if t0 <= s[0] <= t1]
        if not win:
            return None
        clk = sorted(s[1] for s in win)
        pw = [s[2] for s in win]
        return clk[len(clk) // 2], clk[0], sum(pw) / len(pw), max(pw), sorted(set(s[3] for s in win)), len(win)
