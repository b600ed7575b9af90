// The Hopper backward's grid order (flash/bwd_grid_order.hpp): every (key tile, kv head, batch) CTA
// exactly once, the blocks before the tail unchanged, the tail longest first (key tile ascending, which
// under causal masks is the longest CTA first), and enough tail units for the tail to cover
// kTailLongestCtas longest CTAs on every SM.
#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "flash/bwd_grid_order.hpp"

namespace {

using attnforge::flash::bwd_cta_of;
using attnforge::flash::bwd_tail_units;
using attnforge::flash::BwdCta;

TEST(BwdGridOrder, EveryCtaOnceAndTheTailLongestFirst) {
  for (int key_tiles : {1, 2, 7, 16, 64})
    for (int heads : {1, 3, 32})
      for (int batch : {1, 2, 5}) {
        const int units = heads * batch;
        for (int tail = 0; tail <= units; tail += std::max(1, units / 4)) {
          SCOPED_TRACE(testing::Message() << key_tiles << " key tiles, " << heads << " heads, batch " << batch
                                          << ", tail " << tail);
          std::set<std::tuple<int, int, int>> seen;
          const int first = (units - tail) * key_tiles;
          int lin = 0, last_key_tile = 0;
          for (int z = 0; z < batch; ++z)
            for (int y = 0; y < heads; ++y)
              for (int x = 0; x < key_tiles; ++x, ++lin) {
                const BwdCta c = bwd_cta_of(x, y, z, key_tiles, heads, batch, tail);
                ASSERT_TRUE(c.key_tile >= 0 && c.key_tile < key_tiles && c.head_kv >= 0 && c.head_kv < heads &&
                            c.batch >= 0 && c.batch < batch);
                seen.insert({c.key_tile, c.head_kv, c.batch});
                if (lin < first) {
                  EXPECT_EQ(std::make_tuple(c.key_tile, c.head_kv, c.batch), std::make_tuple(x, y, z));
                } else {
                  EXPECT_GE(c.head_kv + heads * c.batch, units - tail) << "a tail block runs a tail unit";
                  EXPECT_GE(c.key_tile, last_key_tile) << "the tail walks key tiles in order";
                  last_key_tile = c.key_tile;
                }
              }
          EXPECT_EQ(int(seen.size()), units * key_tiles);
        }
      }
}

TEST(BwdGridOrder, TailUnits) {
  EXPECT_EQ(bwd_tail_units(64, 64, 132, false), 0) << "even tiles keep key tiles fastest";
  // 2 · kTailLongestCtas · SMs / key tiles, at most every unit.
  EXPECT_EQ(bwd_tail_units(64, 64, 132, true), (4 * 132 + 63) / 64);
  EXPECT_EQ(bwd_tail_units(16, 256, 132, true), 33);
  EXPECT_EQ(bwd_tail_units(16, 8, 132, true), 8);
  EXPECT_EQ(bwd_tail_units(128, 32, 132, true), 5);
  EXPECT_EQ(bwd_tail_units(64, 64, 0, true), 1) << "an unknown SM count counts as one SM";
  EXPECT_EQ(bwd_tail_units(0, 64, 132, true), 0);
}

}  // namespace
