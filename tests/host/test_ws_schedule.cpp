// WsSchedule (flash/ws_schedule.hpp), the persistent Hopper forward's split of row blocks over CTAs:
// every (row block, head, batch) exactly once, heavy block first, and under a causal mask paired
// units of equal work, so that a static round-robin stays balanced.
#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include "flash/ws_schedule.hpp"

namespace {

using attnforge::flash::WsSchedule;

TEST(WsSchedule, EveryRowBlockOnceHeavyFirst) {
  for (bool paired : {false, true})
    for (int sq : {1, 127, 128, 129, 640, 1000, 4096, 4097})
      for (int block_m : {128, 192}) {
        const int heads = 3, batch = 2;
        const WsSchedule s(sq, block_m, heads, batch, paired);
        ASSERT_EQ(s.n_units, WsSchedule::count(sq, block_m, heads, batch, paired));
        std::map<std::tuple<int, int, int>, int> seen;  // (m_block, head, batch) → times
        for (int u = 0; u < s.n_units; ++u) {
          ASSERT_TRUE(s.blocks(u) == 1 || (paired && s.blocks(u) == 2));
          for (int k = 0; k < s.blocks(u); ++k) {
            const int m = s.m_block(u, k);
            ASSERT_GE(m, 0);
            ASSERT_LT(m, s.n_m);
            ++seen[{m, s.head(u), s.batch(u)}];
          }
          if (s.blocks(u) == 2) EXPECT_GT(s.m_block(u, 0), s.m_block(u, 1)) << "heavy block first";
        }
        EXPECT_EQ(int(seen.size()), s.n_m * heads * batch) << "sq " << sq << " block_m " << block_m;
        for (const auto& [key, times] : seen) EXPECT_EQ(times, 1);
      }
}

// Causal, Sq = Sk, square tiles: row block m reads m + 1 key tiles, so a pair (k, n_m − 1 − k) reads
// n_m + 1 and only the unpaired middle block (odd n_m) reads fewer.
TEST(WsSchedule, PairedUnitsCarryEqualCausalWork) {
  for (int n_m : {1, 2, 7, 8, 32, 33, 128}) {
    const WsSchedule s(n_m * 128, 128, 16, 1, true);
    for (int u = 0; u < s.n_units; ++u) {
      int work = 0;
      for (int k = 0; k < s.blocks(u); ++k) work += s.m_block(u, k) + 1;
      if (s.blocks(u) == 2) EXPECT_EQ(work, n_m + 1);
      else EXPECT_EQ(s.m_block(u, 0), n_m / 2) << "only the middle block of an odd count is alone";
    }
  }
}

TEST(WsSchedule, UnitCountIn64Bits) {
  // 2^20 row blocks per sequence, 2^11 heads · 2^1 batch = 2^32 units: beyond int, which the launcher refuses.
  EXPECT_EQ(WsSchedule::count(1 << 27, 128, 2048, 2, false), int64_t(1) << 32);
  EXPECT_EQ(WsSchedule::count(1 << 27, 128, 2048, 2, true), int64_t(1) << 31);
}

}  // namespace
