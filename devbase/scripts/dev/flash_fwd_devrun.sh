# Device run of the flash forward dev driver (scripts/dev/flash_fwd_dev.{cu,py}): build the ctypes library,
# time the training grid beside PyTorch flash/cuDNN in one process, then check every dev variant on both paths.
#   OUT=... [DEV_FLAGS=-DDEV_WS] [CHECK_T=seconds] [SAN=1] bash scripts/dev/flash_fwd_devrun.sh
# DEV_FLAGS=-DDEV_WS builds the warp-specialized sm_90a kernel (runtime/kernels/flash/fwd_sm90_ws.cuh) instead of the
# library's kernels; SAN=1 adds compute-sanitizer memcheck / racecheck / synccheck over `check --quick`.
set -u
export PATH=$PATH:/usr/local/cuda/bin
D=$OUT/dev; mkdir -p $D
nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -Xptxas -v -lineinfo ${DEV_FLAGS:-} -shared -Xcompiler -fPIC -Iruntime/include -Iruntime/kernels -Igenerated -Iscripts/dev scripts/dev/flash_fwd_dev.cu -o /tmp/libdev.so > $D/build.log 2>&1 || { tail -20 $D/build.log; exit 1; }
echo "built $(date +%T)"; grep -E "spill|Used" $D/build.log | sort | uniq -c | head
command -v cuobjdump >/dev/null && cuobjdump -sass /tmp/libdev.so | grep -oE "HGMMA\.[0-9x]+|UTMALDG[.A-Z0-9]*|USETMAXREG[.A-Z0-9]*|SYNCS\.[A-Z.]+" | sort | uniq -c | head -12
timeout ${CHECK_T:-200} python3 scripts/dev/flash_fwd_dev.py /tmp/libdev.so check > $D/check.log 2>&1; echo "check rc=$?"; grep -E "FAIL|checks:" $D/check.log | head -20; grep -c PASS $D/check.log
timeout 100 python3 scripts/dev/flash_fwd_dev.py /tmp/libdev.so time > $D/time.log 2>&1; echo "time rc=$?"; tail -25 $D/time.log
if [ "${SAN:-0}" = 1 ]; then
  for tool in memcheck racecheck synccheck; do
    timeout 120 compute-sanitizer --tool $tool --error-exitcode 1 python3 scripts/dev/flash_fwd_dev.py /tmp/libdev.so check --quick > $D/san_$tool.log 2>&1
    echo "sanitizer $tool rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|checks:" $D/san_$tool.log | tail -2
  done
fi
