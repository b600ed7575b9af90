// Scratch of the flash backend. Forward: none — O and LSE are written once, straight to the caller's
// tensors, and no O(N²) or split-K buffer exists. Backward: the layout the flash backward declares in
// flash/bwd_workspace.hpp (fp32 row sums D, the fp32 dQ accumulator, deterministic-mode counters).
#include "workspace.hpp"

#include <algorithm>

#if __has_include("flash/bwd_workspace.hpp")
#include "flash/bwd_workspace.hpp"
#define ATTNFORGE_HAVE_FLASH_BWD_WORKSPACE 1
#endif

namespace attnforge {

size_t workspace_bytes_flash(const VariantKey& key, const Params& p) {
  if (key.direction == Direction::fwd) return 0;
#ifdef ATTNFORGE_HAVE_FLASH_BWD_WORKSPACE
  // An sm90a tile runs as its 64-query-step twin (BwdSm90Fallback) where the Hopper kernel does not take
  // the call (deterministic mode, keys in one tile, a layout TMA cannot describe), so it is sized for
  // both: a 128-query tile counts half the deterministic semaphores of the 64-query one. Sized for its
  // own tile alone, a caller's workspace of exactly this size failed that fallback (GPU sweep,
  // 2026-11-30: ATTNFORGE_INTERNAL on a deterministic hd64 m128n128w12 call).
  size_t bytes = flash::flash_bwd_workspace_bytes(key.block_m, key.block_n, p);
  if (key.arch == 90 && key.block_m != flash::kSm90BwdRows)
    bytes = std::max(bytes, flash::flash_bwd_workspace_bytes(flash::kSm90BwdRows, key.block_n, p));
  return bytes;
#else
  return 0;
#endif
}

}  // namespace attnforge
