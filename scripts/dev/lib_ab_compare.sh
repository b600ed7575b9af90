# Device run: A/B of two library trees through the binding with compare_torch.py's timer (400 ms warm-up
# per row, so each side runs at its own sustained clock), base and new alternating twice. The new tree's
# GPU suites run first. Where lib_ab.sh reads per-kernel µs from the profiler (short calls), this reads
# the figures the README reports.
#   rm -rf devbase && mkdir devbase && git archive <base rev> | tar -x -C devbase   (untracked: travels)
#   FILTER='flash_fwd_bf16_hd128_*' OUT=... bash scripts/dev/lib_ab_compare.sh --head-dims 128 --dirs fwd
# Arguments go to compare_torch.py (with --grid train --impls af-flash,torch-cudnn unless given). The
# new / base table (lib_ab_compare_table.py) ends the output and lands in $OUT/ab_table.md.
set -u
export PATH=$PATH:/usr/local/cuda/bin
FILTER=${FILTER:-'flash_fwd_bf16_hd128_*'}
[ -d devbase ] || { echo "lib_ab_compare: no devbase/ (see the header)"; exit 2; }
src_of() { [ "$1" = base ] && echo "$PWD/devbase" || echo "$PWD"; }
for t in base new; do
  (cmake -S "$(src_of $t)" -B "/tmp/abc_$t" -G Ninja -DCMAKE_BUILD_TYPE=Release \
     -DATTNFORGE_VARIANTS="$(src_of $t)/codegen/variants/gpu.toml" -DATTNFORGE_VARIANT_FILTER="$FILTER" &&
   cmake --build "/tmp/abc_$t" -j 8) > "$OUT/build_$t.log" 2>&1 &
done
wait
for t in base new; do [ -f "/tmp/abc_$t/libattnforge.so" ] || { echo "$t did not build"; tail -20 "$OUT/build_$t.log"; exit 1; }; done
echo "built $(date +%T)"
tests=$(find /tmp/abc_new -name attnforge_gpu_tests -type f | head -1)
GTEST_FILTER=${GTEST_FILTER:-'*FlashFwd*:SelectTest.*'} timeout 200 "$tests" > "$OUT/tests_new.log" 2>&1
echo "tests (new) rc=$?"; grep -E '^\[  (PASSED|FAILED)|^\[  SKIPPED \] [0-9]' "$OUT/tests_new.log" | head
for rep in 1 2; do
  for t in base new; do
    mkdir -p "$OUT/cmp_${t}_$rep"
    ATTNFORGE_LIBRARY="/tmp/abc_$t/libattnforge.so" PYTHONPATH="$(src_of $t)/python" timeout 200 \
      python3 bench/compare_torch.py --grid train --impls af-flash,torch-cudnn "$@" --out "$OUT/cmp_${t}_$rep" \
      > "$OUT/cmp_${t}_$rep.log" 2>&1 || echo "compare $t $rep failed"
    echo "== $t, run $rep"; grep -E '^\| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9]+ \| (no|yes) ' "$OUT/cmp_${t}_$rep/compare.md" | head -16
  done
done
python3 scripts/dev/lib_ab_compare_table.py "$OUT" | tee "$OUT/ab_table.md"
tar czf "$OUT/ab_compare.tgz" -C "$OUT" --exclude=ab_compare.tgz . 2>/dev/null
