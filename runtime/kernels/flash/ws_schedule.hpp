// Which row blocks a persistent CTA of the warp-specialized forward (flash/fwd_sm90_ws.cuh) takes, and
// in what order: units of one or two row blocks, walked by static round-robin over the grid.
#pragma once
#include <cstdint>

#include "common/hd.hpp"

namespace attnforge::flash {

// CTA i takes units i, i + G, … (G = min(SMs, units)). Units of one (batch, head) are consecutive,
// so CTAs running together share its K/V in L2. `paired` (a mask that makes row blocks differ in
// work): a unit is two row blocks k and n_m − 1 − k of one (batch, head), heavy first (the middle one
// alone when n_m is odd), so that under a causal mask every unit carries about the same work (n_m + 1
// key tiles with square tiles); a static split of single heavy-first blocks left some CTAs 1.4× the
// work of others. Otherwise a unit is one row block.
struct WsSchedule {
  bool paired;
  int n_m, per_head, heads, n_units;  // row blocks per sequence; units per (batch, head); Hq; all units
  ATTNFORGE_HD WsSchedule(int seqlen_q, int block_m, int heads_q, int batch, bool pair_blocks)
      : paired(pair_blocks), n_m(row_blocks(seqlen_q, block_m)), per_head(units_per_head(n_m, paired)),
        heads(heads_q), n_units(per_head * heads_q * batch) {}  // = count(): the launcher checked it fits
  // All units, in 64 bits (the launcher refuses more than 2^31 − 1).
  ATTNFORGE_HD static int64_t count(int seqlen_q, int block_m, int heads_q, int batch, bool pair_blocks) {
    return units_per_head(row_blocks(int64_t(seqlen_q), block_m), pair_blocks) * heads_q * batch;
  }
  // One formula for the device (int) and the launcher's check (int64_t).
  template <class I>
  ATTNFORGE_HD static I row_blocks(I seqlen_q, int block_m) { return (seqlen_q + block_m - 1) / block_m; }
  template <class I>
  ATTNFORGE_HD static I units_per_head(I n_m, bool paired) { return paired ? (n_m + 1) / 2 : n_m; }
  ATTNFORGE_HD int blocks(int u) const { return paired && u % per_head < n_m - 1 - u % per_head ? 2 : 1; }
  ATTNFORGE_HD int m_block(int u, int k) const { return k == 0 ? n_m - 1 - u % per_head : u % per_head; }
  ATTNFORGE_HD int head(int u) const { return (u / per_head) % heads; }
  ATTNFORGE_HD int batch(int u) const { return u / (per_head * heads); }
};

}  // namespace attnforge::flash
