// WsSchedule (flash/ws_schedule.hpp), the persistent Hopper forward's split of row blocks over CTAs:
// every (row block, head, batch) exactly once, heavy block first, and under a causal mask units of
// equal work, so that a static round-robin stays balanced; row blocks aligned to the sequence's end
// only where the mask makes later rows read more key tiles; the last rounds dealt longest block first
// (WsTail) cover every block once and balance causal work; the split last round of even work (WsSplit)
// covers every key tile of its blocks once, in balanced contiguous ranges, with unique workspace slots;
// CTA pairs walk units of two adjacent row blocks and split over half the SMs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "flash/ws_schedule.hpp"
#include "masks.hpp"

namespace {

using attnforge::flash::WsSchedule;
using attnforge::flash::WsSplit;
using attnforge::flash::WsTail;

// Causal, Sq = Sk = sq, 128-key tiles, blocks aligned to the end: key tiles of row block m + overhead.
auto causal_weight(int sq, int block_m, int overhead) {
  const int n_m = WsSchedule::row_blocks(sq, block_m), shift = n_m * block_m - sq;
  return [=](int m) { return (std::min(m * block_m - shift + block_m, sq) + 127) / 128 + overhead; };
}

// Every CTA's walk (round-robin units, then its tail) as the kernel does it, with each CTA's load.
std::map<std::pair<int, int>, int> walk(const WsSchedule& s, const WsTail& t, int grid, std::vector<double>* load,
                                        const std::function<int(int)>& weight) {
  std::map<std::pair<int, int>, int> seen;
  load->assign(size_t(grid), 0.0);
  for (int cta = 0; cta < grid; ++cta)
    for (int u = cta; u < t.end(); u += grid)
      for (int k = 0; k < t.blocks(s, u, cta); ++k) {
        const WsSchedule::Block b = t.at(s, u, k, cta);
        ++seen[{b.m_block, b.bh}];
        (*load)[size_t(cta)] += weight(b.m_block);
      }
  return seen;
}

TEST(WsSchedule, EveryRowBlockOnceHeavyFirst) {
  for (bool paired : {false, true})
    for (int sq : {1, 127, 128, 129, 640, 1000, 2048, 4096, 4097})
      for (int block_m : {128, 192})
        for (int heads : {1, 3, 4}) {
          const int batch = 2;
          const WsSchedule s(sq, block_m, heads, batch, paired);
          ASSERT_EQ(s.n_units, WsSchedule::count(sq, block_m, heads, batch, paired));
          std::map<std::pair<int, int>, int> seen;  // (m_block, batch · heads + head) → times
          for (int u = 0; u < s.n_units; ++u) {
            ASSERT_TRUE(s.blocks(u) == 1 || (paired && (s.blocks(u) == 0 || s.blocks(u) == 2)));
            for (int k = 0; k < s.blocks(u); ++k) {
              const WsSchedule::Block b = s.at(u, k);
              ASSERT_GE(b.m_block, 0);
              ASSERT_LT(b.m_block, s.n_m);
              ASSERT_GE(b.bh, 0);
              ASSERT_LT(b.bh, heads * batch);
              ++seen[{b.m_block, b.bh}];
            }
            if (s.blocks(u) == 2 && s.at(u, 0).bh == s.at(u, 1).bh)
              EXPECT_GT(s.at(u, 0).m_block, s.at(u, 1).m_block) << "heavy block first";
          }
          EXPECT_EQ(int(seen.size()), s.n_m * heads * batch) << "sq " << sq << " block_m " << block_m;
          for (const auto& [key, times] : seen) EXPECT_EQ(times, 1);
        }
}

// Causal, Sq = Sk, square tiles: row block m reads m + 1 key tiles, so a pair (k, n_m − 1 − k) reads
// n_m + 1, and two middle blocks of an odd n_m read n_m + 1 together as well.
TEST(WsSchedule, PairedUnitsCarryEqualCausalWork) {
  for (int n_m : {1, 2, 7, 8, 32, 33, 128})
    for (int heads : {16, 15}) {
      const WsSchedule s(n_m * 128, 128, heads, 1, true);
      for (int u = 0; u < s.n_units; ++u) {
        int work = 0;
        for (int k = 0; k < s.blocks(u); ++k) work += s.at(u, k).m_block + 1;
        if (s.blocks(u) == 2) EXPECT_EQ(work, n_m + 1) << "n_m " << n_m << " unit " << u;
        else if (s.blocks(u) == 1) EXPECT_EQ(s.at(u, 0).bh, heads - 1) << "only an odd head count leaves one alone";
      }
    }
}

// The static round-robin over 132 SMs under causal work with 192-row blocks and 128-key tiles (block m
// reads ceil(1.5 (m + 1)) tiles): the most loaded CTA within 8 % of the mean at the training grid's
// S 2048 (6 units a head, 132 = 22 · 6: the case a middle block alone per head left at 88 %).
TEST(WsSchedule, RoundRobinBalancedUnderCausalWork) {
  for (int sq : {2048, 4096, 8192}) {
    const int heads = 32, batch = 16384 / sq, grid = 132;
    const WsSchedule s(sq, 192, heads, batch, true);
    std::vector<double> load(grid, 0.0);
    double total = 0;
    for (int u = 0; u < s.n_units; ++u)
      for (int k = 0; k < s.blocks(u); ++k) {
        const double w = std::ceil(1.5 * std::min(s.at(u, k).m_block + 1, sq / 192 + 1));
        load[u % grid] += w, total += w;
      }
    EXPECT_LT(*std::max_element(load.begin(), load.end()), 1.08 * total / grid) << "sq " << sq;
  }
}

TEST(WsSchedule, AlignsToTheEndWhereLaterRowsReadMore) {
  namespace mk = attnforge::generated::mask;
  using attnforge::flash::ws_align_end;
  attnforge::Params p{};
  p.seqlen_q = p.seqlen_k = 4096;
  EXPECT_TRUE(ws_align_end<mk::causal>(p, 192, 128));
  EXPECT_FALSE(ws_align_end<mk::none>(p, 192, 128));
  EXPECT_FALSE(ws_align_end<mk::bias>(p, 192, 128)) << "a tensor mask: never";
  p.mask.v[0] = 256, p.mask.v[1] = 256;  // a symmetric window: every row reads as many tiles
  EXPECT_FALSE(ws_align_end<mk::window>(p, 192, 128));
  p.mask.v[0] = -1, p.mask.v[1] = 0;  // unbounded on the left: causal
  EXPECT_TRUE(ws_align_end<mk::window>(p, 192, 128));
  p.seqlen_q = 1, p.seqlen_k = 8192;  // decode: one row block, nothing to align
  EXPECT_FALSE(ws_align_end<mk::causal>(p, 192, 128));
  p.seqlen_q = 1000, p.seqlen_k = 64;  // bottom-right causal with Sk < Sq: the first rows see no key
  EXPECT_TRUE(ws_align_end<mk::causal>(p, 192, 128));
  EXPECT_FALSE(ws_align_end<mk::none>(p, 192, 128));
}

TEST(WsSchedule, TailCoversEveryBlockOnce) {
  for (int sq : {128, 640, 2048, 4096, 16384})
    for (int block_m : {128, 192})
      for (int heads : {1, 3, 32})
        for (int grid : {1, 7, 132, 144}) {
          const int batch = 2;
          const WsSchedule s(sq, block_m, heads, batch, true);
          const auto weight = causal_weight(sq, block_m, 2);
          const WsTail t = attnforge::flash::ws_tail(s, grid, weight);
          std::vector<double> load;
          const auto seen = walk(s, t, grid, &load, weight);
          ASSERT_EQ(int(seen.size()), s.n_m * heads * batch) << "sq " << sq << " block_m " << block_m << " grid " << grid;
          for (const auto& [key, times] : seen) ASSERT_EQ(times, 1);
        }
}

// The training grid under causal work (v21 fits: overhead 3 tiles at m192, 2 at m128): the tail brings the most
// loaded of 132 CTAs from 3.1–5.6 % above the mean (round-robin) to 0.3–2.1 % (1.1 % at S 2048, m192).
TEST(WsSchedule, TailBalancesCausalWork) {
  for (int sq : {1024, 2048, 4096, 8192, 16384})
    for (const auto& [block_m, heads, overhead] : {std::tuple{192, 32, 3}, std::tuple{128, 16, 2}}) {
      const WsSchedule s(sq, block_m, heads, 16384 / sq, true);
      const int grid = 132;
      const auto weight = causal_weight(sq, block_m, overhead);
      std::vector<double> before, after;
      walk(s, WsTail::none(s), grid, &before, weight);
      walk(s, attnforge::flash::ws_tail(s, grid, weight), grid, &after, weight);
      double total = 0;
      for (double l : after) total += l;
      const double mean = total / grid, max_before = *std::max_element(before.begin(), before.end());
      const double max_after = *std::max_element(after.begin(), after.end());
      EXPECT_LT(max_after, 1.025 * mean) << "sq " << sq << " block_m " << block_m;
      EXPECT_LT(max_after, max_before - 0.009 * mean) << "sq " << sq << " block_m " << block_m;
    }
}

TEST(WsSchedule, TailOnlyWhereTheTableFits) {
  const WsSchedule paired(2048, 192, 32, 8, true), single(2048, 192, 32, 8, false);
  const auto weight = causal_weight(2048, 192, 3);
  EXPECT_EQ(attnforge::flash::ws_tail(single, 132, weight).first_unit, single.n_units) << "unpaired: no tail";
  EXPECT_EQ(attnforge::flash::ws_tail(paired, WsTail::kMaxCtas + 1, weight).end(), paired.n_units)
      << "no tail: no extra unit, so a grid beyond the table never reads it";
  const WsSchedule long_rows(192 * 300, 192, 2, 1, true);  // 300 row blocks: beyond the 8-bit m_block
  EXPECT_EQ(attnforge::flash::ws_tail(long_rows, 132, causal_weight(192 * 300, 192, 3)).first_unit, long_rows.n_units);
  EXPECT_LT(attnforge::flash::ws_tail(paired, 132, weight).first_unit, paired.n_units);
}

// Every CTA's walk of an unpaired schedule with its split (round-robin units, then its pieces), as the
// kernel does it: each row block's key tiles exactly once, the split ranges within one tile of each
// other, at most two pieces per CTA, each split block's pieces from exactly first_cta … last_cta, and
// workspace slots unique and below blocks + grid.
TEST(WsSchedule, SplitCoversEveryKeyTileOnce) {
  int splits = 0;
  for (int sq : {128, 1000, 2048, 16384})
    for (int block_m : {128, 192})
      for (int heads : {1, 3, 16, 32})
        for (int batch : {1, 2, 8})
          for (int tiles : {1, 4, 16, 129})
            for (int grid : {1, 7, 132}) {
              const WsSchedule s(sq, block_m, heads, batch, false);
              const int g = std::min(grid, s.n_units);
              const WsSplit sp = WsSplit::plan(s, g, tiles);
              SCOPED_TRACE(testing::Message() << "sq " << sq << " block_m " << block_m << " heads " << heads
                                              << " batch " << batch << " tiles " << tiles << " grid " << g);
              std::map<std::pair<int, int>, std::vector<int>> seen;  // (m_block, bh) → times each tile was read
              std::map<int, std::vector<int>> ctas_of_block;
              std::vector<int> slots, range;
              for (int cta = 0; cta < g; ++cta) {
                int mine = 0;
                for (int u = cta; u < sp.end(); u += g) {
                  if (u < sp.first_unit) {
                    auto& v = seen[{s.at(u, 0).m_block, s.at(u, 0).bh}];
                    v.resize(size_t(tiles), 0);
                    for (int& x : v) ++x;
                    continue;
                  }
                  ASSERT_LE(sp.pieces(cta), 2);
                  for (int k = 0; k < sp.pieces(cta); ++k) {
                    const WsSplit::Piece pc = sp.piece(cta, k);
                    ASSERT_GE(pc.block, 0);
                    ASSERT_LT(pc.block, sp.blocks);
                    ASSERT_LT(pc.j_begin, pc.j_end);
                    ASSERT_LE(pc.j_end, tiles);
                    const WsSchedule::Block b = s.at(sp.first_unit + pc.block, 0);
                    auto& v = seen[{b.m_block, b.bh}];
                    v.resize(size_t(tiles), 0);
                    for (int j = pc.j_begin; j < pc.j_end; ++j) ++v[size_t(j)];
                    mine += pc.j_end - pc.j_begin;
                    ctas_of_block[pc.block].push_back(cta);
                    slots.push_back(WsSplit::slot(pc.block, cta));
                  }
                }
                if (sp.blocks) range.push_back(mine);
              }
              ASSERT_EQ(int(seen.size()), s.n_m * heads * batch);
              for (const auto& [key, v] : seen)
                for (int x : v) ASSERT_EQ(x, 1);
              if (!sp.blocks) continue;
              ++splits;
              EXPECT_LE(*std::max_element(range.begin(), range.end()) - *std::min_element(range.begin(), range.end()), 1);
              for (const auto& [b, ctas] : ctas_of_block) {  // the merge's walk: first … last, skipping empty ranges
                std::vector<int> walked;
                for (int c = sp.first_cta(b); c <= sp.last_cta(b); ++c)
                  if (sp.begin(c) != sp.begin(c + 1)) walked.push_back(c);
                ASSERT_EQ(ctas, walked) << "block " << b;
              }
              std::sort(slots.begin(), slots.end());
              EXPECT_EQ(std::adjacent_find(slots.begin(), slots.end()), slots.end()) << "a slot used twice";
              EXPECT_LT(slots.back(), sp.blocks + sp.grid);
            }
  EXPECT_GT(splits, 100) << "the grid above must exercise the split";
}

// Where the last round is split: unpaired schedules with a partial last round and rows of at least
// WsSplit::kMinTiles key tiles; dense calls with a known SM count. The training grid's D 128 shape
// (2048 blocks of 128 rows over 132 SMs) splits its last 68 blocks into 200 slots.
TEST(WsSchedule, SplitOnlyWherePartialRoundsAreEven) {
  const WsSchedule even(2048, 128, 16, 8, false);
  EXPECT_EQ(even.n_units, 2048);
  const WsSplit sp = WsSplit::plan(even, 132, 16);
  EXPECT_EQ(sp.blocks, 68);
  EXPECT_EQ(sp.first_unit, 15 * 132);
  EXPECT_EQ(sp.end(), 16 * 132);
  EXPECT_EQ(sp.workspace_bytes(256, 128), sp.counters_bytes(256) + size_t(200) * 256 * 66 * 4);
  EXPECT_EQ(WsSplit::plan(even, 128, 16).blocks, 0) << "whole rounds";
  EXPECT_EQ(WsSplit::plan(even, 132, WsSplit::kMinTiles - 1).blocks, 0) << "rows too short";
  EXPECT_EQ(WsSplit::plan(WsSchedule(2048, 128, 16, 8, true), 132, 16).blocks, 0) << "paired: WsTail's";
  EXPECT_EQ(WsSplit::plan(even, 132, 16).workspace_bytes(256, 128) > 0, true);
  EXPECT_EQ(WsSplit::none(even).end(), even.n_units);

  attnforge::Params p{};
  p.seqlen_q = p.seqlen_k = 2048, p.heads_q = 16, p.batch = 8, p.head_dim = 128, p.num_sms = 132;
  EXPECT_EQ(attnforge::flash::ws_split_for(p, 128, 128, false).blocks, 68);
  EXPECT_EQ(attnforge::flash::ws_split_for(p, 128, 128, true).blocks, 0);
  p.num_sms = 0;
  EXPECT_EQ(attnforge::flash::ws_split_for(p, 128, 128, false).blocks, 0) << "unknown SM count";
  p.num_sms = 132;
  const int cu[2] = {0, 2048};
  p.cu_seqlens_q = cu;
  EXPECT_EQ(attnforge::flash::ws_split_for(p, 128, 128, false).blocks, 0) << "varlen";
}

// CTA pairs (FwdWsConfig::kClusterPairs): a pair walks the schedule of 2 · block_m rows, rank r taking row
// block 2 · m + r of each unit, so every 128-row block is computed once; the split last round counts pair
// units over half the SMs (the training grid's D 128 shape: 1024 units over 66 pairs, 34 split), with a slot
// holding both CTAs' consumer threads.
TEST(WsSchedule, PairsWalkAdjacentBlocksAndSplitOverHalfTheSms) {
  const WsSchedule pairs(2048, 2 * 128, 16, 8, false);
  ASSERT_EQ(pairs.n_units, 1024);
  std::map<std::pair<int, int>, int> seen;
  for (int u = 0; u < pairs.n_units; ++u)
    for (int rank = 0; rank < 2; ++rank) ++seen[{pairs.at(u, 0).m_block * 2 + rank, pairs.at(u, 0).bh}];
  ASSERT_EQ(int(seen.size()), 16 * 16 * 8);
  for (const auto& [key, n] : seen) EXPECT_EQ(n, 1) << "row block " << key.first << " of head " << key.second;

  attnforge::Params p{};
  p.seqlen_q = p.seqlen_k = 2048, p.heads_q = 16, p.batch = 8, p.head_dim = 128, p.num_sms = 132;
  const WsSplit sp = attnforge::flash::ws_split_for(p, 128, 128, false, 2);
  EXPECT_EQ(sp.grid, 66);
  EXPECT_EQ(sp.blocks, 34);
  EXPECT_EQ(sp.first_unit, 15 * 66);
  EXPECT_EQ(sp.workspace_bytes(2 * 256, 128), sp.counters_bytes(512) + size_t(34 + 66) * 512 * 66 * 4);
  p.num_sms = 1;
  EXPECT_EQ(attnforge::flash::ws_split_for(p, 128, 128, false, 2).blocks, 0) << "no pair fits";
}

TEST(WsSchedule, UnitCountIn64Bits) {
  // 2^20 row blocks per sequence, 2^11 heads · 2^1 batch = 2^32 units: beyond int, which the launcher refuses.
  EXPECT_EQ(WsSchedule::count(1 << 27, 128, 2048, 2, false), int64_t(1) << 32);
  EXPECT_EQ(WsSchedule::count(1 << 27, 128, 2048, 2, true), int64_t(1) << 31);
}

}  // namespace
