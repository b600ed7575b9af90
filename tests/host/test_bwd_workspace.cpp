// The flash backward's scratch layout (flash/bwd_workspace.hpp): sections in order, 256-byte
// aligned, sized for every query tile, and no int overflow at the validator's largest length.
#include <gtest/gtest.h>

#include "flash/bwd_workspace.hpp"

namespace {

using namespace attnforge;

Params shape(int batch, int heads_q, int seqlen_q, int total_q, int head_dim, bool deterministic) {
  Params p{};
  p.batch = batch;
  p.heads_q = heads_q;
  p.seqlen_q = seqlen_q;
  p.total_q = total_q;
  p.head_dim = head_dim;
  p.deterministic = deterministic;
  return p;
}

TEST(BwdWorkspace, SectionsHoldEveryQueryTile) {
  for (bool det : {false, true})
    for (int sq : {1, 63, 64, 65, 1000}) {
      const int b = 3, h = 5, d = 128, bm = 64;
      const Params p = shape(b, h, sq, b * sq, d, det);
      const auto w = flash::flash_bwd_workspace_layout(bm, 128, p);
      const size_t tiles = size_t(b) * h * ((sq + bm - 1) / bm);
      EXPECT_EQ(w.dsum_offset, 0u);
      EXPECT_EQ(w.dq_acc_offset % 256, 0u);
      EXPECT_GE(w.dq_acc_offset, size_t(b) * sq * h * sizeof(float));  // D = rowsum(dO ∘ O)
      EXPECT_EQ(w.sem_offset % 256, 0u);
      EXPECT_GE(w.sem_offset - w.dq_acc_offset, tiles * bm * d * sizeof(float));  // (tiles, bm, D)
      EXPECT_EQ(w.zero_bytes, w.sem_offset - w.dq_acc_offset + (det ? tiles * sizeof(int32_t) : 0));
      EXPECT_EQ(w.total_bytes % 256, 0u);
      EXPECT_GE(w.total_bytes, w.dq_acc_offset + w.zero_bytes);
      // The last tile's block ends inside the accumulator section.
      const int64_t last = flash::dq_acc_tile_base(p, b - 1, h - 1, (sq + bm - 1) / bm - 1, bm, d);
      EXPECT_LE(size_t(last + int64_t(bm) * d) * sizeof(float), w.sem_offset - w.dq_acc_offset);
    }
}

// The validator's largest length, kMaxSeqlen = 2^31 − 2^16: rounding up to whole tiles stays
// within int (found by scripts/fuzz.sh under UBSan when INT_MAX was accepted).
TEST(BwdWorkspace, LargestValidSeqlenDoesNotOverflow) {
  const int bm = 64, sq = kMaxSeqlen;
  const Params p = shape(1, 1, sq, sq, 64, true);
  const auto w = flash::flash_bwd_workspace_layout(bm, 128, p);
  const size_t tiles = (size_t(sq) + bm - 1) / bm;  // 2^25 − 2^10
  EXPECT_EQ(tiles, (size_t(1) << 25) - 1024);
  EXPECT_GE(w.sem_offset - w.dq_acc_offset, tiles * bm * 64 * sizeof(float));
  EXPECT_EQ(w.zero_bytes, w.sem_offset - w.dq_acc_offset + tiles * sizeof(int32_t));
  EXPECT_EQ(flash::dq_acc_tile_base(p, 0, 0, int(tiles) - 1, bm, 64), int64_t(tiles - 1) * bm * 64);
}

}  // namespace
