# Device run: Nsight Compute side by side of attnforge's Hopper backward main kernel and cuDNN's bprop
# kernel on the same call (ncu locks both to the base clock, so power caps drop out): time, tensor-pipe
# use, instructions, shared-memory wavefronts, L2 / DRAM bytes, stalls. Needs a library build.
#   OUT=... LIB=/tmp/b/libattnforge.so [KERNELS=regex:fwd_kernel_sm90_ws|fprop] [NCU_ARGS='--section ...'] \
#     bash scripts/dev/ncu_vs_cudnn.sh [kernel_breakdown.py shape args]
# NCU_ARGS (default --set full) names fewer sections where the full set's replay passes take too long.
set -u
export PATH=$PATH:/usr/local/cuda/bin
args=${*:---dims 128 --seqs 4096 --dirs bwd}
ATTNFORGE_LIBRARY=$LIB PYTHONPATH=python timeout ${NCU_TIMEOUT:-400} ncu ${NCU_ARGS:---set full} -k "${KERNELS:-regex:flash_bwd_sm90_kernel|bprop}" \
  -o "$OUT/ncu" python3 scripts/dev/kernel_breakdown.py --plain $args > "$OUT/ncu_run.log" 2>&1
echo "ncu rc=$?"; tail -3 "$OUT/ncu_run.log"
ncu -i "$OUT/ncu.ncu-rep" --page details --csv > "$OUT/ncu_details.csv" 2>&1; echo "details rc=$?"
ncu -i "$OUT/ncu.ncu-rep" --page raw --csv > "$OUT/ncu_raw.csv" 2>&1; echo "raw rc=$?"
gzip -f "$OUT/ncu_details.csv" "$OUT/ncu_raw.csv"; rm -f "$OUT/ncu.ncu-rep"
