// Scratch of the flash backend. Forward: the warp-specialized Hopper kernel's split last round
// (WsSplit in flash/ws_schedule.hpp: per-piece partial O and LSE, counters; dense calls without a mask,
// a few MB), nothing for other variants. Backward: the layout the flash backward declares in
// flash/bwd_workspace.hpp (fp32 row sums D, the fp32 dQ accumulator, deterministic-mode counters, the
// Hopper kernel's split last wave).
#include "workspace.hpp"

#include <algorithm>

#include "common/mask.hpp"

#if __has_include("flash/bwd_workspace.hpp")
#include "flash/bwd_workspace.hpp"
#define ATTNFORGE_HAVE_FLASH_BWD_WORKSPACE 1
#endif
#if __has_include("flash/ws_schedule.hpp")
#include "flash/ws_schedule.hpp"
#define ATTNFORGE_HAVE_FLASH_WS_SCHEDULE 1
#endif

namespace attnforge {

size_t workspace_bytes_flash(const VariantKey& key, const Params& p) {
  // Row blocks (forward) and key tiles (backward) of the warp-specialized kernels differ in work under
  // masks that empty tiles (FwdWsConfig::kUnevenRows, BwdSm90Config::kSplitsWave): no split there.
  const char* name = mask_name(key.mask_id);
  const bool uneven = mask_empties_tiles(name ? name : "");
  if (key.direction == Direction::fwd) {
#ifdef ATTNFORGE_HAVE_FLASH_WS_SCHEDULE
    // sm90a tiles run the warp-specialized kernel, mask-free tiles maybe as CTA pairs (FwdWsConfig::kClusterPairs,
    // whose split counts units of two row blocks over half the SMs): sized for either.
    if (key.arch != 90) return 0;
    size_t bytes = 0;
    for (int cluster : {1, 2})
      bytes = std::max(bytes, flash::ws_split_for(p, key.block_m, key.block_n, uneven, cluster)
                                  .workspace_bytes(flash::ws_consumer_threads(key.block_m * cluster), p.head_dim));
    return bytes;
#else
    return 0;
#endif
  }
#ifdef ATTNFORGE_HAVE_FLASH_BWD_WORKSPACE
  // An sm90a tile runs as its 64-query-step twin (BwdSm90Fallback) where the Hopper kernel does not take
  // the call (deterministic mode, keys in one tile, a layout TMA cannot describe), so it is sized for
  // both: a 128-query tile counts half the deterministic semaphores of the 64-query one. Sized for its
  // own tile alone, a caller's workspace of exactly this size failed that fallback (GPU sweep,
  // 2026-11-30: ATTNFORGE_INTERNAL on a deterministic hd64 m128n128w12 call).
  size_t bytes = flash::flash_bwd_workspace_bytes(key.block_m, key.block_n, p);
  if (key.arch == 90) {
    // The warp-specialized form's split last wave (BwdSplit): mask-free dense calls, as run_bwd_sm90_ws asks.
    const flash::BwdSplit split = flash::bwd_split_for(p, key.block_m, key.block_n, !uneven);
    bytes = std::max(bytes, flash::flash_bwd_workspace_bytes(flash::kSm90BwdRows, key.block_n, p, split));
  }
  return bytes;
#else
  return 0;
#endif
}

}  // namespace attnforge
