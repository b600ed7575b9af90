// The flash backward's scratch layout (flash/bwd_workspace.hpp): sections in order, 256-byte
// aligned, sized for every query tile, no int overflow at the validator's largest length, an sm90a
// tile's workspace (runtime/src/workspace_flash.cpp) covering its 64-query-step fallback, and the
// Hopper kernel's split last wave (BwdSplit): pieces that cover every step once, accumulators inside
// the zeroed range, only where the model gains.
#include <gtest/gtest.h>

#include <algorithm>

#include "flash/bwd_workspace.hpp"
#include "workspace.hpp"

namespace {

using namespace attnforge;

Params shape(int batch, int heads_q, int seqlen_q, int total_q, int head_dim, bool deterministic) {
  Params p{};
  p.batch = batch;
  p.heads_q = heads_q;
  p.heads_kv = heads_q;
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
      EXPECT_EQ(w.done_offset % 256, 0u);
      EXPECT_GE(w.done_offset, w.sem_offset + (det ? tiles * sizeof(int32_t) : 0));  // semaphores
      EXPECT_EQ(w.zero_bytes, w.done_offset - w.dq_acc_offset + size_t(b) * h * sizeof(int32_t));  // (B, Hkv)
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
  EXPECT_EQ(w.done_offset, flash::bwd_align256(w.sem_offset + tiles * sizeof(int32_t)));
  EXPECT_EQ(w.zero_bytes, w.done_offset - w.dq_acc_offset + sizeof(int32_t));
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

// bwd_split_plan: the parts of a split CTA cover its steps once, in order; the training grid's mask-free
// shapes (132 SMs) split their partial last wave, whole waves and one-wave grids do not.
TEST(BwdWorkspace, SplitPiecesCoverEveryStepOnce) {
  int splits = 0;
  for (int64_t n : {100, 133, 264, 265, 2048, 4096, 5000})
    for (int steps : {1, 2, 3, 16, 32, 100, 256})
      for (int sms : {7, 132}) {
        const flash::BwdSplit s = flash::bwd_split_plan(n, steps, sms);
        SCOPED_TRACE(testing::Message() << "n " << n << " steps " << steps << " sms " << sms);
        if (s.tiles == 0) {
          EXPECT_EQ(s.parts, 1);
          continue;
        }
        ++splits;
        EXPECT_EQ(s.tiles, int(n % sms));
        EXPECT_EQ(s.first, int(n - n % sms));
        EXPECT_GE(s.parts, 2);
        EXPECT_LE(s.parts, std::min(steps, flash::BwdSplit::kMaxParts));
        EXPECT_LE(s.pieces(), sms) << "one round of pieces";
        EXPECT_EQ(s.step_begin(0), 0);
        EXPECT_EQ(s.step_begin(s.parts), steps);
        for (int k = 0; k < s.parts; ++k) EXPECT_LT(s.step_begin(k), s.step_begin(k + 1));
      }
  EXPECT_GT(splits, 10);
  EXPECT_EQ(flash::bwd_split_plan(264, 32, 132).tiles, 0) << "whole waves";
  EXPECT_EQ(flash::bwd_split_plan(100, 32, 132).tiles, 0) << "one wave";
  // D 64 (4096 CTAs of 16 / 64 steps at S 2048 / 8192: 4 left for the 32nd wave); D 128 (2048 of 32:
  // 68 left, two parts would already take two rounds).
  EXPECT_EQ(flash::bwd_split_plan(4096, 16, 132).tiles, 4);
  EXPECT_EQ(flash::bwd_split_plan(4096, 16, 132).parts, 16);
  EXPECT_EQ(flash::bwd_split_plan(4096, 64, 132).parts, 33);
  EXPECT_EQ(flash::bwd_split_plan(2048, 32, 132).tiles, 0);
}

TEST(BwdWorkspace, SplitAccumulatorsAreZeroed) {
  Params p = shape(8, 16, 2048, 8 * 2048, 128, false);  // 2048 CTAs: 68 left on 132 SMs, 16 steps of 128 rows
  p.heads_kv = 16, p.seqlen_k = 2048, p.num_sms = 100;  // 48 left on 100 SMs: two parts each
  const flash::BwdSplit s = flash::bwd_split_for(p, 128, 128, true);
  ASSERT_EQ(s.tiles, 48);
  ASSERT_EQ(s.parts, 2);
  const auto plain = flash::flash_bwd_workspace_layout(64, 128, p), split = flash::flash_bwd_workspace_layout(64, 128, p, s);
  EXPECT_EQ(split.split_offset % 256, 0u);
  EXPECT_GE(split.split_offset, plain.done_offset + 8 * 16 * sizeof(int32_t));  // after the (B, Hkv) counters
  const size_t need = size_t(48) * (128 * 128 * 2 * 4 + 4);  // dK | dV of 128 keys × D 128, and a counter
  EXPECT_EQ(split.dq_acc_offset + split.zero_bytes, split.split_offset + need);
  EXPECT_GE(split.total_bytes, split.split_offset + need);
  EXPECT_EQ(flash::bwd_split_for(p, 128, 128, false).tiles, 0) << "a mask: CTAs differ";
  p.deterministic = true;
  EXPECT_EQ(flash::bwd_split_for(p, 128, 128, true).tiles, 0) << "deterministic: the mma.sync kernel";
  p.deterministic = false, p.head_dim = 256;
  EXPECT_EQ(flash::bwd_split_for(p, 128, 64, true).tiles, 0) << "the split-D step";
  p.head_dim = 128, p.num_sms = 0;
  EXPECT_EQ(flash::bwd_split_for(p, 128, 128, true).tiles, 0) << "unknown SM count";
  p.num_sms = 100, p.head_dim = 64;
  const VariantKey key{Backend::flash, Direction::bwd, DType::bf16, 64, mask_id_by_name("none"), 128, 128, 12, 2, 90};
  const auto split64 = flash::flash_bwd_workspace_layout(64, 128, p, flash::bwd_split_for(p, 128, 128, true));
  EXPECT_GT(split64.total_bytes, flash::flash_bwd_workspace_layout(64, 128, p).total_bytes);
  EXPECT_GE(workspace_bytes(key, p), split64.total_bytes) << "the C API sizes for the split";
}

}  // namespace
