// WsUnits (fused/ws_units.hpp), the warp-specialized fused forward's split of row blocks over persistent
// CTAs: every (row block, head, batch) exactly once, the longer block of a pair first, units of one head
// consecutive (head-major), and under a causal mask (square, 128-row blocks and 128-key tiles) units of
// equal work, so that a static round-robin stays balanced; the 64-bit count the launcher checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <utility>

#include "fused/ws_units.hpp"

namespace {

using attnforge::fused::WsUnits;

TEST(FusedWsUnits, EveryRowBlockOnceLongerFirstHeadMajor) {
  for (bool paired : {false, true})
    for (int sq : {1, 127, 128, 129, 256, 384, 1000, 1024, 4097})
      for (int heads : {1, 3, 4})
        for (int batch : {1, 2}) {
          const WsUnits s(sq, 128, heads, batch, paired);
          ASSERT_EQ(s.n_units, WsUnits::count(sq, 128, heads, batch, paired));
          std::map<std::pair<int, int>, int> seen;  // (m_block, batch · heads + head) → times
          int last_bh = 0;
          for (int u = 0; u < s.n_units; ++u) {
            ASSERT_TRUE(s.blocks(u) == 1 || (paired && s.blocks(u) == 2));
            for (int k = 0; k < s.blocks(u); ++k) {
              const WsUnits::Block b = s.at(u, k);
              ASSERT_GE(b.m_block, 0);
              ASSERT_LT(b.m_block, s.n_m);
              ASSERT_LT(b.bh, heads * batch);
              ASSERT_GE(b.bh, last_bh) << "units of a head are consecutive";
              last_bh = b.bh;
              ++seen[{b.m_block, b.bh}];
            }
            if (s.blocks(u) == 2) EXPECT_GT(s.at(u, 0).m_block, s.at(u, 1).m_block) << "the longer block first";
          }
          EXPECT_EQ(seen.size(), size_t(s.n_m) * heads * batch);
          for (const auto& [block, times] : seen) EXPECT_EQ(times, 1) << block.first << " " << block.second;
        }
}

// Causal, Sq = Sk: row block m reads m + 1 key tiles of 128; a pair reads n_m + 1 (a lone middle block,
// odd n_m, half of that rounded up).
TEST(FusedWsUnits, CausalPairsCarryEqualWork) {
  for (int sq : {256, 512, 1024, 1280, 4096}) {
    const WsUnits s(sq, 128, 2, 3, true);
    for (int u = 0; u < s.n_units; ++u) {
      int tiles = 0;
      for (int k = 0; k < s.blocks(u); ++k) tiles += s.at(u, k).m_block + 1;
      if (s.blocks(u) == 2) EXPECT_EQ(tiles, s.n_m + 1) << "S " << sq << " unit " << u;
      else EXPECT_EQ(tiles, (s.n_m + 1) / 2) << "S " << sq << " unit " << u;
    }
  }
}

TEST(FusedWsUnits, CountIsSixtyFourBit) {
  // 2^31 − 2^16 rows, 1024 heads: far past int, as the launcher sees it before it refuses the call.
  const int sq = 0x7fffffff - 65535;
  const int64_t n_m = (int64_t(sq) + 127) / 128;
  EXPECT_EQ(WsUnits::count(sq, 128, 1024, 1, false), n_m * 1024);
  EXPECT_EQ(WsUnits::count(sq, 128, 1024, 1, true), (n_m + 1) / 2 * 1024);
  EXPECT_GT(WsUnits::count(sq, 128, 1024, 1, true), int64_t(INT32_MAX));
}

}  // namespace
