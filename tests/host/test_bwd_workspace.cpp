// The flash backward's scratch layout (flash/bwd_workspace.hpp): sections in order, 256-byte
// aligned, sized for every query tile, no int overflow at the validator's largest length, and an
// sm90a tile's workspace (runtime/src/workspace_flash.cpp) covering its 64-query-step fallback.
#include <gtest/gtest.h>

#include "flash/bwd_workspace.hpp"
#include "workspace.hpp"

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

// hd64 m128n128w12s2_sm90a falls back to m64n128w8s2 (deterministic mode, keys in one tile), whose
// deterministic semaphores are one per 64 query rows: the workspace a caller sizes by
// attnforge_workspace_size must hold that layout too.
TEST(BwdWorkspace, Sm90aTileCoversItsSixtyFourQueryFallback) {
  const VariantKey key{Backend::flash, Direction::bwd, DType::bf16, 64, 0, 128, 128, 12, 2, 90};
  bool fallback_larger = false;
  for (bool det : {false, true})
    for (int sq : {1, 63, 99, 129, 1000}) {
      const Params p = shape(8, 32, sq, 8 * sq, 64, det);
      const size_t own = flash::flash_bwd_workspace_bytes(128, 128, p), fallback = flash::flash_bwd_workspace_bytes(64, 128, p);
      EXPECT_GE(workspace_bytes(key, p), own);
      EXPECT_GE(workspace_bytes(key, p), fallback);
      fallback_larger |= fallback > own;
    }
  EXPECT_TRUE(fallback_larger);  // the case the own tile alone got wrong (deterministic, Sq 99)
  VariantKey mma = key;  // a 64-query tile of any arch is its own fallback: unchanged
  mma.block_m = 64, mma.warps = 8, mma.arch = 0;
  const Params p = shape(8, 32, 99, 8 * 99, 64, true);
  EXPECT_EQ(workspace_bytes(mma, p), flash::flash_bwd_workspace_bytes(64, 128, p));
}

}  // namespace
