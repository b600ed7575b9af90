// Online (streaming) softmax over key tiles, in fp32 and base 2, for scores held as m16n8 C fragments
// (see mma.cuh): each thread holds 2 rows per 16-row tile (g and g+8), spread over the 4 lanes of its
// quad, so row max/sum reduce across the quad with two xor-shuffles.
//
// Scores arrive raw (s = q·k, masked = −inf) with c = scale·log2(e) > 0, so one FFMA per element gives
// the log2-domain exponent (FA2's trick). For each new tile, with m the running max of s·c:
//   m' = max(m, rowmax(s)·c);  P = exp2(s·c − m');  l' = l·exp2(m − m') + rowsum(P);  O' = O·exp2(m − m').
// A row that has seen no visible key keeps m = −inf; then 0 is used as the subtraction base, so
// exp2(−inf − 0) = 0 exactly and no (−inf) − (−inf) = NaN ever forms. At the end O /= l (0 if l = 0)
// and LSE = (m + log2 l)·ln 2, −inf for a row that saw nothing.
//
// kExp2FmaOf8 (0 by default) moves that many of every 8 n8-tiles of P from ex2.approx (the MUFU, 16
// per clock per SM) to exp2_fma (the FMA pipe, common/exp2_fma.hpp), where the MUFU bounds the
// softmax (head dim 64: as many exp2 per tile as the two GEMMs take tensor-core clocks).
#pragma once
#include <cmath>

#include "common/exp2_fma.hpp"

namespace attnforge::prim {

__device__ __forceinline__ float exp2_approx(float x) {  // ex2.approx(−inf) = +0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// kLazy > 0 (lazy rescaling, as FlashAttention-4 does): the subtraction base of a row moves only when
// its max grows by more than kLazy (log2 units); otherwise the old base stays, P ≤ 2^kLazy, and O and l
// keep their scale (alpha = 1 exactly), so rescale() skips a warp whose rows all kept theirs. The
// result is the same softmax: O and l share one base, and LSE is taken against the base in use.
template <int kMTiles, int kExp2FmaOf8 = 0, int kLazy = 0>
struct OnlineSoftmax {
  static_assert(kExp2FmaOf8 >= 0 && kExp2FmaOf8 <= 8, "of every 8 n8-tiles");
  static_assert(kLazy >= 0 && kLazy <= 16, "P ≤ 2^kLazy stays far inside the 16-bit P's range");
  // Running max of s·c per row (log2 units; with kLazy the base in use), −inf until a visible key.
  float row_max[kMTiles][2];
  float row_sum[kMTiles][2];  // this thread's partial Σ exp2(s − max); quad-reduced in finalize

  __device__ __forceinline__ void init() {
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        row_max[mt][h] = -INFINITY;
        row_sum[mt][h] = 0.f;
      }
  }

  // s (kMTiles, kNS n8-tiles) in: raw scores (masked = −inf); out: P = exp2(s·c − m'). o (kMTiles, kNO)
  // is rescaled by exp2(m − m') so that it stays Σ P·V relative to the new max. Requires c > 0.
  template <int kNS, int kNO>
  __device__ __forceinline__ void update(float (&s)[kMTiles][kNS][4], float (&o)[kMTiles][kNO][4],
                                         float c) {
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float alpha = row_to_p(mt, h, s[mt], c);
#pragma unroll
        for (int nt = 0; nt < kNO; ++nt) {
          o[mt][nt][2 * h] *= alpha;
          o[mt][nt][2 * h + 1] *= alpha;
        }
      }
  }

  // update() in two halves, for kernels whose O accumulators are still in flight on the tensor cores
  // while the new scores become P: alpha = exp2(m − m') per row now, applied to O by rescale() later.
  template <int kNS>
  __device__ __forceinline__ void scores_to_p(float (&s)[kMTiles][kNS][4], float c, float (&alpha)[kMTiles][2]) {
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) alpha[mt][h] = row_to_p(mt, h, s[mt], c);
  }
  template <int kNO>
  __device__ __forceinline__ void rescale(float (&o)[kMTiles][kNO][4], const float (&alpha)[kMTiles][2]) {
    if constexpr (kLazy > 0) {  // most tiles move no base: the warp skips the multiplies
      bool moved = false;
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) moved |= alpha[mt][0] != 1.f || alpha[mt][1] != 1.f;
      if (!__any_sync(0xffffffffu, moved)) return;
    }
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int nt = 0; nt < kNO; ++nt) {
          o[mt][nt][2 * h] *= alpha[mt][h];
          o[mt][nt][2 * h + 1] *= alpha[mt][h];
        }
  }

  // Row h (0: g, 1: g + 8) of m-tile mt: new running max, P = exp2(s·c − m') in place, l updated;
  // returns alpha = exp2(m − m').
  template <int kNS>
  __device__ __forceinline__ float row_to_p(int mt, int h, float (&s)[kNS][4], float c) {
    float tile_max = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kNS; ++nt) tile_max = fmaxf(tile_max, fmaxf(s[nt][2 * h], s[nt][2 * h + 1]));
    float mx = fmaxf(row_max[mt][h], quad_max(tile_max) * c);  // −inf·c = −inf (c > 0)
    // Lazy: keep the old base unless the max outgrew it by kLazy (−inf + kLazy = −inf: a row's first
    // visible tile always sets its base).
    if constexpr (kLazy > 0) mx = mx > row_max[mt][h] + float(kLazy) ? mx : row_max[mt][h];
    const float base = (mx == -INFINITY) ? 0.f : mx;         // nothing visible yet: keep P = 0
    const float alpha = exp2_approx(row_max[mt][h] - base);  // old max −inf ⇒ 0 (O, l are 0); kept base ⇒ 1
    row_max[mt][h] = mx;
    float sum = 0.f;
#pragma unroll
    for (int nt = 0; nt < kNS; ++nt)
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const float x = fmaf(s[nt][2 * h + j], c, -base);
        const float p = nt % 8 < kExp2FmaOf8 ? exp2_fma(x) : exp2_approx(x);  // nt is unrolled: no branch
        s[nt][2 * h + j] = p;
        sum += p;
      }
    row_sum[mt][h] = row_sum[mt][h] * alpha + sum;
    return alpha;
  }

  // O ← O / l (exactly 0 for rows with l = 0), lse[mt][h] = natural-log LSE of the row (−inf if none).
  template <int kNO>
  __device__ __forceinline__ void finalize(float (&o)[kMTiles][kNO][4], float (&lse)[kMTiles][2]) {
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float l = quad_sum(row_sum[mt][h]);
        const bool any = l > 0.f;
        const float inv = any ? 1.f / l : 0.f;
        lse[mt][h] = any ? (row_max[mt][h] + __log2f(l)) * 0.69314718055994531f : -INFINITY;
#pragma unroll
        for (int nt = 0; nt < kNO; ++nt) {
          o[mt][nt][2 * h] *= inv;
          o[mt][nt][2 * h + 1] *= inv;
        }
      }
  }
};

}  // namespace attnforge::prim
