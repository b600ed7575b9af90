# Sourced by lib_ab.sh and env_ab.sh: one timed pass of bench/compare_torch.py (--grid train --impls
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
