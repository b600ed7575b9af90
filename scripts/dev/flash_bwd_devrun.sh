# Device run of the flash backward dev driver: build groups in parallel, correctness, timings,
# PyTorch flash backward timings in the same run. Logs under $OUT.
set -u
mkdir -p $OUT
NV="nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -Xptxas -v -Iruntime/include -Iruntime/kernels -Igenerated"
for g in 0 1 2; do $NV -DGROUP=$g scripts/dev/flash_bwd_dev.cu -o /tmp/fbd$g > $OUT/build$g.log 2>&1 & done
$NV -DGROUP=2 -DATTNFORGE_FLASH_BWD_MCHUNK_D128=64 scripts/dev/flash_bwd_dev.cu -o /tmp/fbd2b > $OUT/build2b.log 2>&1 &
wait
for g in 0 1 2; do timeout 60 /tmp/fbd$g > $OUT/g$g.log 2>&1; echo "g$g rc=$?"; done
grep -h "FAIL\|GROUP" $OUT/g*.log
timeout 70 /tmp/fbd2 time > $OUT/time.log 2>&1; echo "time rc=$?"
timeout 70 /tmp/fbd2b time > $OUT/time_mc64.log 2>&1; echo "time mc64 rc=$?"
timeout 70 python3 scripts/dev/torch_flash_bwd.py > $OUT/torch.log 2>&1; echo "torch rc=$?"
cat $OUT/time.log; echo; cat $OUT/time_mc64.log | grep hd128; cat $OUT/torch.log
