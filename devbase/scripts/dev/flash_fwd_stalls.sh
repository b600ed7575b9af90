# Device run: per-instruction warp-stall samples (ncu SourceCounters + WarpStateStats, SASS) of the library's
# warp-specialized forward, one launch per case, as gzipped CSV under $OUT/dev (read them here with
# scripts/dev/ncu_stalls.py). Needs a library build (BUILD_DIR, default build-gpu: gpu-check.sh build).
# CASES: "variant:S:causal ..." (default: D 64 causal S 2048 on both D 64 tiles, and S 16384 without a mask).
set -u
export PATH=$PATH:/usr/local/cuda/bin
D=$OUT/dev; mkdir -p $D
LIB=$PWD/${BUILD_DIR:-build-gpu}/libattnforge.so
CASES=${CASES:-"flash_fwd_bf16_hd64_causal_m128n128w12s2_sm90a:2048:1 flash_fwd_bf16_hd64_causal_m192n128w16s2_sm90a:2048:1 flash_fwd_bf16_hd64_none_m192n128w16s2_sm90a:16384:0"}
for c in $CASES; do
  IFS=: read -r var s causal <<< "$c"
  cat > /tmp/fwd_call.py <<PY
import torch, attnforge
s, causal = $s, bool($causal)
q, k, v = (torch.randn(16384 // s, s, 32, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
for _ in range(3):
    attnforge.attention(q, k, v, causal=causal, variant="$var")
torch.cuda.synchronize()
PY
  ATTNFORGE_LIBRARY=$LIB PYTHONPATH=$PWD/python timeout 200 ncu --section SourceCounters --section WarpStateStats \
    -k regex:fwd_kernel_sm90_ws --launch-skip 2 -c 1 -o $D/$var-$s python3 /tmp/fwd_call.py > $D/ncu_$var-$s.log 2>&1
  echo "ncu $var S $s rc=$?"
  ncu -i $D/$var-$s.ncu-rep --page details --csv > $D/details_$var-$s.csv 2>&1
  ncu -i $D/$var-$s.ncu-rep --page source --csv --print-source sass > $D/src_$var-$s.csv 2>&1
  gzip -f $D/src_$var-$s.csv
done
rm -f $D/*.ncu-rep
tar czf $OUT/stalls.tgz -C $OUT dev && rm -rf $D
