# Device run: A/B of two library trees through the binding in one call. Builds the base tree (devbase/)
# and this tree side by side (filtered variants), runs this tree's flash GPU suites, then
# kernel_breakdown.py on base, new, base, new and prints each kernel's µs per shape for both.
#   rm -rf devbase && mkdir devbase && git archive <base rev> | tar -x -C devbase   (untracked: travels)
#   OUT=... bash scripts/dev/lib_ab.sh [kernel_breakdown.py arguments, e.g. --dirs bwd --seqs 2048,16384]
# FILTER: variant globs (default: the bf16 D 64 / 128 flash backward and the forwards its graph needs);
# GTEST_FILTER: this tree's suites (default the flash ones and the flash sweep).
set -u
export PATH=$PATH:/usr/local/cuda/bin
FILTER=${FILTER:-'flash_fwd_bf16_hd64_*_m128n128w12s2_sm90a;flash_fwd_bf16_hd128_*_m128n128w12s2_sm90a;flash_bwd_bf16_hd64_*;flash_bwd_bf16_hd128_*'}
[ -d devbase ] || { echo "lib_ab: no devbase/ (see the header)"; exit 2; }
for t in base new; do
  src=$([ $t = base ] && echo "$PWD/devbase" || echo "$PWD")
  (cmake -S "$src" -B "/tmp/ab_$t" -G Ninja -DCMAKE_BUILD_TYPE=Release \
     -DATTNFORGE_VARIANTS="$src/codegen/variants/gpu.toml" -DATTNFORGE_VARIANT_FILTER="$FILTER" &&
   cmake --build "/tmp/ab_$t" -j 8) > "$OUT/build_$t.log" 2>&1 &
done
wait
for t in base new; do [ -f "/tmp/ab_$t/libattnforge.so" ] || { echo "lib_ab: $t did not build"; tail -20 "$OUT/build_$t.log"; exit 1; }; done
echo "built $(date +%T)"
tests=$(find /tmp/ab_new -name attnforge_gpu_tests -type f | head -1)
GTEST_FILTER=${GTEST_FILTER:-'*Flash*:Sweep.*'} ATTNFORGE_SWEEP_BACKEND=flash timeout 200 "$tests" > "$OUT/tests_new.log" 2>&1
echo "tests (new) rc=$?"; grep -E '^\[  (PASSED|FAILED)|FAILED|cases in' "$OUT/tests_new.log" | head
for rep in 1 2; do
  for t in base new; do
    src=$([ $t = base ] && echo devbase || echo .)
    ATTNFORGE_LIBRARY="/tmp/ab_$t/libattnforge.so" PYTHONPATH="$src/python" \
      timeout 120 python3 scripts/dev/kernel_breakdown.py "$@" > "$OUT/bd_${t}_$rep.txt" 2>&1 || echo "breakdown $t $rep failed"
  done
done
# Per shape and kernel: base µs (two runs) → new µs (two runs); attnforge's kernels only.
python3 - "$OUT" <<'PY'
import collections, re, sys
out = sys.argv[1]
def read(path):
    rows, shape, impl = collections.OrderedDict(), None, None
    for line in open(path):
        if line.startswith("=="):
            shape = line.strip("= \n")
        elif re.match(r"\s+(af|cudnn)\s+total", line):
            impl = line.split()[0]
            if impl == "af":
                rows[(shape, "total")] = float(line.split()[2])
        elif impl == "af" and re.match(r"\s+[0-9.]+ µs", line):
            name = re.sub(r"<.*", "", line.split("µs", 1)[1].strip()).replace("void ", "").split("::")[-1]
            rows[(shape, name)] = float(line.split()[0])
    return rows
runs = {(t, r): read(f"{out}/bd_{t}_{r}.txt") for t in ("base", "new") for r in (1, 2)}
for key in runs[("new", 1)]:
    b = [runs[("base", r)].get(key) for r in (1, 2)]
    n = [runs[("new", r)].get(key) for r in (1, 2)]
    f = lambda v: "—" if v is None else f"{v:.1f}"
    print(f"{key[0]:40s} {key[1][:34]:34s} {f(b[0]):>9s} {f(b[1]):>9s} → {f(n[0]):>9s} {f(n[1]):>9s}")
PY
