#!/usr/bin/env bash
# compute-sanitizer over every compiled variant (GPU machine): memcheck, racecheck, initcheck and
# synccheck, each with --error-exitcode=1, on the two small shapes of tests/sanitize_driver.cpp.
# The four tools run concurrently, each split over ATTNFORGE_SANITIZE_SHARDS processes (default 3);
# logs and a summary (markdown) go to the output directory.
#
# Usage: scripts/sanitize.sh [build-dir] [name-substring]
#   build-dir       a configured build with libattnforge (default build-gpu)
#   name-substring  only variants whose names contain it (default: all)
# Env: ATTNFORGE_SANITIZE_TOOLS (default "memcheck racecheck initcheck synccheck"),
#      ATTNFORGE_SANITIZE_TIMEOUT seconds per tool (default 420), ATTNFORGE_SANITIZE_OUT (default <build>/sanitize).
# Exit status: 0 iff every tool finished with no finding.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
filter=${2:-}
tools=${ATTNFORGE_SANITIZE_TOOLS:-memcheck racecheck initcheck synccheck}
limit=${ATTNFORGE_SANITIZE_TIMEOUT:-420}
out=${ATTNFORGE_SANITIZE_OUT:-$build/sanitize}
mkdir -p "$out"
export PATH="$PATH:/usr/local/cuda/bin"
cs=$(command -v compute-sanitizer || true)
for c in /usr/local/cuda/compute-sanitizer/compute-sanitizer /usr/local/cuda/bin/compute-sanitizer \
         "$(dirname "$(command -v nvcc 2>/dev/null || echo /x/x)")/../compute-sanitizer/compute-sanitizer"; do
  [ -z "$cs" ] && [ -x "$c" ] && cs=$c
done
[ -n "$cs" ] || { echo "sanitize: compute-sanitizer not found (CUDA toolkit bin/)"; exit 2; }

# The driver: the CMake target when tests/CMakeLists.txt adds tests/sanitize, else built here
# against the build's libattnforge.
driver=$build/tests/sanitize/attnforge_sanitize_driver
if [ ! -x "$driver" ]; then
  cmake --build "$build" --target attnforge_sanitize_driver >/dev/null 2>&1 || true
fi
if [ ! -x "$driver" ]; then
  cmake --build "$build" --target attnforge >/dev/null || { echo "sanitize: cannot build libattnforge in $build"; exit 2; }
  gen=$build/generated; [ -f "$gen/variants.hpp" ] || gen=generated
  cuda_root=$(dirname "$(dirname "$(command -v nvcc)")")
  driver=$build/attnforge_sanitize_driver
  c++ -std=c++20 -O1 -g tests/sanitize_driver.cpp -Iruntime/include -Iruntime/src -Iruntime/kernels -Itests/common -I"$gen" \
      -I"$cuda_root/include" -L"$build" -lattnforge -Wl,-rpath,"$PWD/$build" -L"$cuda_root/lib64" -lcudart \
      -Wl,-rpath,"$cuda_root/lib64" -o "$driver" || { echo "sanitize: driver build failed"; exit 2; }
fi
echo "sanitize: driver $driver, tools: $tools, filter '${filter}', ${limit}s per tool"

# Each tool in $shards processes (every shards-th variant each), all concurrently.
shards=${ATTNFORGE_SANITIZE_SHARDS:-3}
pids=()
for tool in $tools; do
  for ((s = 0; s < shards; ++s)); do
    extra=()
    [ "$tool" = racecheck ] && extra=(--racecheck-report hazard)
    ( start=$(date +%s)
      timeout "$limit" "$cs" --tool "$tool" --error-exitcode=1 --print-limit 2000 "${extra[@]}" "$driver" "$filter" \
        "$s/$shards" >"$out/$tool.$s.log" 2>&1
      rc=$?
      # A shard the filter left empty makes no CUDA call, which the sanitizer reports as an error.
      grep -q "^sanitize driver: 0 runs, 0 failed" "$out/$tool.$s.log" &&
        { echo "shard $s/$shards: no variant of the filter (not run)" >"$out/$tool.$s.log"; rc=0; }
      echo "$rc $(( $(date +%s) - start ))" >"$out/$tool.$s.rc" ) &
    pids+=($!)
  done
done
for p in "${pids[@]}"; do wait "$p"; done
for tool in $tools; do  # one log and one status per tool: the worst shard's exit, the slowest shard's time
  cat "$out/$tool".*.log >"$out/$tool.log"
  rc=0; secs=0
  for f in "$out/$tool".*.rc; do
    read -r r t <"$f"
    [ "$r" != 0 ] && { [ "$rc" = 0 ] || [ "$r" = 124 ]; } && rc=$r
    [ "$t" -gt "$secs" ] && secs=$t
  done
  echo "$rc $secs" >"$out/$tool.rc"
done

status=0
{
  echo "| tool | exit | seconds | driver runs | findings (ERROR SUMMARY) |"
  echo "|---|---|---|---|---|"
  for tool in $tools; do
    read -r rc secs <"$out/$tool.rc"
    runs=$(grep -c '^ok ' "$out/$tool.log" || true)
    failed=$(grep -c '^FAIL ' "$out/$tool.log" || true)
    summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/$tool.log" | sed 's/^========= //' | sort | uniq -c |
              sed 's/^ *//' | paste -sd ';' -)
    [ "$rc" = 124 ] && summary="TIMEOUT after ${limit}s ($summary)"
    echo "| $tool | $rc | $secs | $runs ok, $failed failed | ${summary:-no summary} |"
    [ "$rc" = 0 ] || status=1
  done
} | tee "$out/summary.md"
# Distinct (finding, kernel) pairs: one flooding kernel must not hide the others.
for tool in $tools; do
  if grep -qE "^========= (Invalid|Uninitialized|Race|Barrier|Error|Program hit)" "$out/$tool.log"; then
    echo "--- $tool: distinct findings (count, kind, kernel) ---"
    awk '/^========= (Invalid|Uninitialized|Race|Barrier|Error|Program hit)/ { kind = $0; sub(/^========= /, "", kind); next }
         kind != "" && /^=========     at / { k = $0; sub(/^=========     at /, "", k); sub(/\(attnforge::Params.*/, "", k);
                                               sub(/^void /, "", k); print kind " | " substr(k, 1, 280); kind = "" }' \
      "$out/$tool.log" | sed -E 's/ of size [0-9]+ bytes//' | sort | uniq -c | sort -rn | head -n 20
  fi
done
for tool in $tools; do
  if grep -qE "^========= (Invalid|Uninitialized|Race|Barrier|Error|Program hit)" "$out/$tool.log"; then
    echo "--- $tool: first findings ---"
    grep -E -A6 "^========= (Invalid|Uninitialized|Race|Barrier|Error|Program hit)" "$out/$tool.log" | head -n 40
  fi
  grep -E "^FAIL " "$out/$tool.log" | head -n 5
done
exit $status
