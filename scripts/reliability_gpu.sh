#!/usr/bin/env bash
# The reliability suites on a GPU machine, in one time budget: build the gpu preset (variant filter
# below), then the randomized sweep (Sweep.*) followed by the edge cases (EdgeCases.*), with
# scripts/sanitize.sh running beside them. Logs and summaries go to $OUT (else build-gpu/reliability).
#
# Env: RELIABILITY_BUDGET seconds for everything (default 450), ATTNFORGE_VARIANT_FILTER (default: every
#      backend and mask, bf16 at both head dims, f16 at head dim 64), ATTNFORGE_SWEEP_CASES / _SEED.
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
cmake --preset gpu -DATTNFORGE_VARIANT_FILTER="$filter" -DATTNFORGE_BUILD_BENCH=OFF >"$out/configure.log" 2>&1 ||
  { tail -n 30 "$out/configure.log"; exit 1; }
grep -E "variants from" "$out/configure.log"
if ! timeout $((budget - SECONDS - 120)) cmake --build build-gpu --target attnforge_gpu_tests >"$out/build.log" 2>&1; then
  echo "build failed or timed out after ${SECONDS}s"
  grep -E "error|FAILED" "$out/build.log" | head -n 30
  tail -n 20 "$out/build.log"
  exit 1
fi
echo "build: ${SECONDS}s"
left=$((budget - SECONDS - 10))
t_end=$((SECONDS + left))
tests=build-gpu/tests/attnforge_gpu_tests

# Sweep, then edge cases (one process each: a lost CUDA context in one does not spoil the other).
(
  timeout $((left * 45 / 100)) stdbuf -oL "$tests" --gtest_filter='Sweep.*' >"$out/sweep.log" 2>&1
  echo "sweep rc=$?" >>"$out/rc.txt"
  timeout $((t_end - SECONDS - 5)) stdbuf -oL "$tests" --gtest_filter='EdgeCases.*' >"$out/edge.log" 2>&1
  echo "edge rc=$?" >>"$out/rc.txt"
) &
suites=$!
ATTNFORGE_SANITIZE_OUT="$out/sanitize" ATTNFORGE_SANITIZE_TIMEOUT=$((left - 25)) scripts/sanitize.sh build-gpu \
  >"$out/sanitize.log" 2>&1
echo "sanitize rc=$?" >>"$out/rc.txt"
wait $suites

echo "== rc"; cat "$out/rc.txt"
echo "== sweep"; grep -E "^\[ sweep|FAILED|PASSED|SKIPPED|Failure" "$out/sweep.log" | head -n 40
echo "== edge"; grep -E "^\[ edge|^\[  |Failure|Expected|Which is|differs|changed|not " "$out/edge.log" | head -n 80
echo "== sanitize"; cat "$out/sanitize.log" | head -n 60
echo "total ${SECONDS}s"
