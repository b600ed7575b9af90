// Which row blocks a persistent CTA of the warp-specialized forward (flash/fwd_sm90_ws.cuh) takes, and
// in what order: units of one or two row blocks, walked by static round-robin over the grid, the last
// rounds of uneven work dealt longest block first (WsTail), the last partial round of even work split
// along keys (WsSplit), and whether the blocks align to the end of each sequence.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/hd.hpp"
#include "common/params.hpp"

namespace attnforge::flash {

// CTA i takes units i, i + G, … (G = min(SMs, units)). Units of one (batch, head) are consecutive,
// so CTAs running together share its K/V in L2; heads are numbered bh = batch · Hq + head.
//
// Not paired (every row block the same work): a unit is one row block, the last first.
//
// `paired` (a mask that makes row blocks differ in work): a unit is two row blocks k and n_m − 1 − k
// of one head, heavy first, so that under a causal mask every unit carries about the same work
// (n_m + 1 key tiles with square tiles); a static split of single heavy-first blocks left some CTAs
// 1.4× the work of others. Heads go two at a time, n_m units per pair of heads: head 2g's pairs,
// head 2g + 1's, then (odd n_m) the two heads' middle blocks together. A middle block alone per head
// made units of half the work that fell on the same CTAs every round whenever the grid was a multiple
// of the units per head: S 2048 with 192-row blocks is 6 units a head, and 132 SMs = 22 · 6, so every
// sixth CTA had half the work of the others (a model of the static split: 88 % of the mean load).
struct WsSchedule {
  struct Block {
    int m_block, bh;  // row block inside its sequence; batch · Hq + head
  };
  bool paired;
  int n_m, n_bh, n_units;  // row blocks per sequence; batch · Hq; all units
  ATTNFORGE_HD WsSchedule(int seqlen_q, int block_m, int heads_q, int batch, bool pair_blocks)
      : paired(pair_blocks), n_m(row_blocks(seqlen_q, block_m)), n_bh(heads_q * batch),
        n_units(int(units(n_m, int64_t(n_bh), paired))) {}  // the launcher checked count() fits
  // All units, in 64 bits (the launcher refuses more than 2^31 − 1).
  ATTNFORGE_HD static int64_t count(int seqlen_q, int block_m, int heads_q, int batch, bool pair_blocks) {
    return units(row_blocks(int64_t(seqlen_q), block_m), int64_t(heads_q) * batch, pair_blocks);
  }
  template <class I>
  ATTNFORGE_HD static I row_blocks(I seqlen_q, int block_m) { return (seqlen_q + block_m - 1) / block_m; }
  ATTNFORGE_HD static int64_t units(int64_t n_m, int64_t n_bh, bool paired) {
    return paired ? n_m * ((n_bh + 1) / 2) : n_m * n_bh;  // paired: the last pair of an odd n_bh is half empty
  }

  // Row blocks of unit u: 0, 1 or 2 (0 only for the second head's pairs when n_bh is odd).
  ATTNFORGE_HD int blocks(int u) const {
    if (!paired) return 1;
    const int g = u / n_m, r = u % n_m, pairs = n_m / 2;
    if (r == 2 * pairs) return 2 * g + 1 < n_bh ? 2 : 1;  // the middle blocks of heads 2g, 2g + 1
    return 2 * g + (r >= pairs) < n_bh ? 2 : 0;
  }
  // Block k < blocks(u) of unit u.
  ATTNFORGE_HD Block at(int u, int k) const {
    const int g = u / n_m, r = u % n_m;
    if (!paired) return {n_m - 1 - r, g};
    const int pairs = n_m / 2;
    if (r == 2 * pairs) return {pairs, 2 * g + k};
    const int second = r >= pairs, i = r - second * pairs;
    return {k == 0 ? n_m - 1 - i : i, 2 * g + second};
  }
};

// The last rounds of a paired schedule, balanced. Round-robin leaves the last round partly empty (S 2048
// with 192-row blocks: 1408 units over 132 CTAs, 10.67 rounds) and units only nearly equal, so the most
// loaded CTA carries ~5 % more than the mean (a model of block cycles = overhead + key tiles · cycles
// per tile, from the v21 timeline). Units from first_unit on are not dealt round-robin: their row
// blocks go longest first, each to the CTA with the least work so far (longest-processing-time), which
// the model puts within 1 % of the mean. The launcher builds the table (ws_tail, host) once per shape
// and passes it in the kernel's parameters: 16-bit entries, m_block · 256 + (bh − bh_base).
struct WsTail {
  static constexpr int kMaxCtas = 144, kMaxBlocks = 8;
  int first_unit;  // units before it go round-robin; the schedule's unit count: no tail
  int span;        // the grid where there is a tail (one more unit per CTA), else 0
  int bh_base;
  uint8_t count[kMaxCtas];                // tail blocks of CTA i
  uint16_t entry[kMaxCtas][kMaxBlocks];   // CTA i's tail blocks, longest first
  // The units CTA `cta` walks, u = cta, cta + grid, … < end(): round-robin units below first_unit, then
  // (with a tail) one more, the first u ≥ first_unit of the progression, whose blocks are its entries.
  ATTNFORGE_HD int end() const { return first_unit + span; }
  ATTNFORGE_HD int blocks(const WsSchedule& s, int u, int cta) const { return u < first_unit ? s.blocks(u) : count[cta]; }
  ATTNFORGE_HD WsSchedule::Block at(const WsSchedule& s, int u, int k, int cta) const {
    if (u < first_unit) return s.at(u, k);
    const int e = entry[cta][k];
    return {e >> 8, bh_base + (e & 255)};
  }
  // Whether a table can describe the tail of s over `grid` CTAs (paired units, 8-bit row blocks).
  static bool fits(const WsSchedule& s, int grid) { return s.paired && grid > 0 && grid <= kMaxCtas && s.n_m <= 256; }
  static WsTail none(const WsSchedule& s) {
    WsTail t{};
    t.first_unit = s.n_units;
    return t;
  }
};

// Host: the tail table for `grid` CTAs, dealing the last whole round and the partial one; weight(m) is
// the work of row block m (any unit, e.g. key tiles + overhead). No tail (WsTail::none) for unpaired
// schedules, more CTAs than the table has, or blocks the 16-bit entries cannot name.
template <class Weight>
inline WsTail ws_tail(const WsSchedule& s, int grid, Weight weight) {
  WsTail t = WsTail::none(s);
  if (!WsTail::fits(s, grid)) return t;
  const int first = std::max(0, (s.n_units / grid - 1) * grid);
  std::vector<double> load(size_t(grid), 0.0);
  for (int u = 0; u < first; ++u)
    for (int k = 0; k < s.blocks(u); ++k) load[size_t(u % grid)] += weight(s.at(u, k).m_block);
  std::vector<WsSchedule::Block> tail;
  for (int u = first; u < s.n_units; ++u)
    for (int k = 0; k < s.blocks(u); ++k) tail.push_back(s.at(u, k));
  if (tail.empty()) return t;
  int lo = tail[0].bh, hi = tail[0].bh;
  for (const auto& b : tail) lo = std::min(lo, b.bh), hi = std::max(hi, b.bh);
  if (hi - lo > 255) return t;
  std::stable_sort(tail.begin(), tail.end(), [&](const WsSchedule::Block& a, const WsSchedule::Block& b) {
    return weight(a.m_block) > weight(b.m_block);
  });
  t.bh_base = lo;
  for (const auto& b : tail) {
    const int c = int(std::min_element(load.begin(), load.end()) - load.begin());  // ties: lowest CTA
    if (t.count[c] == WsTail::kMaxBlocks) return WsTail::none(s);
    t.entry[c][t.count[c]++] = uint16_t(b.m_block << 8 | (b.bh - lo));
    load[size_t(c)] += weight(b.m_block);
  }
  t.first_unit = first, t.span = grid;
  return t;
}

// Consumer threads of a warp-specialized forward tile with block_m query rows: one warpgroup (128
// threads) per 64 rows. The kernel (FwdWsConfig::kConsumerThreads) and the split's workspace size
// (runtime/src/workspace_flash.cpp) both count with it.
constexpr int ws_consumer_threads(int block_m) { return block_m / 64 * 128; }

// The last partial round of an unpaired schedule (every row block the same key tiles), split along
// keys. Round-robin over G CTAs leaves rem = n_units mod G blocks for a last round in which G − rem CTAs
// idle: the kernel takes ⌈n_units / G⌉ block times for n_units / G of work (D 128, m128, any length of
// the training grid: 2048 blocks = 15.52 rounds of 132, run as 16). Here the key tiles of those rem
// blocks, W = rem · T in (block, tile) order, go in equal contiguous ranges to all G CTAs (stream-K):
// CTA c takes tiles [⌊c·W/G⌋, ⌊(c+1)·W/G⌋), at most two pieces since W/G < T. A piece short of its
// whole block leaves its normalized O and LSE in a workspace slot and counts its tiles on the block's
// counter; the warp that completes a count merges the block's partials in piece order (the same sum
// whoever arrives last: deterministic) and stores O (flash/ws_split_merge.cuh).
struct WsSplit {
  // Fewest key tiles per block worth splitting: a piece costs a block's fixed work (~2 tiles at m128
  // D 128, FwdWsConfig::kBlockOverheadTiles) and its merge, which short rows do not repay.
  static constexpr int kMinTiles = 4;
  int first_unit;  // units before it go round-robin; from it, one more unit per CTA: its pieces
  int tiles;       // key tiles per row block (T)
  int grid;        // G
  int blocks;      // split blocks (rem); 0: no split, first_unit = all units
  struct Piece {
    int block, j_begin, j_end;  // split block (0 … blocks − 1, unit first_unit + block); its key tiles
  };
  ATTNFORGE_HD int64_t work() const { return int64_t(blocks) * tiles; }
  ATTNFORGE_HD int begin(int cta) const { return int(int64_t(cta) * work() / grid); }  // CTA's first tile
  ATTNFORGE_HD int cta_of(int x) const { return int(((int64_t(x) + 1) * grid - 1) / work()); }  // tile x's CTA
  ATTNFORGE_HD int end() const { return blocks ? first_unit + grid : first_unit; }
  ATTNFORGE_HD int pieces(int cta) const {
    const int lo = begin(cta), hi = begin(cta + 1);
    return hi > lo ? (hi - 1) / tiles - lo / tiles + 1 : 0;
  }
  ATTNFORGE_HD Piece piece(int cta, int k) const {
    const int lo = begin(cta), hi = begin(cta + 1), b = lo / tiles + k, b0 = b * tiles;
    return {b, (lo > b0 ? lo : b0) - b0, (hi < b0 + tiles ? hi : b0 + tiles) - b0};
  }
  // The CTAs whose pieces make up block b (those between them with an empty range have none: fewer
  // split tiles than CTAs), and the workspace slot of CTA c's piece of it: b + c, unique because
  // consecutive blocks share at most one CTA; at most blocks + grid − 1 slots.
  ATTNFORGE_HD int first_cta(int b) const { return cta_of(b * tiles); }
  ATTNFORGE_HD int last_cta(int b) const { return cta_of(b * tiles + tiles - 1); }
  ATTNFORGE_HD static int slot(int b, int cta) { return b + cta; }

  // Workspace: [int32 counters, one per (block, consumer warp)][fp32 slots, 256-byte aligned], a slot
  // holding per consumer thread its D/2 accumulators of O and its two rows' LSE (fragment order).
  ATTNFORGE_HD static constexpr size_t slot_floats(int consumer_threads, int head_dim) {
    return size_t(consumer_threads) * size_t(head_dim / 2 + 2);
  }
  ATTNFORGE_HD size_t counters_bytes(int consumer_threads) const {
    return (size_t(blocks) * size_t(consumer_threads / 32) * sizeof(int32_t) + 255) & ~size_t(255);
  }
  ATTNFORGE_HD size_t workspace_bytes(int consumer_threads, int head_dim) const {
    if (!blocks) return 0;
    return counters_bytes(consumer_threads) +
           size_t(blocks + grid) * slot_floats(consumer_threads, head_dim) * sizeof(float);
  }

  static WsSplit none(const WsSchedule& s) { return {s.n_units, 0, 0, 0}; }
  // The split of s's last round over `grid` CTAs with T key tiles per block; none for paired schedules
  // (WsTail balances those), whole rounds, or rows too short to repay a piece.
  static WsSplit plan(const WsSchedule& s, int grid, int tiles) {
    WsSplit w = none(s);
    if (s.paired || grid <= 0 || tiles < kMinTiles || s.n_units <= grid || s.n_units % grid == 0) return w;
    w.blocks = s.n_units % grid;
    w.first_unit = s.n_units - w.blocks, w.tiles = tiles, w.grid = grid;
    return w;
  }
};

// Host: the split a warp-specialized forward of (block_m, block_n) would take for p on p.num_sms SMs
// (dense calls with every row block alike: `paired` false), and its workspace; the launcher and
// runtime/src/workspace_flash.cpp both ask here. blocks == 0 (no split) for varlen calls, whose
// lengths are on the device, or an unknown SM count; callers test blocks and take WsSplit::none of their
// own schedule then (first_unit here is 0: these cases have no schedule to count). cluster 2: CTA pairs
// walk units of two adjacent row blocks (block_m · 2 rows), num_sms / 2 of them.
inline WsSplit ws_split_for(const Params& p, int block_m, int block_n, bool paired, int cluster = 1) {
  const int64_t units = WsSchedule::count(p.seqlen_q, block_m * cluster, p.heads_q, p.batch, paired);
  if (paired || p.is_varlen() || p.num_sms < cluster || units <= 0 || units > INT32_MAX / 2) return WsSplit{};
  const WsSchedule s(p.seqlen_q, block_m * cluster, p.heads_q, p.batch, paired);
  return WsSplit::plan(s, int(std::min<int64_t>(units, p.num_sms / cluster)), (p.seqlen_k + block_n - 1) / block_n);
}

// Host: how many block_n-key tiles rows q_first … q_last of the longest sequence read (the mask leaves
// them non-empty), O(Sk / block_n): a row block's work for ws_align_end and the tail's weights.
template <class Mask>
inline int live_key_tiles(const Params& p, int q_first, int q_last, int block_n) {
  int n = 0;
  for (int k0 = 0; k0 < p.seqlen_k; k0 += block_n)
    n += Mask::classify(q_first, q_last, k0, std::min(k0 + block_n, p.seqlen_k) - 1, p.seqlen_q, p.seqlen_k,
                        p.mask) != TileClass::kEmpty;
  return n;
}

// Where a sequence's rows are not a multiple of kBlockM, one row block is partial, and its missing rows
// cost as much as real ones. Under a mask whose later rows see more keys (causal) the partial block is
// better first, where it reads the fewest key tiles: the blocks are then aligned to the sequence's end.
// With 192-row blocks and 128-key tiles under causal, tile steps per head fall 5 % at S 2048 / 4096 and
// 1.5 % at S 8192 / 16384. Decided per call (host, O(Sk / block_n)) from the mask's non-empty key
// tiles for the first and the last block_m rows of the longest sequence; never for masks with a tensor.
template <class Mask>
inline bool ws_align_end(const Params& p, int block_m, int block_n) {
  if (Mask::kHasTensor || p.seqlen_q <= block_m) return false;
  return live_key_tiles<Mask>(p, 0, block_m - 1, block_n) <
         live_key_tiles<Mask>(p, p.seqlen_q - block_m, p.seqlen_q - 1, block_n);
}

}  // namespace attnforge::flash
