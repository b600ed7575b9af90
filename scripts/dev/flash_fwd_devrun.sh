# Device run of the flash forward dev driver (scripts/dev/flash_fwd_dev.{cu,py}): build the ctypes library,
# time the training grid beside PyTorch flash/cuDNN in one process, then check every dev variant on both paths.
#   OUT=... [CHECK_T=seconds] bash scripts/dev/flash_fwd_devrun.sh
set -u
export PATH=$PATH:/usr/local/cuda/bin
D=$OUT/dev; mkdir -p $D
nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -Xptxas -v -shared -Xcompiler -fPIC -Iruntime/include -Iruntime/kernels -Igenerated -Iscripts/dev scripts/dev/flash_fwd_dev.cu -o /tmp/libnew.so > $D/build.log 2>&1 || { tail -20 $D/build.log; exit 1; }
echo "built $(date +%T)"
timeout 100 python3 scripts/dev/flash_fwd_dev.py /tmp/libnew.so time > $D/time.log 2>&1; echo "time rc=$?"; cat $D/time.log | tail -25
timeout ${CHECK_T:-200} python3 scripts/dev/flash_fwd_dev.py /tmp/libnew.so check > $D/check.log 2>&1; echo "check rc=$?"; grep -E "FAIL|checks:" $D/check.log | head -20; grep -c PASS $D/check.log
