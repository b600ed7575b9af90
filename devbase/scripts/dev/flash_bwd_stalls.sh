# Device run: per-instruction warp-stall samples (ncu SourceCounters, SASS) of the Hopper backward at
# S 4096, causal (launch 3) then non-causal (launch 16), as gzipped CSV under $OUT/dev: MODE=prof (default)
# hd64 m64n64w4s1, MODE=profws the warp-specialized hd128 m64n128w12 sm90a; SKIPS="3 16" picks launches.
# Read them here with: python3 scripts/dev/ncu_stalls.py src_3.csv.gz src_16.csv.gz
set -u
export PATH=$PATH:/usr/local/cuda/bin
D=$OUT/dev; mkdir -p $D
nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -lineinfo -Iruntime/include -Iruntime/kernels -Igenerated -DGROUP=4 scripts/dev/flash_bwd_dev.cu -o /tmp/fbd4 > $D/build4.log 2>&1 || { tail -30 $D/build4.log; exit 1; }
for skip in ${SKIPS:-3 16}; do
  timeout 150 ncu --section SourceCounters --section WarpStateStats -k regex:flash_bwd_sm90_kernel --launch-skip $skip -c 1 -o $D/k$skip /tmp/fbd4 time ${MODE:-prof} > $D/ncu_$skip.log 2>&1
  echo "ncu $skip rc=$?"
  ncu -i $D/k$skip.ncu-rep --page source --csv --print-source sass > $D/src_$skip.csv 2>&1; echo "src rc=$? $(wc -c < $D/src_$skip.csv)"
  gzip -f $D/src_$skip.csv
done
rm -f $D/*.ncu-rep
