# Device run: A/B of library trees through the binding in one call. Builds the base tree (devbase/),
# this tree and, if present, a third one (devalt/) side by side (filtered variants), runs the GPU suites
# of every tree but the base, then times each tree in turn, REPS times (default 2):
#   TIMER=breakdown (default): kernel_breakdown.py, each kernel's µs per shape for all trees;
#   TIMER=compare: bench/compare_torch.py (--grid train --impls af-flash,torch-cudnn, 400 ms warm-up per
#     row, so each side runs at its own sustained clock: the figures the README reports), then the
#     table of lib_ab_compare_table.py, each tree / base ($OUT/ab_table.md).
#   rm -rf devbase && mkdir devbase && git archive <base rev> | tar -x -C devbase   (untracked: travels)
#   optional: rm -rf devalt && mkdir devalt && git archive <other rev> | tar -x -C devalt
#   OUT=... bash scripts/dev/lib_ab.sh [kernel_breakdown.py arguments, e.g. --dirs bwd --seqs 2048,16384]
#   TIMER=compare FILTER='flash_fwd_bf16_hd128_*' OUT=... bash scripts/dev/lib_ab.sh [compare_torch.py
#     arguments, e.g. --head-dims 128 --dirs fwd --seqlens 2048,4096]
# Results: the table on stdout (and $OUT/ab_table.md for TIMER=compare); builds, tests and every run's raw
# output in $OUT/lib_ab_logs.tgz (the device returns a limited number of files).
# FILTER: variant globs (default: the bf16 D 64 / 128 flash backward and the forwards its graph needs;
# keep every backward tile of a head dim: a build of the sm90a tiles alone sends short rows and
# deterministic calls to paths the library would not take). GTEST_FILTER: the suites (default the flash
# ones and the flash sweep; TEST_TIMEOUT: seconds, default 260). TIMER_ENV: one VAR=value for the timed runs only (not the tests), e.g.
# ATTNFORGE_FLASH_BWD_PATH=mma to time the mma.sync backward. TEST_TREES: the trees whose tests run
# (default every tree but the base; TEST_TREES=new when alt's changes are a subset of new's; empty: none).
# NEW_CUDA_FLAGS: nvcc flags for the new tree's build only (e.g. -DATTNFORGE_FLASH_FWD_CLUSTER=1: a dev switch
# A/B'd against the same tree in devbase). NEW_TREE: the "new" tree's directory (default this checkout); AB_BUILD: the build directories' prefix (default
# /tmp/ab: /tmp/ab_base, /tmp/ab_new, …), so that a second A/B in the same call builds beside the first.
# SWEEP_BACKEND: the backend of the Sweep suite (default flash). TIMER=compare's table reads the first af-* and the
# first torch-* impl of the compare arguments (e.g. --impls af-fused,torch-flash).
set -u
export PATH=$PATH:/usr/local/cuda/bin
source "$(dirname "$0")/ab_compare.sh"
FILTER=${FILTER:-'flash_fwd_bf16_hd64_*_m128n128w12s2_sm90a;flash_fwd_bf16_hd128_*_m128n128w12s2_sm90a;flash_bwd_bf16_hd64_*;flash_bwd_bf16_hd128_*'}
[ -d devbase ] || { echo "lib_ab: no devbase/ (see the header)"; exit 2; }
trees=(base new)
[ -d devalt ] && trees+=(alt)
src_of() { case $1 in base) echo "$PWD/devbase" ;; alt) echo "$PWD/devalt" ;; *) echo "${NEW_TREE:-$PWD}" ;; esac; }
B=${AB_BUILD:-/tmp/ab}
jobs=$((16 / ${#trees[@]}))
# The device returns only so many files: every log and per-run result goes into one archive at the end.
pack_logs() {
  (cd "$OUT" && shopt -s nullglob && f=(*.log cmp_*/ bd_*.txt) && [ ${#f[@]} -gt 0 ] &&
   tar czf lib_ab_logs.tgz --remove-files -- "${f[@]}") || true
}
for t in "${trees[@]}"; do ab_build $t "$(src_of $t)" "${B}_$t" $jobs & done
wait
ab_built "$B" "${trees[@]}" || exit 1
echo "built $(date +%T)"
# A tree whose tests time out (a kernel that hangs) is not timed: each of its timed runs would only wait out
# its own timeout (the thirty-fifth session lost a whole device call that way).
hung=()
for t in ${TEST_TREES-${trees[@]}}; do
  [ $t = base ] && continue
  tests=$(find "${B}_$t" -name attnforge_gpu_tests -type f | head -1)
  GTEST_FILTER=${GTEST_FILTER:-'*Flash*:Sweep.*'} ATTNFORGE_SWEEP_BACKEND=${SWEEP_BACKEND:-flash} timeout "${TEST_TIMEOUT:-260}" "$tests" > "$OUT/tests_$t.log" 2>&1
  rc=$?
  # GTest's "PASSED n" excludes skipped tests, which "SKIPPED n tests" counts (the sweep skips in a build without
  # backward variants).
  echo "tests ($t) rc=$rc"; grep -E '^\[  (PASSED|FAILED)|FAILED|cases in|^\[  SKIPPED \] [0-9]+ test' "$OUT/tests_$t.log" | head
  [ $rc -eq 124 ] && hung+=("$t") && echo "lib_ab: $t timed out in its tests; its last lines:" && tail -3 "$OUT/tests_$t.log"
  # A suite skips a case whose variants the filter left out (Fused.* and Sweep.* run forward and backward): say so
  # when skips outnumber passes, since the timed kernels were then not tested (thirty-sixth session).
  passed=$(grep -oE '^\[  PASSED  \] [0-9]+' "$OUT/tests_$t.log" | grep -oE '[0-9]+$' || echo 0)
  skipped=$(grep -oE '^\[  SKIPPED \] [0-9]+ test' "$OUT/tests_$t.log" | grep -oE '[0-9]+' || echo 0)
  [ "${skipped:-0}" -gt "${passed:-0}" ] &&
    echo "lib_ab: $t: $skipped tests skipped against $passed passed; does FILTER hold what the suites need (e.g. fused_bwd_* for Fused.*)?"
done
if [ ${#hung[@]} -gt 0 ]; then
  trees=($(for t in "${trees[@]}"; do [[ " ${hung[*]} " == *" $t "* ]] || echo "$t"; done))
  echo "lib_ab: not timed: ${hung[*]}"
fi
if [ "${TIMER:-breakdown}" = compare ]; then
  for rep in $(seq 1 "${REPS:-2}"); do
    for t in "${trees[@]}"; do ab_compare "$t" "$rep" "${B}_$t/libattnforge.so" "$(src_of $t)/python" "${TIMER_ENV:-}" "$@"; done
  done
  python3 scripts/dev/lib_ab_compare_table.py "$OUT" | tee "$OUT/ab_table.md"
  pack_logs
  exit 0
fi
for rep in $(seq 1 "${REPS:-2}"); do
  for t in "${trees[@]}"; do
    env ${TIMER_ENV:+"$TIMER_ENV"} ATTNFORGE_LIBRARY="${B}_$t/libattnforge.so" PYTHONPATH="$(src_of $t)/python" \
      timeout 120 python3 scripts/dev/kernel_breakdown.py "$@" > "$OUT/bd_${t}_$rep.txt" 2>&1 || echo "breakdown $t $rep failed"
  done
done
# Per shape and kernel: each tree's µs (REPS runs); attnforge's kernels only.
python3 - "$OUT" "${REPS:-2}" "${trees[@]}" <<'PY'
import collections, re, sys
out, reps, trees = sys.argv[1], range(1, int(sys.argv[2]) + 1), sys.argv[3:]
def read(path):
    rows, shape, impl, tile = collections.OrderedDict(), None, "", ""
    for line in open(path):
        if line.startswith("=="):
            shape = line.strip("= \n")
        elif re.match(r"\s+(af\S*|cudnn)\s+total", line):
            impl = line.split()[0]
            tile = impl[3:] + " " if impl.startswith("af.") else ""  # --fwd-tiles: one row per tile
            if impl.startswith("af"):
                rows[(shape, tile + "total")] = float(line.split()[2])
        elif impl.startswith("af") and re.match(r"\s+[0-9.]+ µs", line):
            name = re.sub(r"<.*", "", line.split("µs", 1)[1].strip()).replace("void ", "").split("::")[-1]
            rows[(shape, tile + name)] = float(line.split()[0])
    return rows
runs = {(t, r): read(f"{out}/bd_{t}_{r}.txt") for t in trees for r in reps}
keys = list(dict.fromkeys(k for run in runs.values() for k in run))  # every tree's rows: one may have failed
f = lambda v: "—" if v is None else f"{v:.1f}"
print(f"{'shape':40s} {'kernel':50s} " + " → ".join(f"{t + ' ×' + str(len(reps)):>{10 * len(reps) - 1}s}" for t in trees))
for key in keys:
    cols = [" ".join(f"{f(runs[(t, r)].get(key)):>9s}" for r in reps) for t in trees]
    print(f"{key[0]:40s} {key[1][:50]:50s} " + " → ".join(cols))
PY
pack_logs
