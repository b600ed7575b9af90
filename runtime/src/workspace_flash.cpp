// Scratch of the flash backend. Forward: none — O and LSE are written once, straight to the caller's
// tensors, and no O(N²) or split-K buffer exists. Backward: the layout the flash backward declares in
// flash/bwd_workspace.hpp (fp32 row sums D, the fp32 dQ accumulator, deterministic-mode counters).
#include "workspace.hpp"

#if __has_include("flash/bwd_workspace.hpp")
#include "flash/bwd_workspace.hpp"
#define ATTNFORGE_HAVE_FLASH_BWD_WORKSPACE 1
#endif

namespace attnforge {

size_t workspace_bytes_flash(const VariantKey& key, const Params& p) {
  if (key.direction == Direction::fwd) return 0;
#ifdef ATTNFORGE_HAVE_FLASH_BWD_WORKSPACE
  return flash::flash_bwd_workspace_bytes(key.block_m, key.block_n, p);
#else
  return 0;
#endif
}

}  // namespace attnforge
