// Scratch of the fused backend. Forward: none (one kernel, everything on chip). Backward, 16-bit: two
// fp32 accumulators, dK and dV, (total_k, Hkv, D) each, that every query block of every head of a KV
// group adds into; the last launch rounds them into dk/dv. 256-byte aligned slices. Backward, fp32:
// none (the adds go straight into the caller's fp32 dk/dv, fused/f32.cuh).
#include "workspace.hpp"

namespace attnforge {

size_t workspace_bytes_fused(const VariantKey& key, const Params& p) {
  if (key.direction == Direction::fwd || key.dtype == DType::f32) return 0;
  const size_t one = size_t(p.total_k) * size_t(p.heads_kv) * size_t(p.head_dim) * sizeof(float);
  const size_t aligned = (one + 255) / 256 * 256;
  return 2 * aligned;  // [dK acc][dV acc]
}

}  // namespace attnforge
