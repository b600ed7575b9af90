// Scratch bytes of an unfused call: exactly what run_fwd / run_bwd carve out of Params::workspace,
// computed by the same layout function they use (runtime/kernels/unfused/layout.hpp).
#include "unfused/layout.hpp"
#include "workspace.hpp"

namespace attnforge {

size_t workspace_bytes_unfused(const VariantKey& key, const Params& p) {
  return unfused::make_layout(key.dtype, key.direction, p).total;
}

}  // namespace attnforge
