// The Hopper backward's grid order (flash/bwd_grid_order.hpp): every (key tile, kv head, batch) CTA
// exactly once, the blocks before the tail unchanged, each chunk of the tail longest first (key tile
// ascending, which under causal masks is the longest CTA first); the order chosen: batch by batch (the
// order of the grid (kv heads, key tiles, batch)) unless a batch's heads overflow the L2 at D 64, where a
// tail covers kTailLongestCtas longest CTAs on every SM.
#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "flash/bwd_grid_order.hpp"

namespace {

using attnforge::flash::bwd_cta_of;
using attnforge::flash::bwd_grid_order;
using attnforge::flash::BwdCta;
using attnforge::flash::BwdGridOrder;

TEST(BwdGridOrder, EveryCtaOnceAndEachChunkLongestFirst) {
  for (int key_tiles : {1, 2, 7, 16, 64})
    for (int heads : {1, 3, 32})
      for (int batch : {1, 2, 5}) {
        const int units = heads * batch;
        for (int tail = 0; tail <= units; tail += std::max(1, units / 4))
          for (int chunk : {1, 2, heads, tail}) {
            if (chunk <= 0 || tail % chunk != 0) continue;
            SCOPED_TRACE(testing::Message() << key_tiles << " key tiles, " << heads << " heads, batch " << batch
                                            << ", tail " << tail << ", chunk " << chunk);
            std::set<std::tuple<int, int, int>> seen;
            const int first = (units - tail) * key_tiles;
            int lin = 0;
            for (int z = 0; z < batch; ++z)
              for (int y = 0; y < heads; ++y)
                for (int x = 0; x < key_tiles; ++x, ++lin) {
                  const BwdCta c = bwd_cta_of(x, y, z, key_tiles, heads, batch, BwdGridOrder{tail, chunk});
                  ASSERT_TRUE(c.key_tile >= 0 && c.key_tile < key_tiles && c.head_kv >= 0 && c.head_kv < heads &&
                              c.batch >= 0 && c.batch < batch);
                  seen.insert({c.key_tile, c.head_kv, c.batch});
                  if (lin < first) {
                    EXPECT_EQ(std::make_tuple(c.key_tile, c.head_kv, c.batch), std::make_tuple(x, y, z));
                  } else {
                    const int r = lin - first, unit = c.head_kv + heads * c.batch;
                    EXPECT_EQ((unit - (units - tail)) / chunk, r / (chunk * key_tiles)) << "the block's chunk";
                    EXPECT_EQ(c.key_tile, r % (chunk * key_tiles) / chunk) << "key tiles in order in a chunk";
                  }
                }
            EXPECT_EQ(int(seen.size()), units * key_tiles);
          }
      }
}

TEST(BwdGridOrder, BatchByBatchIsTheHeadsFastestGrid) {
  // Tail = every unit, a chunk per batch: block (x, y, z) runs what block (lin % H, lin / H % T, z) of
  // the grid (heads, key tiles, batch) ran, lin = x + T·y (the order before the twenty-seventh session).
  const int T = 5, H = 3, B = 2;
  for (int z = 0; z < B; ++z)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < T; ++x) {
        const int lin = x + T * y;
        const BwdCta c = bwd_cta_of(x, y, z, T, H, B, BwdGridOrder{H * B, H});
        EXPECT_EQ(std::make_tuple(c.key_tile, c.head_kv, c.batch), std::make_tuple(lin / H, lin % H, z));
      }
}

TEST(BwdGridOrder, Choice) {
  using attnforge::flash::BwdOrderAsk;
  constexpr int64_t kL2 = 50 << 20, kSmall = 1 << 20, kLarge = 4 << 20;
  EXPECT_EQ(bwd_grid_order(64, 32, 2, 64, kLarge, kL2, 132, false).tail_units, 0) << "even tiles: key tiles fastest";
  EXPECT_EQ(bwd_grid_order(128, 32, 1, 64, kLarge, kL2, 132, true).tail_units, 0) << "128 key tiles: key tiles fastest";
  const BwdGridOrder fits = bwd_grid_order(16, 16, 8, 64, kSmall, kL2, 132, true);
  EXPECT_EQ(fits.tail_units, 128) << "16 heads of 1 MiB fit 50 MiB: batch by batch";
  EXPECT_EQ(fits.chunk, 16);
  const BwdGridOrder wide = bwd_grid_order(64, 32, 2, 128, kLarge, kL2, 132, true);
  EXPECT_EQ(wide.tail_units, 64) << "D 128: batch by batch even where the heads overflow the L2";
  EXPECT_EQ(wide.chunk, 32);
  // D 64, 32 heads of 4 MiB overflow 50 MiB: 2 · kTailLongestCtas · SMs / key tiles units, at most all.
  const BwdGridOrder tail = bwd_grid_order(64, 32, 2, 64, kLarge, kL2, 132, true);
  EXPECT_EQ(tail.tail_units, (4 * 132 + 63) / 64);
  EXPECT_EQ(tail.chunk, tail.tail_units);
  EXPECT_EQ(bwd_grid_order(4, 32, 1, 64, kLarge, kL2, 132, true).tail_units, 32);
  EXPECT_EQ(bwd_grid_order(64, 32, 2, 64, kLarge, kL2, 0, true).tail_units, 1) << "an unknown SM count counts as one";
  EXPECT_EQ(bwd_grid_order(0, 32, 2, 64, kLarge, kL2, 132, true).tail_units, 0);
  // Asked for: that order wherever tiles are uneven.
  EXPECT_EQ(bwd_grid_order(16, 16, 8, 128, kSmall, kL2, 132, true, BwdOrderAsk::tail).tail_units, 33);
  EXPECT_EQ(bwd_grid_order(128, 32, 1, 64, kLarge, kL2, 132, true, BwdOrderAsk::batch).chunk, 32);
  EXPECT_EQ(bwd_grid_order(16, 16, 8, 64, kSmall, kL2, 132, false, BwdOrderAsk::tail).tail_units, 0);
}

}  // namespace
