#!/usr/bin/env bash
# Device run: A/B of one library build under two or three values of an environment variable that the
# library reads per call (e.g. ATTNFORGE_FLASH_BWD_OVERLAP), through the binding: bench/compare_torch.py
# (--grid train --impls af-flash,torch-cudnn, 400 ms warm-up per row) for each value in turn, REPS times
# (default 2), then lib_ab_compare_table.py's table (values in the order given as base / new / alt).
#   VAR=ATTNFORGE_FLASH_BWD_OVERLAP VALUES='none all dq' BUILD_DIR=build-gpu OUT=... \
#     bash scripts/dev/env_ab.sh --head-dims 128 --dirs bwd --seqlens 2048,16384
set -u
source "$(dirname "$0")/ab_compare.sh"
AB_TIMEOUT=${AB_TIMEOUT:-300}
: "${VAR:?name of the environment variable}" "${VALUES:?two or three values}" "${OUT:?}"
lib=${BUILD_DIR:-build-gpu}/libattnforge.so
[ -f "$lib" ] || { echo "env_ab: no $lib"; exit 1; }
read -r -a vals <<<"$VALUES"
trees=(base new alt)
echo "env_ab: $VAR = ${vals[*]} as ${trees[*]:0:${#vals[@]}}"
for rep in $(seq 1 "${REPS:-2}"); do
  for i in "${!vals[@]}"; do ab_compare "${trees[$i]}" "$rep" "$PWD/$lib" "$PWD/python" "$VAR=${vals[$i]}" "$@"; done
done
python3 scripts/dev/lib_ab_compare_table.py "$OUT" | tee "$OUT/ab_table.md"
