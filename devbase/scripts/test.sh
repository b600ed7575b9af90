#!/usr/bin/env bash
# Sets up, builds the CI variant set (codegen/variants/ci.toml) and runs every test: host GTests,
# GPU GTests (reported as skipped without a GPU), generator and binding pytest, generated/ freshness.
# Usage: scripts/test.sh [build-dir]      (ATTNFORGE_JOBS=N to change build parallelism)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PATH:/usr/local/cuda/bin"
build=${1:-build-ci}
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DATTNFORGE_VARIANTS="$PWD/codegen/variants/ci.toml" ${ATTNFORGE_CMAKE_ARGS:-}
cmake --build "$build" -j "${ATTNFORGE_JOBS:-$(nproc)}"
cd "$build"
ctest --output-on-failure -j "${ATTNFORGE_JOBS:-$(nproc)}" 2>&1 | tee ctest.log
echo
grep -E "tests passed|Skipped|Failed" ctest.log | tail -n 30 || true
n_skip=$(grep -c "\*\*\*Skipped" ctest.log || true)
if [ "$n_skip" != 0 ] && ! nvidia-smi -L >/dev/null 2>&1; then
  echo "note: $n_skip tests were SKIPPED because this machine has no CUDA GPU (run scripts/gpu-check.sh on one)."
fi
