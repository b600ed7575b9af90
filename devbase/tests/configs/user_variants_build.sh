#!/usr/bin/env bash
# Builds attnforge from tests/configs/user_variants.toml (head dim 80 for unfused, a prefix-LM mask
# kind: TOML only) into its own build tree and runs the UserVariants tests there.
# Usage: user_variants_build.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$src" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DATTNFORGE_BUILD_BENCH=OFF \
      -DATTNFORGE_VARIANTS="$src/tests/configs/user_variants.toml" >/dev/null
cmake --build "$build" -j "${ATTNFORGE_JOBS:-2}" --target attnforge_host_tests attnforge_gpu_tests
"$build/tests/attnforge_host_tests" --gtest_filter='UserVariants*'
"$build/tests/attnforge_gpu_tests" --gtest_filter='UserVariants*'
