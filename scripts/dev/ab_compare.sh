# Sourced by lib_ab.sh, sustained_ab.sh and env_ab.sh: the build of one tree of an A/B (ab_build), and one
# timed pass of bench/compare_torch.py (--grid train --impls
# af-flash,torch-cudnn, 400 ms warm-up per row) for one side of an A/B, into $OUT/cmp_<side>_<rep>/, the
# layout lib_ab_compare_table.py reads.
# AB_TIMEOUT: seconds per pass (default 200).
#   ab_compare SIDE REP LIBRARY PYTHONPATH ENV_ASSIGNMENT [compare_torch.py arguments]   (ENV_ASSIGNMENT: "" or VAR=value)
ab_compare() {
  local side=$1 rep=$2 lib=$3 pypath=$4 assign=$5
  shift 5
  local d="$OUT/cmp_${side}_$rep"
  mkdir -p "$d"
  env ${assign:+"$assign"} ATTNFORGE_LIBRARY="$lib" PYTHONPATH="$pypath" timeout "${AB_TIMEOUT:-200}" \
    python3 bench/compare_torch.py --grid train --impls af-flash,torch-cudnn "$@" --out "$d" > "$d.log" 2>&1 ||
    { echo "compare $side $rep${assign:+ ($assign)} failed:"; tail -3 "$d.log"; }
}

# One tree of an A/B built at BUILD: gpu.toml filtered by $FILTER, the new side with $NEW_CUDA_FLAGS (nvcc flags,
# e.g. a dev switch), TARGET (default all) with JOBS jobs; the log in $OUT/build_SIDE.log. ab_built then says
# which trees did not build.
#   ab_build SIDE SRC BUILD JOBS [TARGET]        ab_built BUILD_PREFIX SIDE...   (BUILD = BUILD_PREFIX_SIDE)
ab_build() {
  local side=$1 src=$2 build=$3 jobs=$4 target=${5:-} extra=()
  [ "$side" = new ] && [ -n "${NEW_CUDA_FLAGS:-}" ] && extra=(-DCMAKE_CUDA_FLAGS="$NEW_CUDA_FLAGS")
  { cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${extra[@]}" \
      -DATTNFORGE_VARIANTS="$src/codegen/variants/gpu.toml" -DATTNFORGE_VARIANT_FILTER="${FILTER:?variant globs}" &&
    cmake --build "$build" -j "$jobs" ${target:+--target "$target"}; } > "$OUT/build_$side.log" 2>&1
}
ab_built() {
  local prefix=$1 side ok=0
  shift
  for side in "$@"; do
    [ -f "${prefix}_$side/libattnforge.so" ] || { echo "$side did not build"; tail -20 "$OUT/build_$side.log"; ok=1; }
  done
  return $ok
}
