#!/usr/bin/env bash
# The reliability suites on a GPU machine, in one time budget: build the gpu preset (variant filter
# below), then the randomized sweep (Sweep.*), the edge cases (EdgeCases.*) and scripts/sanitize.sh
# side by side. Logs and summaries go to $OUT (else build-gpu/reliability).
#
# Env: RELIABILITY_BUDGET seconds for everything (default 450), ATTNFORGE_VARIANT_FILTER (default: every
#      backend and mask, bf16 at both head dims, f16 at head dim 64), ATTNFORGE_SWEEP_CASES / _SEED,
#      RELIABILITY_REUSE=1 (build in an existing build-gpu, whatever its filter), RELIABILITY_SANITIZE=0.
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${RELIABILITY_BUDGET:-450}
out=${OUT:-build-gpu/reliability}
mkdir -p "$out"
filter=${ATTNFORGE_VARIANT_FILTER:-"unfused_*;fused_*_bf16_*;flash_*_bf16_*;fused_*_f16_hd64_*;flash_*_f16_hd64_*"}
export PATH="$PATH:/usr/local/cuda/bin"

# Build dependencies missing system-wide come from .deps/*.deb (as scripts/gpu-check.sh does).
deps=/tmp/attnforge-deps
if [ ! -f /usr/include/boost/hana.hpp ] || [ ! -f /usr/include/gtest/gtest.h ] || [ ! -f /usr/include/nlohmann/json.hpp ]; then
  mkdir -p $deps
  for deb in .deps/*.deb; do [ -f "$deb" ] && dpkg -x "$deb" $deps; done
  export CMAKE_PREFIX_PATH="$deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CPATH="$deps/usr/include${CPATH:+:$CPATH}"
fi

{ nvidia-smi -L; nvcc --version | tail -n 1; git log --oneline -1; } >"$out/info.txt" 2>&1
if [ "${RELIABILITY_REUSE:-0}" = 1 ] && [ -f build-gpu/CMakeCache.txt ]; then
  # a warm machine's build-gpu (its own variant filter): only the test binary is brought up to date
  echo "reusing build-gpu: $(grep -E '^ATTNFORGE_VARIANT(S|_FILTER)' build-gpu/CMakeCache.txt | tr '\n' ' ')"
else
  cmake --preset gpu -DATTNFORGE_VARIANT_FILTER="$filter" -DATTNFORGE_BUILD_BENCH=OFF >"$out/configure.log" 2>&1 ||
    { tail -n 30 "$out/configure.log"; exit 1; }
  grep -E "variants from" "$out/configure.log"
fi
if ! timeout $((budget - SECONDS - ${RELIABILITY_RUN_MIN:-120})) cmake --build build-gpu --target attnforge_gpu_tests >"$out/build.log" 2>&1; then
  echo "build failed or timed out after ${SECONDS}s"
  grep -E "error|FAILED" "$out/build.log" | head -n 30
  tail -n 20 "$out/build.log"
  exit 1
fi
echo "build: ${SECONDS}s"
left=$((budget - SECONDS - 10))
tests=build-gpu/tests/attnforge_gpu_tests

# Sweep, edge cases and sanitizers side by side (one process each: a lost CUDA context in one does
# not spoil the others), each stopped at the end of the budget.
( timeout "$left" stdbuf -oL "$tests" --gtest_filter='Sweep.*' >"$out/sweep.log" 2>&1
  echo "sweep rc=$?" >>"$out/rc.txt" ) &
p1=$!
( timeout "$left" stdbuf -oL "$tests" --gtest_filter='EdgeCases.*' >"$out/edge.log" 2>&1
  echo "edge rc=$?" >>"$out/rc.txt" ) &
p2=$!
if [ "${RELIABILITY_SANITIZE:-1}" = 1 ]; then
  ATTNFORGE_SANITIZE_OUT="$out/sanitize" ATTNFORGE_SANITIZE_TIMEOUT=$((left - 15)) scripts/sanitize.sh build-gpu \
    "${RELIABILITY_SANITIZE_FILTER:-}" >"$out/sanitize.log" 2>&1
  echo "sanitize rc=$?" >>"$out/rc.txt"
fi
wait $p1 $p2

echo "== rc"; cat "$out/rc.txt"
echo "== sweep"; grep -E "^\[ sweep|FAILED|PASSED|SKIPPED|Failure" "$out/sweep.log" | head -n 40
echo "== edge"; grep -E "^\[ edge|^\[  |Failure|Expected|Which is|differs|changed|not " "$out/edge.log" | head -n 80
echo "== sanitize"; cat "$out/sanitize.log" | head -n 60
echo "total ${SECONDS}s"
