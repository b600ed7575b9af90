# Device run: A/B of backward dev-driver builds (GROUP 4: the Hopper kernel, then mma.sync), correctness
# then timings. BUILDS="name:flags ..." (commas in flags become spaces); a baseline build of another tree:
#   mkdir devbase && git archive <rev> runtime/kernels | tar -x -C devbase   (untracked, travels with the tree)
#   BUILDS="base:-Idevbase/runtime/kernels new:-DNONE" OUT=... bash scripts/dev/flash_bwd_ab.sh
# SS: sequence lengths (default 1024,4096,16384); PAT: grep of the variant names to time (default s1|hd128).
# CHECK_T / TIME_T: seconds for each build's checks / each timing pass (default 90 / 60).
set -u
export PATH=$PATH:/usr/local/cuda/bin
D=$OUT/dev; mkdir -p $D
NV="nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -Xptxas -v -DGROUP=4"; INC="-Iruntime/include -Iruntime/kernels -Igenerated"
for b in $BUILDS; do n=${b%%:*}; f=${b#*:}; $NV ${f//,/ } $INC scripts/dev/flash_bwd_dev.cu -o /tmp/fbd_$n > $D/build_$n.log 2>&1 & done
wait
echo "built $(date +%T)"
for b in $BUILDS; do n=${b%%:*}
  grep -A2 "Compiling entry function '_ZN9attnforge5flash21flash_bwd_sm90_kernel" $D/build_$n.log | grep -E "spill" | sort | uniq -c | sed "s/^/$n /"
  timeout ${CHECK_T:-90} /tmp/fbd_$n > $D/check_$n.log 2>&1; echo "check $n rc=$?"; grep -h "FAIL\|GROUP" $D/check_$n.log | head -5
done
for rep in 1 2; do for b in $BUILDS; do n=${b%%:*}
  echo "-- $n (rep $rep)"
  DEV_WGMMA_ONLY=1 DEV_S=${SS:-1024,4096,16384} timeout ${TIME_T:-60} /tmp/fbd_$n time | grep TIME | grep -E "${PAT:-s1|hd128}"
done; done
# the device tool brings back at most 8 files from $OUT: one archive of the logs
tar czf $OUT/dev.tgz -C $OUT dev && rm -rf $D
