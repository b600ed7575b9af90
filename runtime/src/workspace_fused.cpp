// Scratch of the fused backend. Forward: none (one kernel, everything on chip). Backward: two fp32
// accumulators, dK and dV, (total_k, Hkv, D) each, that every query block of every head of a KV group
// adds into; the second launch rounds them into dk/dv. 256-byte aligned slices.
#include "workspace.hpp"

namespace attnforge {

size_t workspace_bytes_fused(const VariantKey& key, const Params& p) {
  if (key.direction == Direction::fwd) return 0;
  const size_t one = size_t(p.total_k) * size_t(p.heads_kv) * size_t(p.head_dim) * sizeof(float);
  const size_t aligned = (one + 255) / 256 * 256;
  return 2 * aligned;  // [dK acc][dV acc]
}

}  // namespace attnforge
