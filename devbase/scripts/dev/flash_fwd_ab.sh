# Device run: A/B of forward dev-library builds (scripts/dev/flash_fwd_dev.{cu,py}): build all, check
# each, then time them in turn twice, each run beside PyTorch flash/cuDNN in its own process (the
# ratio to cuDNN of the same run is the comparable figure). A baseline build of another tree:
#   mkdir devbase && git archive <rev> runtime/kernels | tar -x -C devbase   (untracked, travels with the tree)
#   BUILDS="base:-DDEV_WS,-Idevbase/runtime/kernels new:-DDEV_WS" OUT=... bash scripts/dev/flash_fwd_ab.sh
# BUILDS: "name:flags ..." (commas in flags become spaces); add -DDEV_TRACE_SET for the short build of the
# shipped D 64 / 128 WS tiles. DEV_SS / DEV_DS: the lengths / head dims timed. Logs in $OUT/dev.tgz, and a
# table of every build's wg:<tile> TFLOP/s per shape side by side (ratios to the first build).
set -u
export PATH=$PATH:/usr/local/cuda/bin
D=$OUT/dev; mkdir -p $D
NV="nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -Xptxas -v -lineinfo -shared -Xcompiler -fPIC"
INC="-Iruntime/include -Iruntime/kernels -Igenerated -Iscripts/dev"
for b in $BUILDS; do n=${b%%:*}; f=${b#*:}; $NV ${f//,/ } $INC scripts/dev/flash_fwd_dev.cu -o /tmp/ffd_$n.so > $D/build_$n.log 2>&1 & done
wait
echo "built $(date +%T)"
for b in $BUILDS; do n=${b%%:*}
  grep -E "spill" $D/build_$n.log | sort | uniq -c | sed "s/^/$n /"
  timeout ${CHECK_T:-120} python3 scripts/dev/flash_fwd_dev.py /tmp/ffd_$n.so check > $D/check_$n.log 2>&1
  echo "check $n rc=$?"; grep -E "FAIL|checks:" $D/check_$n.log | head -5
done
for rep in 1 2; do for b in $BUILDS; do n=${b%%:*}
  echo "-- $n (rep $rep)"
  timeout 120 python3 scripts/dev/flash_fwd_dev.py /tmp/ffd_$n.so time 2>&1 | tee $D/time_${n}_$rep.log | grep "^D="
done; done
python3 scripts/dev/flash_fwd_ab_table.py $D $BUILDS
# the device tool brings back at most 8 files from $OUT: one archive of the logs
tar czf $OUT/dev.tgz -C $OUT dev && rm -rf $D
