// The streamed key row's per-thread steps, shared by the streamed fused forwards (fwd_sm90_stream.cuh,
// fwd_sm90_ws.cuh): pass 1's running row statistics, pass 2's exact P, P staged for the weights' TMA
// stores, and the LSE / O epilogue. A thread holds rows g and g + 8 of its warp's 16 in a 64-row warpgroup tile (wgmma C layout).
#pragma once
#include <cstdint>

#include "common/mma.cuh"
#include "common/params.hpp"
#include "common/softmax.cuh"
#include "fused/row_store.cuh"

namespace attnforge::fused {

// Pass 1: the running max of s·c (log2 units) and Σ exp2(s·c − max) over this thread's two rows; the
// sum is rescaled when the max grows, nothing else is (O exists only in pass 2).
template <int kNTiles>
struct StreamRowStats {
  float row_max[2] = {-INFINITY, -INFINITY};  // −inf until a visible key
  float row_sum[2] = {0.f, 0.f};              // this thread's part of the row's Σ

  // Adds a tile of raw scores S (64, 8·kNTiles). Reads them only: a buffer an in-flight wgmma does not
  // own may not be written while it runs (ptxas C7515), so this runs beside the next tile's Q·Kᵀ.
  __device__ __forceinline__ void add(const float (&sc)[1][kNTiles][4], float c) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) tile_max = fmaxf(tile_max, fmaxf(sc[0][nt][2 * r], sc[0][nt][2 * r + 1]));
      const float mx = fmaxf(row_max[r], prim::quad_max(tile_max) * c);
      const float base = mx == -INFINITY ? 0.f : mx;  // nothing visible yet: every term is exactly 0
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) sum += prim::exp2_approx(fmaf(sc[0][nt][2 * r + e], c, -base));
      row_sum[r] = row_sum[r] * prim::exp2_approx(row_max[r] - base) + sum;
      row_max[r] = mx;
    }
  }

  // Without the weights pass 1 takes the row max only (no exponentials): pass 2 then sums P = exp2(s·c − max)
  // against the final max (sum_p), so nothing is rescaled either, and O /= Σ at the end.
  __device__ __forceinline__ void add_max(const float (&sc)[1][kNTiles][4], float c) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) tile_max = fmaxf(tile_max, fmaxf(sc[0][nt][2 * r], sc[0][nt][2 * r + 1]));
      row_max[r] = fmaxf(row_max[r], prim::quad_max(tile_max) * c);
    }
  }
  // The subtraction base of P = exp2(s·c − base): the row max, 0 for a row that sees no key (P = 0 there).
  __device__ __forceinline__ void bases(float (&base)[2]) const {
#pragma unroll
    for (int r = 0; r < 2; ++r) base[r] = row_max[r] == -INFINITY ? 0.f : row_max[r];
  }

  // The final statistics as pass 2's factors: P = exp2(s·c − base)·inv, and the natural-log LSE. A row
  // that sees no key has Σ = 0: P = 0, LSE −inf.
  __device__ __forceinline__ void finish(float (&base)[2], float (&inv)[2], float (&lse)[2]) const {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float l = prim::quad_sum(row_sum[r]);
      const float mx = row_max[r];
      base[r] = mx == -INFINITY ? 0.f : mx;
      inv[r] = l > 0.f ? 1.f / l : 0.f;
      lse[r] = l > 0.f ? (mx + __log2f(l)) * 0.69314718055994531f : -INFINITY;
    }
  }
};

// Pass 2, in place: S (64, 8·kNTiles) → P = exp2(s·c − base)·inv, the exact softmax of pass 1's statistics.
template <int kNTiles>
__device__ __forceinline__ void exact_p(float (&sc)[1][kNTiles][4], float c, const float (&base)[2],
                                        const float (&inv)[2]) {
#pragma unroll
  for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) sc[0][nt][e] = prim::exp2_approx(fmaf(sc[0][nt][e], c, -base[e >> 1])) * inv[e >> 1];
}

// Pass 2 without the weights, in place: S → P = exp2(s·c − base) against the final row max, and this
// thread's part of each row's Σ P.
template <int kNTiles>
__device__ __forceinline__ void sum_p(float (&sc)[1][kNTiles][4], float c, const float (&base)[2], float (&row_sum)[2]) {
#pragma unroll
  for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      sc[0][nt][e] = prim::exp2_approx(fmaf(sc[0][nt][e], c, -base[e >> 1]));
      row_sum[e >> 1] += sc[0][nt][e];
    }
}

// This warp's (16, 16·kK) of P, as k16 A fragments, into a warpgroup's (64, ≥ 16·kK) staging tile SL
// (128-byte swizzle: the weights map's box layout): four 8 × 8 matrices per k16 slice.
template <class SL, int kK>
__device__ __forceinline__ void stage_p(uint32_t tile, const uint32_t (&pa)[kK][4], int warp_in_wg, int lane) {
  const int row = warp_in_wg * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);  // of the warpgroup's 64
#pragma unroll
  for (int kk = 0; kk < kK; ++kk) prim::stmatrix_x4(tile + SL::offset(row, 16 * kk + 8 * (lane >> 4)), pa[kk]);
}

// Zeroes a warpgroup's staging tile SL (128 threads, wg_tid = 0..127): P of a dead key tile is 0.
template <class SL>
__device__ __forceinline__ void zero_staging(uint32_t tile, int wg_tid) {
  for (int i = wg_tid; i < SL::kBytes / 16; i += 128)
    asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(tile + 16 * i), "r"(0u) : "memory");
}

// This warp's 16 rows of the output (rows q_first …, at most sq − q_first of them): LSE (natural log) and
// O (16, kD) from its C fragments, of (batch b, head h) of a sequence that starts at seq_q_start.
template <class Num, int kD>
__device__ __forceinline__ void store_lse_o(const Params& p, int b, int h, int64_t seq_q_start, int q_first, int sq,
                                            const float (&lse)[2], const float (&o)[kD / 8][4], int g, int t) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int q = q_first + g + 8 * r;
    if (t == 0 && q < sq) p.lse[b * p.lse_batch_stride + int64_t(h) * p.lse_head_stride + seq_q_start + q] = lse[r];
  }
  typename Num::Element* o_band = static_cast<typename Num::Element*>(p.o) + b * p.o_batch_stride +
                                  (seq_q_start + q_first) * p.o_row_stride + int64_t(h) * p.o_head_stride;  // (16, D)
  store_band<Num, kD / 8>(o_band, p.o_row_stride, o, sq - q_first, 0, kD, true, g, t);
}

}  // namespace attnforge::fused
