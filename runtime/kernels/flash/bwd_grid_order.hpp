// The order in which the Hopper backward's CTAs (one per key tile, kv head, batch) start: key tiles
// fastest, or longest CTA first over some of the (batch, kv head) units (host and device, no CUDA needed).
// flash/bwd_sm90.cuh launches and decodes with these; tests/host/test_bwd_grid_order.cpp checks them.
#pragma once
#include <algorithm>
#include <cstdint>

#include "common/hd.hpp"

namespace attnforge::flash {

// The tail units' work covers at least this many of the longest CTA's lengths on every SM.
inline constexpr int kTailLongestCtas = 2;
// Key tiles from which uneven tiles too run key tiles fastest, without a tail: a unit's CTAs then fill
// the GPU many times over (causal D 128 S 16384: 4839 / 4897 → 4769 / 4732 µs against heads fastest, H200,
// twelfth session; with the tail below 0.975× of that, D 64 0.995×, twenty-seventh session).
inline constexpr int kKeyTilesFastestFrom = 128;
// Head dims up to which a batch whose heads overflow the L2 takes key tiles fastest and the tail.
// H200, bf16, B·S 16384, H·D 2048, causal, sustained compare against the batch-by-batch order, two calls
// of two runs each: D 64 S 4096 1.040 / 1.015×, S 8192 1.041 / 1.042× (DRAM reads per call 2.24 → 0.41
// GB at S 8192, cuDNN's 0.41); D 128 S 4096 0.959 / 0.994×, S 8192 0.997 / 0.991× (DRAM 1.27 → 0.53 GB,
// 2.97 → 3.00 ms at base clock): at D 128 a step does twice the FLOPs per byte, and the saved DRAM
// energy does not pay for the tail (bench/results/h200_2026-12-01_bwd_grid_order.md).
inline constexpr int kTailMaxHeadDim = 64;

// Which units (batch, kv head) of a grid of `units` units of key_tiles CTAs each start longest CTA
// first, and in chunks of how many: the last tail_units of the grid, `chunk` units at a time (each
// chunk's first key tile of every unit, then its second …). The units before the tail run key tiles
// fastest.
struct BwdGridOrder {
  int tail_units = 0, chunk = 1;
};

// What a call asks of the order: the measured choice below, or one order wherever tiles are uneven
// (ATTNFORGE_FLASH_BWD_ORDER=tail | batch: tests at shapes a CPU reference affords, A/B runs).
enum class BwdOrderAsk { measured, tail, batch };

// The order for a call on `sms` SMs whose L2 holds l2_bytes. `uneven`: the mask empties tiles (causal,
// a window), so key tiles differ in work; else key tiles fastest throughout (and from
// kKeyTilesFastestFrom key tiles on). unit_bytes: the Q / dO rows, dQ accumulator and LSE / D rows one
// unit's CTAs stream.
//   - batch: heads fastest, batch by batch, longest first (a chunk per batch): balances the tail, and
//     where a batch's heads fit the L2 reads each batch's rows from DRAM about once.
//   - tail (head dims up to kTailMaxHeadDim whose batch's heads overflow the L2): key tiles fastest, so
//     a unit's CTAs, which read the same Q / dO tiles and add to the same dQ rows, run together and
//     share them in L2; the last units longest first, so that the last unit's longest CTA does not start
//     late and run alone: a unit of T key tiles holds about T / 2 longest CTAs of work, so the tail
//     takes 2 · kTailLongestCtas · sms / T units.
inline BwdGridOrder bwd_grid_order(int key_tiles, int heads_kv, int batch, int head_dim, int64_t unit_bytes,
                                   int64_t l2_bytes, int sms, bool uneven, BwdOrderAsk ask = BwdOrderAsk::measured) {
  const int units = heads_kv * batch;
  if (!uneven || key_tiles <= 0 || units <= 0) return {};
  const BwdGridOrder by_batch{units, heads_kv};
  if (ask == BwdOrderAsk::batch) return by_batch;
  if (ask == BwdOrderAsk::measured) {
    if (key_tiles >= kKeyTilesFastestFrom) return {};
    if (head_dim > kTailMaxHeadDim || int64_t(heads_kv) * unit_bytes <= l2_bytes) return by_batch;
  }
  const int64_t want = (int64_t(2) * kTailLongestCtas * std::max(sms, 1) + key_tiles - 1) / key_tiles;
  const int tail = int(std::min<int64_t>(units, want));
  return {tail, tail};
}

struct BwdCta {
  int key_tile, head_kv, batch;
};

// The CTA that block (x, y, z) of the grid (key_tiles, heads_kv, batch) runs under order o: itself before
// the tail; block r of the tail is key tile (r mod c·T) / c of unit r / (c·T) · c + r mod c of the tail
// (c = o.chunk, T = key_tiles; o.tail_units is a multiple of c).
ATTNFORGE_HD BwdCta bwd_cta_of(int x, int y, int z, int key_tiles, int heads_kv, int batch, BwdGridOrder o) {
  const int units = heads_kv * batch;
  const int64_t first = int64_t(units - o.tail_units) * key_tiles;
  const int64_t lin = x + int64_t(key_tiles) * (y + int64_t(heads_kv) * z);
  if (o.tail_units <= 0 || lin < first) return {x, y, z};
  const int64_t r = lin - first, per_chunk = int64_t(o.chunk) * key_tiles;
  const int in_chunk = int(r % per_chunk);
  const int unit = units - o.tail_units + int(r / per_chunk) * o.chunk + in_chunk % o.chunk;
  return {in_chunk / o.chunk, unit % heads_kv, unit / heads_kv};
}

}  // namespace attnforge::flash
