// Applying a generated mask kind (common/mask.hpp concept) inside tiled kernels: tile classification
// with the sequence bounds folded in, per-element masking of a score block held as m16n8 C fragments,
// and the additive/boolean bias tensor of kinds with kHasTensor.
//
// Element (mt, nt, i) of a thread's fragments s[kMTiles][kNTiles][4] is score (q, k) with
//   q = q0 + kMTileRows·mt + 8·(i / 2),   k = k0 + 8·nt + (i % 2),
// (kMTileRows = 16 for a warp's mma.sync m-tiles, 64 for a warpgroup's wgmma m-tiles)
// where q0 = first row of the block + g and k0 = first column of the block + 2t (mma.cuh layouts).
#pragma once
#include <cstdint>

#include "common/mask.hpp"
#include "common/numeric.cuh"
#include "common/params.hpp"

namespace attnforge::prim {

// mask_empties_tiles (common/mask.hpp) of a generated mask kind.
template <class Mask>
inline constexpr bool kMaskEmptiesTiles = mask_empties_tiles(Mask::kName);

// Class of the tile rows [q_first, q_last] × cols [k_first, k_first+cols) of one sequence, the columns
// clamped to the sequence; a tile reaching past seqlen_k is never kFull (its tail must be masked).
// Precondition: 0 <= q_first <= q_last < seqlen_q and k_first < seqlen_k.
template <class Mask>
__device__ __forceinline__ TileClass classify_rows_tile(int q_first, int q_last, int k_first, int cols,
                                                        int seqlen_q, int seqlen_k, const MaskScalars& ms) {
  const int k_last = min(k_first + cols, seqlen_k) - 1;
  TileClass c = Mask::classify(q_first, q_last, k_first, k_last, seqlen_q, seqlen_k, ms);
  if (c == TileClass::kFull && (k_first + cols > seqlen_k || Mask::kHasTensor)) c = TileClass::kPartial;
  return c;
}

// The same for rows [q_first, q_first+rows) clamped to the sequence (precondition: q_first < seqlen_q).
template <class Mask>
__device__ __forceinline__ TileClass classify_tile(int q_first, int rows, int k_first, int cols,
                                                   int seqlen_q, int seqlen_k,
                                                   const MaskScalars& ms) {
  return classify_rows_tile<Mask>(q_first, min(q_first + rows, seqlen_q) - 1, k_first, cols, seqlen_q, seqlen_k, ms);
}

// The bias tensor of kinds with kHasTensor, already offset to one (batch, head): element (q, k) is
// ptr[q·stride_q + k·stride_k] of attnforge_dtype `dtype` (F32/F16/BF16 additive, BOOL visibility).
// to_score converts a bias value into the units the scores are in when it is added (raw q·k units
// for a softmax that later multiplies by c = scale·log2e: to_score = 1/scale).
struct BiasView {
  const void* ptr;
  int dtype;
  int64_t stride_q, stride_k;
  float to_score;
};

// The bias tensor of (batch b, head h) for a kernel that masks raw scores s = q·k (c = |scale|·log2 e
// multiplies them later): a bias value is added as bias·log2(e)/c.
__device__ __forceinline__ BiasView bias_view_raw(const Params& p, int b, int h, float c) {
  const int esize = p.bias_dtype == ATTNFORGE_F32 ? 4 : (p.bias_dtype == ATTNFORGE_BOOL ? 1 : 2);
  BiasView bias;
  bias.ptr = static_cast<const char*>(p.bias) + (b * p.bias_stride_b + int64_t(h) * p.bias_stride_h) * esize;
  bias.dtype = p.bias_dtype;
  bias.stride_q = p.bias_stride_q;
  bias.stride_k = p.bias_stride_k;
  bias.to_score = 1.4426950408889634f / c;
  return bias;
}

// s ← −inf where (q, k) is outside the sequence or not visible; for kinds with a tensor, additive
// bias·to_score is added or BOOL 0 masks. Masking is a select, never an
// add, so garbage (NaN, 1e10) computed from masked-out K never survives. kInside: the caller knows
// every (q, k) of the fragments lies inside the sequence, so only the mask's predicate is tested.
template <class Mask, int kMTileRows = 16, bool kInside = false, int kMTiles, int kNTiles>
__device__ __forceinline__ void apply_mask(float (&s)[kMTiles][kNTiles][4], int q0, int k0,
                                           int seqlen_q, int seqlen_k, const MaskScalars& ms,
                                           const BiasView& bias) {
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int q = q0 + kMTileRows * mt + 8 * (i / 2);
        const int k = k0 + 8 * nt + (i % 2);
        bool vis;
        // A relative kind (common/mask.hpp) sees (q − k0 + Sk − Sq, k − k0, 0, 0): the column is then a
        // constant and the row one offset per row, so ptxas tests each element against an immediate
        // (2 instructions per element instead of 2.5: m192n128 D 64 causal 5304 → 5184 SASS instructions, the
        // window tiles without their spills; kernel time level, bench/results/h200_2026-12-01zo_fwd_softmax_mask_ab.md).
        // The row is spelled from q0, not as q − k0: ptxas then keeps one offset per row (as `q − k0 + …`
        // the same kernel compiles to 5280 instructions).
        if constexpr (prim::kMaskRelative<Mask>) {
          const int c = 8 * nt + (i % 2);
          vis = (kInside || (q < seqlen_q && c < seqlen_k - k0)) &&
                Mask::visible(q0 - k0 + (seqlen_k - seqlen_q) + kMTileRows * mt + 8 * (i / 2), c, 0, 0, ms);
        } else {
          vis = (kInside || (q < seqlen_q && k < seqlen_k)) && Mask::visible(q, k, seqlen_q, seqlen_k, ms);
        }
        float v = s[mt][nt][i];
        if constexpr (Mask::kHasTensor) {
          if (vis) {
            const float b = load_as_float(bias.ptr, q * bias.stride_q + k * bias.stride_k, bias.dtype);
            if (bias.dtype == ATTNFORGE_BOOL) vis = b != 0.f;
            else v = fmaf(b, bias.to_score, v);
          }
        }
        s[mt][nt][i] = vis ? v : -INFINITY;
      }
}

// True iff some query row in [q_first, q_last] may see key k (exact for classifiers that are exact
// on a single column; kinds with a tensor answer true). Used to zero V rows nobody sees, so that
// 0·NaN never reaches an accumulator.
template <class Mask>
__device__ __forceinline__ bool key_seen_by_rows(int q_first, int q_last, int k, int seqlen_q,
                                                 int seqlen_k, const MaskScalars& ms) {
  return Mask::classify(q_first, q_last, k, k, seqlen_q, seqlen_k, ms) != TileClass::kEmpty;
}

// Key k exists (k < seqlen_k) and some query row in [q_first, q_last] may see it: the rows of K/V
// tiles worth reading; the others are zero-filled.
template <class Mask>
__device__ __forceinline__ bool key_live(int q_first, int q_last, int k, int seqlen_q, int seqlen_k,
                                         const MaskScalars& ms) {
  return k < seqlen_k && key_seen_by_rows<Mask>(q_first, q_last, k, seqlen_q, seqlen_k, ms);
}

}  // namespace attnforge::prim
