#!/usr/bin/env bash
# The one script the team runs on the GPU machine: configure + build (Ninja, Release), GTest suites,
# pytest of the binding, attnforge-bench, compare_torch.py and the plots; logs under $OUT and a short
# summary table printed last. Sections run in the order given (default: all of them).
#
#   scripts/gpu-check.sh [deps] [build] [tests] [pytest] [bench] [compare] [plot]
#
# Environment (all optional):
#   OUT                       where logs and results go (default ./gpu-out)
#   BUILD_DIR                 build tree (default build-gpu)
#   ATTNFORGE_VARIANTS        variant TOML passed to CMake (-DATTNFORGE_VARIANTS=...)
#   ATTNFORGE_VARIANT_FILTER  ';'-separated globs of variant names to compile (-DATTNFORGE_VARIANT_FILTER=...)
#   ATTNFORGE_CMAKE_ARGS      more CMake arguments;  BUILD_TARGETS: ninja targets (default: all)
#   GTEST_FILTER              read by GTest itself;   GTEST_SUITES: "host gpu" (default both)
#   PYTEST_ARGS               default "-q -rs tests/python"
#   BENCH_FILTER, BENCH_MIN_TIME   attnforge-bench --benchmark_filter / --benchmark_min_time (seconds)
#   COMPARE_ARGS              compare_torch.py arguments (default --quick)
#   EXPORT_BIN=1              also bring back libattnforge.so + attnforge-bench as $OUT/bin.tar.gz, so
#                             a later call can carry them (BUILD_DIR=that folder) and skip the build
#   TIME_BUDGET=SECONDS       stop starting sections after this many seconds and give each section
#                             only what is left (timeout), so the results are still packed in time
#   CLOCK_MS                  nvidia-smi sampling period during compare (default 250; clocks.csv)
#   PACK=0                    leave the logs unpacked (default: pack them into one archive, since the
#                             device tool brings back at most 8 files from $OUT)
# Missing build dependencies (Boost headers, nlohmann-json, GTest, Google Benchmark) are unpacked
# from .deps/*.deb when that folder travels (carry [".deps"]): see bench/README.md.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
LOG=$OUT/gpu-check
BUILD=${BUILD_DIR:-build-gpu}
mkdir -p "$LOG"
export PATH="$PATH:/usr/local/cuda/bin"
export PYTHONUNBUFFERED=1

sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(deps build tests pytest bench compare plot)
summary=()
failed=0

# run_section NAME DETAIL_FN CMD...: runs CMD with its output in $LOG/NAME.log; on failure prints
# the log's tail; records status, seconds and DETAIL_FN's one-line detail for the summary.
run_section() {
  local name=$1 detail_fn=$2; shift 2
  local t0=$SECONDS rc limit=()
  if [ -n "${TIME_BUDGET:-}" ]; then
    local left=$((TIME_BUDGET - SECONDS - 20))  # 20 s kept for packing the results
    if [ $left -lt 10 ]; then
      summary+=("$(printf '%-8s %-5s %6ss  %s' "$name" SKIP 0 "TIME_BUDGET=$TIME_BUDGET s used up")")
      echo "== $name: skipped, TIME_BUDGET used up"
      return 0
    fi
    limit=(timeout -k 5 $left)
  fi
  echo "== $name: $*"
  "${limit[@]}" bash -c "$*" >"$LOG/$name.log" 2>&1
  rc=$?
  [ $rc -eq 124 ] && echo "(timed out: TIME_BUDGET)" >>"$LOG/$name.log"
  local detail
  detail=$($detail_fn "$rc" 2>/dev/null | head -c 160)
  if [ $rc -eq 0 ]; then
    summary+=("$(printf '%-8s %-5s %6ss  %s' "$name" ok $((SECONDS - t0)) "$detail")")
  else
    failed=1
    summary+=("$(printf '%-8s %-5s %6ss  rc=%s %s' "$name" FAIL $((SECONDS - t0)) "$rc" "$detail")")
    echo "---- $name failed (rc=$rc); last lines of $LOG/$name.log:"
    tail -n 40 "$LOG/$name.log"
    echo "----"
  fi
  return $rc
}

# ---- info (always) -----------------------------------------------------------------------------
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  commit: ${ATTNFORGE_COMMIT:-$(git describe --always --dirty 2>/dev/null || echo unknown)}"
  nvidia-smi -L 2>&1 | head -4
  nvcc --version 2>&1 | tail -n 1
  cmake --version 2>&1 | head -n 1
  python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())" 2>&1 | tail -n 1
  python3 -c "import matplotlib; print('matplotlib', matplotlib.__version__)" 2>&1 | tail -n 1
} | tee "$LOG/info.txt"

# ---- sections ----------------------------------------------------------------------------------
DEPS_PREFIX=/tmp/attnforge-deps
deps() {
  local missing=()
  [ -f /usr/include/boost/hana.hpp ] || missing+=(boost)
  [ -f /usr/include/nlohmann/json.hpp ] || missing+=(nlohmann-json)
  [ -f /usr/include/gtest/gtest.h ] || missing+=(gtest)
  [ -f /usr/include/benchmark/benchmark.h ] || missing+=(benchmark)
  python3 -c "import jinja2" 2>/dev/null || missing+=(jinja2)
  if [ ${#missing[@]} -eq 0 ]; then echo "all build dependencies installed"; return 0; fi
  echo "missing system-wide: ${missing[*]}"
  if ! ls .deps/*.deb >/dev/null 2>&1; then
    echo "no .deps/*.deb to unpack (carry .deps: see bench/README.md)"; return 1
  fi
  mkdir -p $DEPS_PREFIX
  for deb in .deps/*.deb; do dpkg -x "$deb" $DEPS_PREFIX && echo "unpacked $deb"; done
}
deps_env() {  # the unpacked prefix, if any, for CMake and the loader (also in later calls)
  if [ -d $DEPS_PREFIX/usr ]; then
    export CMAKE_PREFIX_PATH="$DEPS_PREFIX/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    export LD_LIBRARY_PATH="$DEPS_PREFIX/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export CPATH="$DEPS_PREFIX/usr/include${CPATH:+:$CPATH}"
  fi
}
deps_detail() { grep -m1 -E "missing|all build" "$LOG/deps.log"; }

build() {
  local args=(-S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release)
  # Always passed, empty when unset: CMake caches both, and a filter left by an earlier call on a warm
  # machine would otherwise shrink this build silently.
  args+=("-DATTNFORGE_VARIANTS=${ATTNFORGE_VARIANTS:-}" "-DATTNFORGE_VARIANT_FILTER=${ATTNFORGE_VARIANT_FILTER:-}")
  # shellcheck disable=SC2206
  args+=(${ATTNFORGE_CMAKE_ARGS:-})
  cmake "${args[@]}" || return $?
  # shellcheck disable=SC2086
  cmake --build "$BUILD" -j "${JOBS:-$(nproc)}" ${BUILD_TARGETS:+--target $BUILD_TARGETS}
}
build_detail() { grep -m1 -oE "[0-9]+ variants from [^ ]+" "$LOG/build.log"; grep -c "warning" "$LOG/build.log" | sed 's/$/ warning lines/'; }

find_bin() { find "$BUILD" -maxdepth 3 -type f -name "$1" -perm -u+x | head -n 1; }

tests() {
  local rc=0 suite bin
  for suite in ${GTEST_SUITES:-host gpu}; do
    bin=$(find_bin "attnforge_${suite}_tests")
    if [ -z "$bin" ]; then echo "attnforge_${suite}_tests was not built"; rc=1; continue; fi
    echo "### $bin"
    "$bin" --gtest_output="json:$LOG/gtest_$suite.json" || rc=1
  done
  return $rc
}
tests_detail() {
  python3 - "$LOG" <<'PY'
import json, os, sys
parts = []
for suite in ("host", "gpu"):
    path = os.path.join(sys.argv[1], f"gtest_{suite}.json")
    if not os.path.exists(path):
        continue
    d = json.load(open(path))
    results = [t.get("result") for s in d.get("testsuites", []) for t in s.get("testsuite", [])]
    skipped = sum(1 for r in results if r == "SKIPPED")
    parts.append(f"{suite}: {d['tests'] - d['failures'] - skipped} passed, {d['failures']} failed, {skipped} skipped")
print("; ".join(parts))
PY
}

pytest_() {
  # shellcheck disable=SC2086
  ATTNFORGE_LIBRARY="$ROOT/$BUILD/libattnforge.so" PYTHONPATH="$ROOT/python" \
    python3 -m pytest ${PYTEST_ARGS:--q -rs tests/python} --junitxml="$LOG/pytest.xml"
}
pytest_detail() { grep -E "(passed|failed|skipped|error)" "$LOG/pytest.log" | tail -n 1; }

bench() {
  local bin; bin=$(find_bin attnforge-bench)
  if [ -z "$bin" ]; then echo "attnforge-bench was not built (Google Benchmark missing?)"; return 1; fi
  "$bin" --benchmark_filter="${BENCH_FILTER:-^(train/[a-z]+/(fwd|bwd)/D128/S(1024|4096)/|decode/[a-z]+/fwd/D128/Sq1_Sk8192/)}" \
         --benchmark_min_time="${BENCH_MIN_TIME:-0.2}" --benchmark_counters_tabular=true \
         --benchmark_out="$LOG/bench.json" --benchmark_out_format=json
}
bench_detail() {
  python3 - "$LOG/bench.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))["benchmarks"]
err = [x for x in b if x.get("error_occurred")]
print(f"{len(b) - len(err)} timed, {len(err)} skipped with a message")
PY
}

# The SM clock, temperature and power every CLOCK_MS (250) ms while the comparison runs ($LOG/clocks.csv);
# bench/clocks.py appends them per row to compare.md, so that a row timed on a power-capped or hotter,
# slower GPU shows (every implementation of a row runs back to back).
compare() {
  local smi=
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,temperature.gpu,power.draw \
      --format=csv,noheader,nounits -lms "${CLOCK_MS:-250}" >"$LOG/clocks.csv" 2>/dev/null &
    smi=$!
  fi
  # shellcheck disable=SC2086
  ATTNFORGE_LIBRARY="$ROOT/$BUILD/libattnforge.so" PYTHONPATH="$ROOT/python" \
    python3 bench/compare_torch.py ${COMPARE_ARGS:---quick} --out "$LOG/compare"
  local rc=$?
  [ -n "$smi" ] && kill "$smi" 2>/dev/null
  [ $rc -eq 0 ] && [ -s "$LOG/clocks.csv" ] &&
    python3 bench/clocks.py "$LOG/compare/compare.json" "$LOG/clocks.csv" >>"$LOG/compare/compare.md"
  return $rc
}
compare_detail() {
  python3 - "$LOG/compare/compare.json" "$LOG/clocks.csv" <<'PY'
import json, sys
sys.path.insert(0, "bench")
import clocks
rows = json.load(open(sys.argv[1]))["rows"]
print(f"{sum('ms' in r for r in rows)} timed, {sum('error' in r for r in rows)} not measured{clocks.summary(sys.argv[2])}")
PY
}

plot() {
  local inputs=()
  [ -f "$LOG/compare/compare.json" ] && inputs+=("$LOG/compare/compare.json")
  [ -f "$LOG/bench.json" ] && inputs+=("$LOG/bench.json")
  [ ${#inputs[@]} -gt 0 ] || { echo "nothing to plot: run compare and/or bench first"; return 1; }
  python3 bench/plot.py "${inputs[@]}" --out "$LOG/plots"
}
plot_detail() { grep -c "^plot:" "$LOG/plot.log" | sed 's/$/ PNGs/'; }

# ---- run ---------------------------------------------------------------------------------------
# sections run in a child bash (so that TIME_BUDGET can time them out): it needs these
export ROOT OUT LOG BUILD DEPS_PREFIX
export -f deps build find_bin tests pytest_ bench compare plot
deps_env
export LD_LIBRARY_PATH="$ROOT/$BUILD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"  # carried binaries find the library
for s in "${sections[@]}"; do
  case $s in
    deps) run_section deps deps_detail deps; deps_env ;;
    build) run_section build build_detail build ;;
    tests) run_section tests tests_detail tests ;;
    pytest) run_section pytest pytest_detail pytest_ ;;
    bench) run_section bench bench_detail bench ;;
    compare) run_section compare compare_detail compare ;;
    plot) run_section plot plot_detail plot ;;
    all) ;;
    *) echo "unknown section '$s' (deps build tests pytest bench compare plot)"; failed=1 ;;
  esac
done

# ---- results: the table, then everything packed so that it fits the 8 files that come back ------
if [ -f "$LOG/compare/compare.md" ]; then
  cp "$LOG/compare/compare.md" "$OUT/compare.md"
  echo; cat "$LOG/compare/compare.md"
fi
for png in four_panel_D128_nomask_fwd.png four_panel_D128_causal_fwd.png four_panel_memory_D128_nomask_fwd.png tflops_vs_S.png; do
  [ -f "$LOG/plots/$png" ] && cp "$LOG/plots/$png" "$OUT/$png"
done
{
  echo
  if [ "${PACK:-1}" = 1 ]; then where="$OUT/gpu-check.tar.gz"; else where="$LOG"; fi
  echo "gpu-check summary ($(date -u '+%H:%M UTC'); logs in $where)"
  printf '%s\n' "${summary[@]}"
} | tee "$OUT/summary.txt"
if [ "${EXPORT_BIN:-0}" = 1 ]; then
  (cd "$BUILD" && tar czf "$OUT/bin.tar.gz" libattnforge.so* attnforge-bench 2>/dev/null) || echo "EXPORT_BIN: nothing to export"
fi
if [ "${PACK:-1}" = 1 ]; then
  tar czf "$OUT/gpu-check.tar.gz" -C "$OUT" gpu-check && rm -rf "$LOG"
fi
exit $failed
