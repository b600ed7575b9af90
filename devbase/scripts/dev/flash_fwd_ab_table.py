# The side-by-side table of flash_fwd_ab.sh: every build's wg:<tile> (and cuDNN) TFLOP/s per shape, two
# runs each, and the ratio of each build to the first. Also re-run on an unpacked dev.tgz:
#   python3 scripts/dev/flash_fwd_ab_table.py <dir with time_<build>_<rep>.log> base new ...
import collections, re, sys
d, names = sys.argv[1], [b.split(":")[0] for b in sys.argv[2:]]
rows = collections.OrderedDict()
for n in names:
    for rep in (1, 2):
        for line in open(f"{d}/time_{n}_{rep}.log"):
            m = re.match(r"D=\s*(\d+) S=\s*(\d+) causal=(\d)", line)
            for k, v in re.findall(r"(wg:\S+|torch_cudnn)=\s*([0-9.]+)", line) if m else []:
                rows.setdefault((" ".join(m.groups()), k), {})[(n, rep)] = float(v)
print("D S causal, tile | " + " | ".join(f"{n} r1 r2" for n in names) + " | " + " ".join(f"{n}/{names[0]}" for n in names[1:]))
for (shape, k), v in rows.items():
    g = lambda n: [v.get((n, r), float("nan")) for r in (1, 2)]
    print(f"{shape:13s} {k:20s} | " + " | ".join(" ".join(f"{x:6.1f}" for x in g(n)) for n in names) + " | "
          + " ".join(f"{sum(g(n)) / sum(g(names[0])):.3f}" for n in names[1:]))
