#!/usr/bin/env bash
# No GPU needed: what ptxas says about each generated variant — serialized wgmma (its C7510–C7514
# "Potential Performance Loss" notes, which a normal build does not print) and spill stores per kernel
# (a variant's file also instantiates the passes around it and, for the backward, the mma.sync kernel of
# deterministic mode). A serialized tile runs every GEMM of a step back to back: D 128 n176 did from v32
# to the twenty-third session, unnoticed. ~3 s per variant.
#   [NVCC_FLAGS='-D…'] [STRICT=1] scripts/ptxas_scan.sh ['generated/*bf16*sm90a.cu'] [jobs]
# Prints "variant | notes | kernel<tile>: spilled bytes …" ("—": none). STRICT=1 (the ctest
# sm90a_wgmma_not_serialized): exit 1 when any variant has a serialization note.
set -u
glob=${1:-'generated/*bf16*sm90a.cu'}
jobs=${2:-2}
scan() {
  local f=$1 n out notes spills
  n=$(basename "$f" .cu)
  out=$("${NVCC:-nvcc}" -cubin -O3 -DNDEBUG -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -std=c++17 \
    -Iruntime/kernels -Iruntime/include -Iruntime/src -Igenerated ${NVCC_FLAGS:-} -Xptxas -v \
    -o "/tmp/ptxas_scan_$n.cubin" "$f" 2>&1)
  rm -f "/tmp/ptxas_scan_$n.cubin"
  notes=$(grep -oE "C75[0-9]+" <<<"$out" | sort -u | tr '\n' ' ')
  spills=$(awk '/Compiling entry function/ { match($0, /_Z[A-Za-z0-9_]+/); fn = substr($0, RSTART, RLENGTH) }
                /bytes spill stores/ { split($0, a, ","); b = a[2] + 0; if (b > 0) print fn, b }' <<<"$out" |
           c++filt | sed -E 's/^.*::([a-z0-9_]+)<.*Tile<([0-9, ]+)>.* ([0-9]+)$/\1<\2>: \3 B/; s/, /,/g' | tr '\n' ' ')
  echo "$n | ${notes:-—} | ${spills:-—}"
}
export -f scan
export NVCC_FLAGS=${NVCC_FLAGS:-} NVCC=${NVCC:-nvcc}
# shellcheck disable=SC2086
result=$(ls $glob | xargs -P "$jobs" -I{} bash -c 'scan {}' | sort)
echo "$result"
if [ "${STRICT:-0}" = 1 ] && grep -q "| C75" <<<"$result"; then
  echo "ptxas_scan: wgmma serialized in the variants above marked C75xx (ptxas -v says why)"
  exit 1
fi
