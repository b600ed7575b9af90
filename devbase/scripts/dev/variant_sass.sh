#!/usr/bin/env bash
# Dev: one generated variant to SASS without a GPU (nvcc -cubin, then a disassembler), and the instruction
# mix of the warp-specialized forward's steady key-tile loop (sass_hotloop.py). Local or on the device.
#   scripts/dev/variant_sass.sh generated/flash_fwd_bf16_hd64_causal_m128n128w12s2_sm90a.cu /tmp/x [nvcc flags]
# Writes /tmp/x.cubin and /tmp/x.sass. Disassembler: $NVDISASM, else nvdisasm, else cuobjdump -sass (a pip
# install of triton carries an nvdisasm: triton/backends/nvidia/bin/nvdisasm).
set -eu
src=$1 out=$2; shift 2
nvcc -cubin -O3 -DNDEBUG -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -std=c++17 \
  -Iruntime/kernels -Iruntime/include -Iruntime/src -Igenerated "$@" -o "$out.cubin" "$src"
if [ -n "${NVDISASM:-}" ] || command -v nvdisasm >/dev/null; then "${NVDISASM:-nvdisasm}" -c "$out.cubin" > "$out.sass"
else cuobjdump -sass "$out.cubin" > "$out.sass"; fi
echo "$(grep -cE '^\s+/\*[0-9a-f]{4,}\*/' "$out.sass") instructions in $out.sass"
case $src in *flash_fwd_*_sm90a.cu) python3 "$(dirname "$0")/sass_hotloop.py" "$out.sass" ;; esac
