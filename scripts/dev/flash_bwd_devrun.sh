# Device run of the flash backward dev driver: build groups in parallel, correctness, timings
# (default kernel and the registers-only one), PyTorch flash backward timings in the same run,
# then the library's FlashBwd GTest suite through scripts/gpu-check.sh. Logs: $OUT/all.tar.gz.
set -u
mkdir -p $OUT/dev
D=$OUT/dev
NV="nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -Xptxas -v -Iruntime/include -Iruntime/kernels -Igenerated"
for g in 0 1 2; do $NV -DGROUP=$g scripts/dev/flash_bwd_dev.cu -o /tmp/fbd$g > $D/build$g.log 2>&1 & done
$NV -DGROUP=2 -DATTNFORGE_FLASH_BWD_REGP scripts/dev/flash_bwd_dev.cu -o /tmp/fbd2r > $D/build2r.log 2>&1 &
wait
grep -A2 "smemp" $D/build2.log | grep -E "Used|spill" | paste - - | sed 's/ptxas info    : //' | head -12
for g in 0 1 2; do timeout 60 /tmp/fbd$g > $D/g$g.log 2>&1; echo "g$g rc=$?"; done
grep -h "FAIL\|GROUP" $D/g*.log
timeout 60 /tmp/fbd2 time > $D/time.log 2>&1; echo "time rc=$?"
timeout 60 /tmp/fbd2r time > $D/time_regp.log 2>&1; echo "time regp rc=$?"
timeout 60 python3 scripts/dev/torch_flash_bwd.py > $D/torch.log 2>&1; echo "torch rc=$?"
cat $D/time.log; echo; grep "hd128_none_m64n128\|hd64_none_m64n128" $D/time_regp.log; cat $D/torch.log
if [ "${WITH_LIB:-1}" = 1 ]; then
  ATTNFORGE_VARIANT_FILTER='flash_*_bf16_hd64_*;flash_*_f16_hd64_causal_*;flash_*_bf16_hd128_causal_*' \
  GTEST_FILTER="FlashBwd.*" GTEST_SUITES=gpu BUILD_TARGETS=attnforge_gpu_tests OUT=$OUT/gc PACK=0 timeout ${LIB_TIMEOUT:-170} bash scripts/gpu-check.sh deps build tests
  echo "gpu-check rc=$?"
  grep -E "^\[  (FAILED|PASSED|SKIPPED|  OK) |^\[==========\]|Expected|case:|dQ|dK|dV" $OUT/gc/gpu-check/tests*.log 2>/dev/null | head -60
fi
cd $OUT && tar czf all.tar.gz dev gc 2>/dev/null; rm -rf dev gc
