#!/usr/bin/env bash
# The main job: set up, generate, build, and on a GPU machine run the backends side by side with
# PyTorch SDPA and print the table. Without a GPU: say so, build the CI set, print the variant table.
# Usage: scripts/main.sh          (ATTNFORGE_SET=default|gpu|ci picks the variant TOML to build)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PATH:/usr/local/cuda/bin"
has_gpu=0; nvidia-smi -L >/dev/null 2>&1 && has_gpu=1
set_name=${ATTNFORGE_SET:-$([ $has_gpu = 1 ] && echo gpu || echo ci)}
build=build-$set_name
python3 -m codegen --check || python3 -m codegen
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DATTNFORGE_VARIANTS="$PWD/codegen/variants/$set_name.toml" ${ATTNFORGE_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "${ATTNFORGE_JOBS:-$(nproc)}"
if [ $has_gpu = 1 ]; then
  ATTNFORGE_LIBRARY="$PWD/$build/libattnforge.so" PYTHONPATH="$PWD/python" \
    python3 bench/compare_torch.py --quick --out "$build/compare"
else
  echo
  echo "No CUDA GPU on this machine: built the '$set_name' variant set; nothing can be timed here."
  echo "Variants of codegen/variants/default.toml (backend, direction, dtype, head dim, mask, tile):"
  python3 -m codegen --table
fi
