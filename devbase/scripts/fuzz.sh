#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of fuzz/ on a CPU machine (no GPU, no CUDA driver needed):
#   fuzz_validate    the C API's argument validation (fuzz/fuzz_validate.cpp)
#   fuzz_tune_cache  the tune-cache parser (fuzz/fuzz_tune_cache.cpp)
# with clang -fsanitize=fuzzer,address,undefined against the host sources of runtime/src, the
# generated dispatch table of the CI variant set, and stubs for CUDA/cuBLAS and every kernel launch
# (fuzz/cuda_stub.cpp, fuzz/launch_stub.cpp) that abort if reached.
#
# Usage: scripts/fuzz.sh [--runs=N] [--time=SECONDS] [--build=DIR]
#   --runs   executions per target (default 1000000); --time caps each target's seconds (default none)
# Installs clang-14 + libclang-rt-14-dev with apt when missing. Exit 1 on any finding: a crash, an ASan
# report or a failed property stops the target (reproducer in DIR/artifacts/); UBSan reports are
# collected (each distinct one printed) and the run goes on.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=1000000
max_time=0
build=build-fuzz
for arg in "$@"; do
  case $arg in
    --runs=*) runs=${arg#--runs=} ;;
    --time=*) max_time=${arg#--time=} ;;
    --build=*) build=${arg#--build=} ;;
    *) echo "usage: $0 [--runs=N] [--time=SECONDS] [--build=DIR]"; exit 2 ;;
  esac
done

# ---- toolchain ---------------------------------------------------------------------------------
CXX=""
for c in clang++-14 clang++; do command -v "$c" >/dev/null && CXX=$c && break; done
fuzzer_rt=$(ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null | head -n 1 || true)
if [ -z "$CXX" ] || [ -z "$fuzzer_rt" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "fuzz: apt-get install clang-14 libclang-rt-14-dev"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null
  CXX=clang++-14
fi
scripts/setup.sh >/dev/null  # Boost, nlohmann-json, jinja2 (the generator)
nvcc_path=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
cuda_inc=$(dirname "$(dirname "$nvcc_path")")/include
[ -f "$cuda_inc/cuda_runtime_api.h" ] || { echo "fuzz: CUDA headers not found ($cuda_inc)"; exit 2; }

# ---- build -------------------------------------------------------------------------------------
mkdir -p "$build/obj" "$build/artifacts"
python3 -m codegen --config codegen/variants/ci.toml --out "$build/generated" >/dev/null
# ASan findings and failed properties abort the run; UBSan reports are recoverable so that one
# known report does not hide the rest: each distinct one is listed and fails the script.
san="-fsanitize=address,undefined"
flags="-std=c++20 -O1 -g -fno-omit-frame-pointer $san -Iruntime/include -Iruntime/src -Iruntime/kernels -I$build/generated -isystem $cuda_inc"
objs=()
# An object is rebuilt when its source, or any header it may include, is newer (no dep files).
newest_header=$(ls -t runtime/include/attnforge/*.h* runtime/src/*.hpp runtime/kernels/*/*.hpp runtime/kernels/*/*.cuh \
                  "$build/generated/variants.hpp" 2>/dev/null | head -n 1)
for src in runtime/src/*.cpp fuzz/cuda_stub.cpp fuzz/launch_stub.cpp; do
  obj=$build/obj/$(basename "${src%.cpp}").o
  objs+=("$obj")
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_header" -nt "$obj" ]; then
    echo "$CXX -c $src"
    # shellcheck disable=SC2086
    $CXX $flags -fsanitize=fuzzer-no-link -c "$src" -o "$obj" &
    while [ "$(jobs -rp | wc -l)" -ge "${ATTNFORGE_JOBS:-2}" ]; do wait -n; done
  fi
done
wait
for target in fuzz_validate fuzz_tune_cache; do
  # shellcheck disable=SC2086
  $CXX $flags -fsanitize=fuzzer "fuzz/$target.cpp" "${objs[@]}" -lpthread -o "$build/$target"
done

# ---- seeds -------------------------------------------------------------------------------------
mkdir -p "$build/corpus/validate" "$build/corpus/tune_cache"
ATTNFORGE_FUZZ_WRITE_SEED="$build/corpus/tune_cache/valid.json" "$build/fuzz_tune_cache" 2>/dev/null
head -c 300 "$build/corpus/tune_cache/valid.json" >"$build/corpus/tune_cache/truncated.json"
printf '{"schema_version": 1}' >"$build/corpus/tune_cache/soft.json"
printf 'fwd|bf16|hq16|hkv4|d128|causal|sq512|sk1024|b8' >"$build/corpus/tune_cache/key.txt"

# ---- run ---------------------------------------------------------------------------------------
status=0
summary=$build/summary.md
echo "| target | runs | seconds | execs/s | result |" >"$summary"
echo "|---|---|---|---|---|" >>"$summary"
for target in fuzz_validate fuzz_tune_cache; do
  corpus=$build/corpus/${target#fuzz_}
  log=$build/$target.log
  start=$(date +%s)
  set +e
  "$build/$target" -runs="$runs" -max_total_time="$max_time" -seed=1 -max_len=4096 -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  execs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" | tail -n 1)
  speed=$(grep -oE "stat::average_exec_per_sec: *[0-9]+" "$log" | grep -oE "[0-9]+$" | tail -n 1)
  ub=$(grep -cE "runtime error:" "$log" || true)
  if [ "$rc" = 0 ] && [ "$ub" = 0 ]; then result="no finding"
  elif [ "$rc" = 0 ]; then result="$ub UBSan report(s), see $log"; status=1
  else result="FINDING (exit $rc, see $log)"; status=1; fi
  echo "| $target | ${execs:-?} | $secs | ${speed:-?} | $result |" >>"$summary"
  grep -E "runtime error:" "$log" | sort -u | head -n 20 || true
  if [ "$rc" != 0 ]; then grep -E "ERROR|fuzz check failed|SUMMARY" "$log" | head -n 20; fi
done
cat "$summary"
exit $status
