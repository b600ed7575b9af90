// The order in which the Hopper backward's CTAs (one per key tile, kv head, batch) start: key tiles
// fastest, but the last tail units (batch, kv head) longest CTA first (host and device, no CUDA needed).
// flash/bwd_sm90.cuh launches and decodes with these; tests/host/test_bwd_grid_order.cpp checks them.
#pragma once
#include <algorithm>
#include <cstdint>

#include "common/hd.hpp"

namespace attnforge::flash {

// The tail units' work covers at least this many of the longest CTA's lengths on every SM.
inline constexpr int kTailLongestCtas = 2;

// How many (batch, kv head) units run longest first at the end of a grid of `units` units of key_tiles
// CTAs on `sms` SMs. Key tiles fastest keeps a unit's CTAs, which read the same Q / dO tiles and add to
// the same dQ rows, running together, so they share those rows in L2. When the mask empties tiles
// (`uneven`: causal, a window) key tiles differ in work, and the last unit's longest CTA would start late
// and run alone; so the last units run key tiles slowest (every unit's first key tile, then every unit's
// second …), longest first, and the shortest CTAs fill the tail. A unit of T key tiles holds about T / 2
// longest CTAs of work, so the tail needs 2 · kTailLongestCtas · sms / T units. Even tiles: 0.
inline int bwd_tail_units(int key_tiles, int units, int sms, bool uneven) {
  if (!uneven || key_tiles <= 0 || units <= 0) return 0;
  const int64_t want = (int64_t(2) * kTailLongestCtas * std::max(sms, 1) + key_tiles - 1) / key_tiles;
  return int(std::min<int64_t>(units, want));
}

struct BwdCta {
  int key_tile, head_kv, batch;
};

// The CTA that block (x, y, z) of the grid (key_tiles, heads_kv, batch) runs: itself before the tail;
// in the tail (its last tail_units units), block r of the tail is key tile r / tail_units of tail unit
// r % tail_units.
ATTNFORGE_HD BwdCta bwd_cta_of(int x, int y, int z, int key_tiles, int heads_kv, int batch, int tail_units) {
  const int units = heads_kv * batch;
  const int64_t first = int64_t(units - tail_units) * key_tiles;
  const int64_t lin = x + int64_t(key_tiles) * (y + int64_t(heads_kv) * z);
  if (tail_units <= 0 || lin < first) return {x, y, z};
  const int r = int(lin - first), unit = units - tail_units + r % tail_units;
  return {r / tail_units, unit % heads_kv, unit / heads_kv};
}

}  // namespace attnforge::flash
