"""Instruction mix of the warp-specialized forward's steady key-tile loop in a SASS dump (nvdisasm -c or
cuobjdump -sass of one variant): the innermost loop around the second S GEMM's first HGMMA (the first is
tile 0's), without the mask path (the branch taken after "DEPBAR.LE gsb0, 0x1"). ptxas compiles that loop
in forms that differ by a few percent in speed on small source changes (bench/NOTES-flash.md v26, v28):
compare this count before and after any edit to the kernel.
  python3 scripts/dev/sass_hotloop.py X.sass [--list]"""
import collections
import re
import sys


def hot_loop(lines):
    start = next(i for i, l in enumerate(lines) if "fwd_kernel_sm90_ws" in l and l.startswith("//"))
    body = lines[start:]
    first_s = [i for i, l in enumerate(body)
               if re.search(r"HGMMA\.64x\d+x16\.F32\.\w+ R\d+, (?:R\d+, )?gdesc\[UR\d+\], RZ, !UPT", l)]
    labels = {m.group(1): i for i, l in enumerate(body) if (m := re.match(r"^(\.L_x_\d+):", l))}
    best = None  # the shortest backward branch around the loop's S GEMM
    for i, l in enumerate(body):
        m = re.search(r"BRA `\((\.L_x_\d+)\)", l)
        if m and m.group(1) in labels and labels[m.group(1)] < first_s[1] < i:
            if best is None or i - labels[m.group(1)] < best[1] - best[0]:
                best = (labels[m.group(1)], i)
    loop = body[best[0]:best[1] + 1]
    j = next((k for k, l in enumerate(loop) if "DEPBAR.LE gsb0, 0x1" in l), None)
    if j is None:  # no wait leaves a group in flight: ptxas serialized the wgmma (its C7510–C7514 warnings)
        return loop, False
    k = next(k for k in range(j, len(loop)) if "BRA" in loop[k])
    target = re.search(r"\((\.L_x_\d+)\)", loop[k]).group(1)
    e = next((q for q, l in enumerate(loop) if l.startswith(target + ":")), None)
    # The mask path selects −inf; a loop copy without one (v42's full key tiles) has the rescale's skip
    # as its first branch after the wait, which is counted.
    if e is None or e < k or not any("FSEL" in l and "-INF" in l for l in loop[k:e]):
        return loop, True
    return loop[:k + 1] + loop[e:], True


def main(path, listing):
    hot, overlapped = hot_loop(open(path).read().split("\n"))
    if not overlapped:
        print("no DEPBAR.LE gsb0, 0x1 in the loop: its wgmma are serialized (see ptxas's C751x warnings); "
              "counting the whole loop, mask path included")
    ops = collections.Counter()
    for l in hot:
        m = re.match(r"\s+/\*[0-9a-f]+\*/\s+(?:@!?U?P[0-9T] )?([A-Z0-9_]+)", l)
        if m:
            ops[m.group(1)] += 1
    print(f"steady loop: {sum(ops.values())} instructions  " + " ".join(f"{o}:{c}" for o, c in ops.most_common()))
    if listing:
        for l in hot:
            m = re.match(r"\s+/\*[0-9a-f]+\*/\s+(.*;)", l)
            print(m.group(1) if m else l)


if __name__ == "__main__":
    main(sys.argv[1], "--list" in sys.argv[2:])
