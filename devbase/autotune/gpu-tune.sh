#!/usr/bin/env bash
# The autotune run on a GPU machine, in one command: build the tuner with the training grid's
# variants only, run the selection / tune-cache / estimate tests there, the select-overhead
# benchmark, then attnforge-tune over the training grid with --verify (auto within 5% of the best
# with the cache, within 25% on heuristics only). Everything lands in $OUT (at most 6 files).
#
#   OUT=/some/dir autotune/gpu-tune.sh          (device call: carry [".deps"], see bench/README.md)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
t0=$SECONDS
export BUILD_DIR=${BUILD_DIR:-build-gpu}
export PACK=0  # gpu-check.sh leaves its logs in $OUT/gpu-check; packed once at the end
# bf16, D ∈ {64, 128}, none / causal: every backend's variants the training grid can use.
filter_for() {  # backends... → ATTNFORGE_VARIANT_FILTER
  local f="" b
  for b in "$@"; do
    if [ "$b" = unfused ]; then f+="unfused_*_bf16_hdany_none_*;unfused_*_bf16_hdany_causal_*;"
    else f+="${b}_*_bf16_hd64_none_*;${b}_*_bf16_hd64_causal_*;${b}_*_bf16_hd128_none_*;${b}_*_bf16_hd128_causal_*;"; fi
  done
  echo "${f%;}"
}
backends=(unfused fused flash)
export ATTNFORGE_VARIANT_FILTER=${ATTNFORGE_VARIANT_FILTER:-$(filter_for "${backends[@]}")}
export BUILD_TARGETS=${BUILD_TARGETS:-"attnforge-tune attnforge-select-bench attnforge_host_tests attnforge_tune_tests"}

OUT=$OUT scripts/gpu-check.sh deps build
if [ $? -ne 0 ]; then
  # A backend whose work in progress does not compile must not stop the others being tuned.
  bad=$(grep -oE "runtime/kernels/(fused|flash|unfused)/" "$OUT/gpu-check/build.log" | head -n 1 | cut -d/ -f3)
  if [ -n "$bad" ]; then
    keep=()
    for b in "${backends[@]}"; do [ "$b" = "$bad" ] || keep+=("$b"); done
    export ATTNFORGE_VARIANT_FILTER=$(filter_for "${keep[@]}")
    echo "== build failed in $bad: building without it (${keep[*]})"
    cp "$OUT/gpu-check/build.log" "$OUT/gpu-check/build-failed-$bad.log"
    OUT=$OUT scripts/gpu-check.sh build
  fi
fi
export GTEST_SUITES=${GTEST_SUITES:-host}  # "host gpu" adds TuneSelectGpu (build attnforge_gpu_tests too)
GTEST_FILTER=${GTEST_FILTER:-'Select*:TuneCache*:TuneKey*:Estimate*:TuneSelectGpu*'} OUT=$OUT scripts/gpu-check.sh tests
export LD_LIBRARY_PATH=/tmp/attnforge-deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
B=$BUILD_DIR
echo "== build + tests took $((SECONDS - t0)) s"

{
  echo "### attnforge_tune_tests"
  "$(find "$B" -name attnforge_tune_tests -type f | head -n 1)" 2>&1 | tail -n 3
  echo "### attnforge-select-bench (host overhead of a cached selection; target < 2 us)"
  "$B/attnforge-select-bench" --benchmark_min_time=0.2 2>&1
} | tee "$OUT/select_bench.txt"

# The tuner writes its own cache file in $OUT (never the user's), and auto reads that one.
export ATTNFORGE_TUNE_CACHE=$OUT/tune.json
# A variant that faults kills the CUDA context: the tuner then exits 3 naming it, having saved every
# finished shape; the next attempt excludes it and resumes.
excl=()
for attempt in 1 2 3; do
  left=$((${TIME_LIMIT:-480} - SECONDS))
  echo "== attnforge-tune (training grid, --verify), attempt $attempt, ${left}s left"
  timeout "$left" "$B/attnforge-tune" --grid autotune/grids/training.toml --verify --resume \
    --reps "${REPS:-10}" --report "$OUT/tune_training.md" ${excl[@]+"${excl[@]}"} ${TUNE_ARGS:-} 2>&1 |
    tee -a "$OUT/tune_training.log"
  rc=${PIPESTATUS[0]}
  echo "== attnforge-tune exit $rc"
  [ "$rc" -eq 3 ] || break
  crashed=$(grep -o "^CRASHED: [A-Za-z0-9_]*" "$OUT/tune_training.log" | tail -n 1 | cut -d' ' -f2)
  [ -n "$crashed" ] || break
  excl+=(--exclude "$crashed")
done
tar czf "$OUT/gpu-check.tar.gz" -C "$OUT" gpu-check && rm -rf "$OUT/gpu-check"
echo "== done in $((SECONDS - t0)) s"
