// Compile-time shape of a fused variant: how its warps split the query rows and the on-chip key row,
// how many fp32 score registers a thread holds, and the shared-memory plan. codegen/limits.py
// (fused_max_seqlen_k) computes the same numbers to size Tile::kBlockN; the static_asserts keep them in step.
#pragma once
#include <cstdint>

#include "common/numeric.cuh"
#include "common/smem_layout.cuh"
#include "common/variant.hpp"

namespace attnforge::fused {

// Must equal codegen/limits.py: FUSED_MAX_ACC_FLOATS (fp32 S + O accumulators per thread).
constexpr int kMaxAccFloats = 192;
// Must equal codegen/limits.py: FUSED_MAX_S_FLOATS (of which fp32 scores per thread).
constexpr int kMaxScoreFloats = 128;
constexpr int kSmemLimit = 227 * 1024;

template <class V>
struct Config {
  static constexpr DType kDType = V::kDType;
  using Num = prim::Numeric<kDType>;
  using Element = typename Num::Element;
  using Mask = typename V::Mask;

  static constexpr int kHeadDim = V::kHeadDim;
  static constexpr int kBlockM = V::TileT::kBlockM;      // query rows per CTA
  static constexpr int kMaxSeqlenK = V::TileT::kBlockN;  // the whole key row a CTA keeps on chip
  static constexpr int kWarps = V::TileT::kWarps;
  static constexpr int kThreads = 32 * kWarps;

  // Warp grid: kWarpsM row bands of 16 query rows × kWarpsN key columns. Warp (wm, wn) owns rows
  // [16·wm, 16·wm + 16) and the 64-key tiles t ≡ wn (mod kWarpsN) of the key row.
  static constexpr int kWarpsM = kBlockM / 16;
  static constexpr int kWarpsN = kWarps / kWarpsM;
  static constexpr int kKeyTile = 64;                     // keys per warp tile (8 n8 fragments)
  static constexpr int kKeyBlock = kKeyTile * kWarpsN;    // keys the CTA streams per step
  static constexpr int kSteps = kMaxSeqlenK / kKeyBlock;  // key tiles per warp (register array depth)
  static constexpr int kKSteps = kHeadDim / 16;           // k16 steps of S = Q·Kᵀ
  static constexpr int kONTiles = kHeadDim / 8;           // n8 fragments of O per warp

  static_assert(kBlockM % 16 == 0 && kWarps % kWarpsM == 0, "warps tile BlockM in bands of 16 rows");
  static_assert(kHeadDim % 16 == 0 && kHeadDim >= 16 && kHeadDim <= 256, "head dim 16..256, ×16");
  static_assert(kMaxSeqlenK % kKeyBlock == 0 && kSteps >= 1, "key row = whole steps of kKeyBlock");

  // Registers: S (kSteps × 8 fragments × 4 floats) + O (kONTiles × 4) per thread — the rule in limits.py.
  static constexpr int kAccFloats = kSteps * 32 + kHeadDim / 2;
  static_assert(kAccFloats <= kMaxAccFloats, "score row + O exceed the per-thread fp32 register budget");
  static_assert(kSteps * 32 <= kMaxScoreFloats, "score row exceeds the per-thread fp32 register budget");
  // The Q fragments of the warp (kKSteps × 4 regs) stay in registers when they fit beside S and O;
  // otherwise they are re-read with ldmatrix for every key tile.
  static constexpr bool kQInRegs = kAccFloats + kKSteps * 4 <= kMaxAccFloats;

  // Shared memory: [Q (kBlockM, D)] [K/V ring: 2 × (kKeyBlock, D)] [row statistics (kWarpsN, kBlockM) × 2].
  // After the last P·V step the ring is reused for the cross-warp O reduction (kWarpsN − 1 partials).
  using QLayout = prim::SmemTile<kBlockM, kHeadDim>;
  using KVLayout = prim::SmemTile<kKeyBlock, kHeadDim>;
  static constexpr int kStages = 2;
  static constexpr int kSmemQ = QLayout::kBytes;
  static constexpr int kSmemRing = kStages * KVLayout::kBytes;
  static constexpr int kSmemOReduce = (kWarpsN - 1) * kBlockM * kHeadDim * 4;
  static constexpr int kSmemStats = 2 * kWarpsN * kBlockM * 4;
  static constexpr int kSmemRingOrReduce = kSmemRing > kSmemOReduce ? kSmemRing : kSmemOReduce;
  static constexpr int kSmemBytes = kSmemQ + kSmemRingOrReduce + kSmemStats;
  static_assert(kSmemBytes <= kSmemLimit, "fused forward shared memory over the per-block limit");
};

// s ← s·scale_log2: raw Q·Kᵀ accumulators (16 rows × 64 keys) into log2-domain scores, before the
// mask and bias, so that P = exp2(s − max) (any sign of scale is fine).
__device__ __forceinline__ void scale_scores(float (&s)[1][8][4], float scale_log2) {
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[0][nt][e] *= scale_log2;
}

}  // namespace attnforge::fused
