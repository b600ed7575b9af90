# Device run: A/B of two library trees at sustained clocks (sustained.py: each case ~SECS s of back-to-back
# calls, SM clock, board power and pJ / FLOP of its window, beside cuDNN and FlashAttention-2), the trees
# alternating base, new, base, new, … REPS times, so that the GPU's drift falls on both.
#   rm -rf devbase && mkdir devbase && git archive <base rev> | tar -x -C devbase   (untracked: travels)
#   FILTER='flash_fwd_bf16_hd128_none_*' REPS=2 SECS=3 OUT=... bash scripts/dev/sustained_ab.sh \
#       128:2048:0:flash_fwd_bf16_hd128_none_m128n128w12s2_sm90a ...     (sustained.py's D:S:causal:variants)
# NEW_CUDA_FLAGS: nvcc flags of the new tree's build (as lib_ab.sh's); AB_BUILD: the build directories' prefix.
# Results: each pass's table on stdout, every log in $OUT/sustained_ab_logs.tgz.
set -u
export PATH=$PATH:/usr/local/cuda/bin
source "$(dirname "$0")/ab_compare.sh"
[ -d devbase ] || { echo "sustained_ab: no devbase/ (see the header)"; exit 2; }
B=${AB_BUILD:-/tmp/sab}
src_of() { [ $1 = base ] && echo "$PWD/devbase" || echo "$PWD"; }
for t in base new; do ab_build $t "$(src_of $t)" "${B}_$t" 8 attnforge & done
wait
ab_built "$B" base new || exit 1
for rep in $(seq 1 "${REPS:-2}"); do
  for t in base new; do
    src=$(src_of $t)
    mkdir -p "$OUT/s_${t}_$rep"
    echo "== $t, pass $rep"
    ATTNFORGE_LIBRARY="${B}_$t/libattnforge.so" PYTHONPATH="$src/python" SECS=${SECS:-3} \
      python3 scripts/dev/sustained.py "$OUT/s_${t}_$rep" "$@" 2>&1 | tee "$OUT/s_${t}_$rep.log" | grep -A 40 '^| D |'
  done
done
(cd "$OUT" && tar czf sustained_ab_logs.tgz --remove-files -- *.log s_*/) || true
