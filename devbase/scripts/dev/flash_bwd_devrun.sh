# Device run of the flash backward (one `run` call, ~3-4 min on an H100): dev-driver builds in
# parallel, correctness groups, training-grid timings, PyTorch's flash backward in the same run,
# then the library's FlashBwd GTest suite through scripts/gpu-check.sh. Logs: $OUT/all.tar.gz.
#   EXPERIMENTS=1  dev-switch timings: stage cap 1, no dQ adds (measurement only), no rotation, dQ first
#   TILES=1        also check and time the tile candidates of GROUP 3 (not in default.toml) at S = 4096
#   SM90=1         also check and time the Hopper kernel against the mma.sync one (GROUP 4)
#   WITH_LIB=0     skip the library build and tests
#   DEV_GROUPS="2" which of the groups 0 1 2 to build and check (default all three)
#   QUICK=1        time one shape per variant (S = 4096) and PyTorch at S 1024/4096/16384 with cuDNN
#   CHECK_T=60     seconds each correctness binary may run
set -u
mkdir -p $OUT/dev
D=$OUT/dev
NV="nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -Xptxas -v -Iruntime/include -Iruntime/kernels -Igenerated"
SRC=scripts/dev/flash_bwd_dev.cu
EXPERIMENTS=${EXPERIMENTS:-0}
TILES=${TILES:-0}
SM90=${SM90:-0}
[ "$TILES" = 1 ] && $NV -DGROUP=3 $SRC -o /tmp/fbd3 > $D/build3.log 2>&1 &
[ "$SM90" = 1 ] && $NV -DGROUP=4 $SRC -o /tmp/fbd4 > $D/build4.log 2>&1 &
DEV_GROUPS=${DEV_GROUPS:-0 1 2}
QUICK=${QUICK:-0}
for g in $DEV_GROUPS; do $NV -DGROUP=$g $SRC -o /tmp/fbd$g > $D/build$g.log 2>&1 & done
if [ "$EXPERIMENTS" = 1 ]; then
  $NV -DGROUP=2 -DATTNFORGE_FLASH_BWD_STAGES_MAX=1 $SRC -o /tmp/fbd2s1 > $D/build2s1.log 2>&1 &
  $NV -DGROUP=2 -DATTNFORGE_FLASH_BWD_DEV_SKIP_DQ_ADD $SRC -o /tmp/fbd2nd > $D/build2nd.log 2>&1 &
  $NV -DGROUP=2 -DATTNFORGE_FLASH_BWD_NO_ROTATE $SRC -o /tmp/fbd2nr > $D/build2nr.log 2>&1 &
  $NV -DGROUP=2 -DATTNFORGE_FLASH_BWD_DQ_FIRST $SRC -o /tmp/fbd2df > $D/build2df.log 2>&1 &
fi
wait
echo "== registers/spills (main kernel, group 2 build)"
grep -A2 "flash_bwd_main_kernel" $D/build2.log | grep -E "Compiling|Used|spill" | sed 's/.*DTypeE\(.*\)EEEEEEvNS.*/\1/; s/ptxas info    : //' | paste -d' ' - - -
echo "== correctness"
bins=""
for g in $DEV_GROUPS; do bins="$bins fbd$g"; done
[ "$TILES" = 1 ] && bins="$bins fbd3"
[ "$SM90" = 1 ] && bins="$bins fbd4"
[ "$EXPERIMENTS" = 1 ] && bins="$bins fbd2s1 fbd2df"
for b in $bins; do timeout ${CHECK_T:-60} /tmp/$b > $D/$b.log 2>&1; echo "$b rc=$?"; done
grep -h "FAIL\|GROUP\|NaN in" $D/fbd*.log
echo "== timings"
if [ "$QUICK" = 1 ]; then tmode="time quick"; tq=quick; else tmode=time; tq=; fi
timeout 60 /tmp/fbd2 $tmode > $D/time.log 2>&1; echo "time rc=$?"
if [ "$EXPERIMENTS" = 1 ]; then
  for v in s1 nd nr df; do timeout 30 /tmp/fbd2$v time quick > $D/time_$v.log 2>&1; echo "time $v rc=$?"; done
fi
timeout 90 python3 scripts/dev/torch_flash_bwd.py $tq > $D/torch.log 2>&1; echo "torch rc=$?"
cat $D/time.log
if [ "$EXPERIMENTS" = 1 ]; then for v in s1 nd nr df; do echo "-- $v"; cat $D/time_$v.log; done; fi
if [ "$TILES" = 1 ]; then
  grep -A2 "flash_bwd_main_kernel" $D/build3.log | grep -E "Used|spill" | sed 's/ptxas info    : //' | paste -d' ' - - > $D/regs3.log
  timeout 90 /tmp/fbd3 time > $D/time3.log 2>&1; echo "time tiles rc=$?"; cat $D/time3.log
fi
if [ "$SM90" = 1 ]; then
  grep -A2 "flash_bwd_sm90_kernel" $D/build4.log | grep -E "Used|spill" | sed 's/ptxas info    : //' | paste -d' ' - - > $D/regs4.log
  grep -h "FAIL\|GROUP\|version" $D/fbd4.log | head -40
  timeout 90 /tmp/fbd4 time > $D/time4.log 2>&1; echo "time sm90 rc=$?"; cat $D/time4.log
fi
cat $D/torch.log
if [ "${WITH_LIB:-1}" = 1 ]; then
  ATTNFORGE_VARIANT_FILTER='flash_*_bf16_hd64_*;flash_*_f16_hd64_causal_*;flash_*_bf16_hd128_causal_*' \
  GTEST_FILTER="${LIB_GTEST_FILTER:-FlashBwd.*:*FlashBwdPath*}" GTEST_SUITES=gpu BUILD_TARGETS=attnforge_gpu_tests OUT=$OUT/gc PACK=0 timeout ${LIB_TIMEOUT:-150} bash scripts/gpu-check.sh deps build tests
  echo "gpu-check rc=$?"
  grep -E "^\[  (FAILED|PASSED|SKIPPED|  OK) |^\[==========\]|Failure|case:" $OUT/gc/gpu-check/tests*.log 2>/dev/null | head -40
fi
if [ "${NCU:-0}" = 1 ] && command -v ncu >/dev/null; then
  timeout 60 ncu --section SpeedOfLight --section WarpStateStats --section Occupancy -k regex:flash_bwd_main -c 1 /tmp/fbd2 time prof > $D/ncu.log 2>&1
  echo "ncu rc=$?"; grep -E "Throughput|Duration|Warp Cycles|Occupancy" $D/ncu.log | head -20
fi
cd $OUT && tar czf all.tar.gz dev gc 2>/dev/null; rm -rf dev gc
