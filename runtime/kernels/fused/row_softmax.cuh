// The fused backend's exact two-pass softmax over a whole key row held in registers, and the stores
// that follow it (LSE, the attention weights P, O). Shared by the mma.sync and the wgmma kernel: in
// both, warp (wm, wn) holds rows [16·wm, 16·wm + 16) of the CTA block and kSteps 64-key tiles as
// s[i][0][8][4] (m16n8 C fragments: rows g and g + 8, cols 2t, 2t + 1 of each n8 tile): tile i is keys
// [64·key_tile(i, wn), +64), interleaved t = i·kWarpsN + wn (mma.sync kernel) or contiguous t = wn·kSteps + i
// (wgmma kernel: one long B operand per warpgroup).
#pragma once
#include <cmath>
#include <cstdint>

#include "common/params.hpp"
#include "common/softmax.cuh"
#include "fused/row_store.cuh"

namespace attnforge::fused {

// s in: log2-domain scores (masked = −inf), tiles outside `live` ignored; s out: P = exp2(s − max)/Σ,
// exactly 0 outside `live`. Pass 1 (row max) is complete before any exponential: no rescaling.
// A row with no visible key keeps max = −inf; base 0 then makes every P exactly 0, and its LSE −inf.
// s_max, s_sum: (kWarpsN, kBlockM) floats in shared memory for the exchange between key columns.
// Contains __syncthreads() when kWarpsN > 1: every thread of the CTA must call it.
template <int kSteps, int kWarpsN, int kBlockM>
__device__ __forceinline__ void row_softmax(float (&s)[kSteps][1][8][4], uint32_t live, float* s_max, float* s_sum,
                                            int band_row, int wn, int t4, bool normalize, float (&lse)[2],
                                            float (&inv)[2]) {
  float row_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int i = 0; i < kSteps; ++i)
    if (live & (1u << i)) {
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        row_max[0] = fmaxf(row_max[0], fmaxf(s[i][0][nt][0], s[i][0][nt][1]));
        row_max[1] = fmaxf(row_max[1], fmaxf(s[i][0][nt][2], s[i][0][nt][3]));
      }
    }
#pragma unroll
  for (int r = 0; r < 2; ++r) row_max[r] = prim::quad_max(row_max[r]);
  if constexpr (kWarpsN > 1) {
    if (t4 == 0) {
      s_max[wn * kBlockM + band_row] = row_max[0];
      s_max[wn * kBlockM + band_row + 8] = row_max[1];
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float m = -INFINITY;
#pragma unroll
      for (int w = 0; w < kWarpsN; ++w) m = fmaxf(m, s_max[w * kBlockM + band_row + 8 * r]);
      row_max[r] = m;
    }
  }
  const float base[2] = {row_max[0] == -INFINITY ? 0.f : row_max[0], row_max[1] == -INFINITY ? 0.f : row_max[1]};
  float row_sum[2] = {0.f, 0.f};
#pragma unroll
  for (int i = 0; i < kSteps; ++i) {
    const bool on = live & (1u << i);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pe = on ? prim::exp2_approx(s[i][0][nt][e] - base[e >> 1]) : 0.f;
        s[i][0][nt][e] = pe;
        row_sum[e >> 1] += pe;
      }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) row_sum[r] = prim::quad_sum(row_sum[r]);
  if constexpr (kWarpsN > 1) {
    if (t4 == 0) {
      s_sum[wn * kBlockM + band_row] = row_sum[0];
      s_sum[wn * kBlockM + band_row + 8] = row_sum[1];
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = 0.f;
#pragma unroll
      for (int w = 0; w < kWarpsN; ++w) l += s_sum[w * kBlockM + band_row + 8 * r];
      row_sum[r] = l;
    }
  }
  // LSE = (max + log2 Σ)·ln 2 (natural log). With `normalize` (weights requested) P is divided by Σ here,
  // so the weights written and the P of O = P·V are one tensor, and inv = 1; else P stays exp2(s − max)
  // and the caller scales O by inv = 1/Σ (D/2 multiplies instead of one per score).
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const bool any = row_sum[r] > 0.f;
    inv[r] = any ? 1.f / row_sum[r] : 0.f;
    lse[r] = any ? (row_max[r] + __log2f(row_sum[r])) * 0.69314718055994531f : -INFINITY;
  }
  if (normalize) {
#pragma unroll
    for (int i = 0; i < kSteps; ++i)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[i][0][nt][e] *= inv[e >> 1];
    inv[0] = inv[1] = 1.f;
  }
}

// o ← o·inv per row (rows g, g + 8 of the fragments).
template <int kONTiles>
__device__ __forceinline__ void scale_rows(float (&o)[kONTiles][4], const float (&inv)[2]) {
#pragma unroll
  for (int nt = 0; nt < kONTiles; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[nt][e] *= inv[e >> 1];
}

// Key tile (64 keys) of register tile i of key column wn: interleaved or contiguous (see the top).
template <int kSteps, int kWarpsN, bool kContiguous>
__device__ __forceinline__ constexpr int key_tile(int i, int wn) {
  return kContiguous ? wn * kSteps + i : i * kWarpsN + wn;
}

// The attention weights (B, Hq, Sq, Sk) contiguous, dtype of q: this warp's 16 rows × its key tiles,
// 16-byte chunks (quad transpose). Rows ≥ sq and columns ≥ sk are not written. All lanes must call it.

template <class Num, int kSteps, int kWarpsN, bool kContiguous>
__device__ __forceinline__ void store_weights(const Params& p, const float (&s)[kSteps][1][8][4], int b, int h, int q_first, int sq, int sk, int wn, int g, int t4) {
  using Element = typename Num::Element;
  const int64_t sk_all = p.seqlen_k;  // dense only: validation rejects weights with varlen
  Element* w_band = static_cast<Element*>(p.weights) + ((int64_t(b) * p.heads_q + h) * p.seqlen_q + q_first) * sk_all;
  const bool vec = (sk_all & 7) == 0 && (reinterpret_cast<uintptr_t>(p.weights) & 15) == 0;
#pragma unroll
  for (int i = 0; i < kSteps; ++i) {
    const int k_first = key_tile<kSteps, kWarpsN, kContiguous>(i, wn) * 64;
    if (k_first < sk) store_band<Num, 8>(w_band, sk_all, s[i][0], sq - q_first, k_first, sk, vec, g, t4);
  }
}

// O rows (16 × D per warp) from fp32 fragments o[D/8][4], 16-byte chunks; rows ≥ sq skipped. All lanes call.
template <class Num, int kONTiles>
__device__ __forceinline__ void store_o(typename Num::Element* o_band, int64_t row_stride, const float (&o)[kONTiles][4],
                                        int rows_valid, int g, int t4) {
  store_band<Num, kONTiles>(o_band, row_stride, o, rows_valid, 0, 8 * kONTiles, true, g, t4);
}

}  // namespace attnforge::fused
