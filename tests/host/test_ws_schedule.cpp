// WsSchedule (flash/ws_schedule.hpp), the persistent Hopper forward's split of row blocks over CTAs:
// every (row block, head, batch) exactly once, heavy block first, and under a causal mask units of
// equal work, so that a static round-robin stays balanced; row blocks aligned to the sequence's end
// only where the mask makes later rows read more key tiles.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>
#include <vector>

#include "flash/ws_schedule.hpp"
#include "masks.hpp"

namespace {

using attnforge::flash::WsSchedule;

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

TEST(WsSchedule, UnitCountIn64Bits) {
  // 2^20 row blocks per sequence, 2^11 heads · 2^1 batch = 2^32 units: beyond int, which the launcher refuses.
  EXPECT_EQ(WsSchedule::count(1 << 27, 128, 2048, 2, false), int64_t(1) << 32);
  EXPECT_EQ(WsSchedule::count(1 << 27, 128, 2048, 2, true), int64_t(1) << 31);
}

}  // namespace
