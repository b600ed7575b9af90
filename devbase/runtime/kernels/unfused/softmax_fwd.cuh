// The generated-per-(dtype, mask kind) forward softmax of the unfused backend: per score row,
// P = softmax(S·scale + mask) in fp32 with exp2 (stored in the dtype) and LSE = ln Σ exp(S·scale + bias).
// A row that sees no key writes P = 0 and LSE = −∞ (so O = P·V is exactly 0 there).
#pragma once
#include <cuda_runtime.h>

#include "common/params.hpp"
#include "unfused/error.hpp"
#include "unfused/rows.cuh"
#include "unfused/types.cuh"

// Memory-bound: 16-byte loads of S, one row per warp (Sk ≤ 1024) or per block, kept in registers
// up to Sk = 16·4·threads, beyond that streamed twice (online max/sum, then normalise). P may
// alias S (f32 without weights): each thread rewrites exactly the elements it read, so no __restrict__.
// H100, bf16 S=4096 rows: 2.80 ms for 4.3 GB read + 2.1 GB written = 2302 GB/s (copy: ~3000).

namespace attnforge::unfused {

// S: fp32 (rows, ld_s) raw scores Q·Kᵀ; P: (rows, ld_p), Sk (= Params::seqlen_k) weights then zeros.
// kVecs > 0: each thread keeps kVecs groups of 4 columns in registers (capacity 4·kVecs·kRowThreads);
// kVecs == 0: any width, two passes over S.
template <class V, int kRowThreads, int kVecs>
__global__ void __launch_bounds__(V::TileT::kWarps * 32)
    softmax_fwd_kernel(const Params p, const float* S, int64_t ld_s,
                       elem_t<V::kDType>* P, int64_t ld_p, bool p_vec) {
  using E = elem_t<V::kDType>;
  using Mask = typename V::Mask;
  constexpr int kThreads = V::TileT::kWarps * 32;
  constexpr int kRowsPerBlock = kThreads / kRowThreads;
  __shared__ float smem[kThreads / 32];
  const RowReduce<kRowThreads, kThreads> red{smem};

  const int lane = threadIdx.x % kRowThreads;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kRowThreads;
  const int64_t rows = int64_t(p.batch) * p.heads_q * p.seqlen_q;
  if (r >= rows) return;  // whole groups leave together (a block group has one row)

  const ScoreRow row = locate_row(p, r);
  // Columns of P written: the Sk weights, then zeros up to the row pitch, so that the GEMM reading P
  // (whole 16-byte vectors) never reads uninitialized padding (user weights have ld_p = Sk).
  const int width = int(ld_p);
  const int seen = row.live ? row.seq.seqlen_k : 0;            // columns that hold scores
  const float* s_row = S + r * ld_s;                           // (Sk,) fp32, 16-byte aligned
  E* p_row = P + r * ld_p;                                     // (Sk,) dtype

  // x[c] = logit2 of the 4 columns starting at c (−∞ past the scores).
  auto logits4 = [&](int c, float (&x)[4]) {
    if (c < seen) {
      float s[4];
      load4(s_row + c, /*vec=*/true, seen - c, s);
#pragma unroll
      for (int j = 0; j < 4; ++j) x[j] = logit2<Mask>(p, row, c + j, s[j]);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) x[j] = -INFINITY;
    }
  };

  float row_max, inv_sum, sum;
  if constexpr (kVecs > 0) {
    // ---- one read: the row stays in registers ------------------------------------------------
    float x[kVecs][4];
    float m = -INFINITY;
#pragma unroll
    for (int v = 0; v < kVecs; ++v) {
      logits4(4 * (lane + v * kRowThreads), x[v]);
#pragma unroll
      for (int j = 0; j < 4; ++j) m = fmaxf(m, x[v][j]);
    }
    row_max = red.max(m);  // m = max_k x_k; −∞ ⇔ no visible key
    const float m_safe = row_max == -INFINITY ? 0.0f : row_max;
    float l = 0.0f;
#pragma unroll
    for (int v = 0; v < kVecs; ++v)
#pragma unroll
      for (int j = 0; j < 4; ++j) l += (x[v][j] = exp2f(x[v][j] - m_safe));  // exp2(−∞) = 0
    sum = red.sum(l);  // l = Σ_k exp2(x_k − m) ≥ 1 when any key is visible
    inv_sum = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
    for (int v = 0; v < kVecs; ++v) {
      const int c = 4 * (lane + v * kRowThreads);
      if (c < width) {
        float pv[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) pv[j] = x[v][j] * inv_sum;  // P = exp2(x − m) / l
        store4(p_row + c, p_vec, width - c, pv);
      }
    }
  } else {
    // ---- pass 1: online max and sum per thread, then merged across the row -------------------
    float m = -INFINITY, l = 0.0f;
    for (int c = 4 * lane; c < seen; c += 4 * kRowThreads) {
      float x[4];
      logits4(c, x);
      const float m_new = fmaxf(m, fmaxf(fmaxf(x[0], x[1]), fmaxf(x[2], x[3])));
      if (m_new == -INFINITY) continue;
      l *= exp2f(m - m_new);  // rescale the running sum to the new max (exp2(−∞) = 0)
#pragma unroll
      for (int j = 0; j < 4; ++j) l += exp2f(x[j] - m_new);
      m = m_new;
    }
    row_max = red.max(m);
    const float m_safe = row_max == -INFINITY ? 0.0f : row_max;
    sum = red.sum(m == -INFINITY ? 0.0f : l * exp2f(m - m_safe));
    inv_sum = sum > 0.0f ? 1.0f / sum : 0.0f;
    // ---- pass 2: normalise (the row is read again, mostly from L2) ---------------------------
    for (int c = 4 * lane; c < width; c += 4 * kRowThreads) {
      float x[4];
      logits4(c, x);
#pragma unroll
      for (int j = 0; j < 4; ++j) x[j] = exp2f(x[j] - m_safe) * inv_sum;
      store4(p_row + c, p_vec, width - c, x);
    }
  }
  // LSE = ln Σ_k exp(s_k·scale + bias_k) = (m + log2 l)·ln 2, in natural-log units; −∞ if masked.
  if (row.live && lane == 0) p.lse[row.lse_index] = sum > 0.0f ? (row_max + log2f(sum)) * kLn2 : -INFINITY;
}

// Launches the forward softmax over all (B, Hq, Sq) rows; P rows are ld_p wide (Sk weights, then zeros).
template <class V>
attnforge_status softmax_fwd(const Params& p, const float* S, int64_t ld_s, elem_t<V::kDType>* P,
                             int64_t ld_p, cudaStream_t stream) {
  constexpr int kThreads = V::TileT::kWarps * 32;
  static_assert(kThreads >= 32 && kThreads <= 1024, "unfused softmax: warps per CTA in [1, 32]");
  const int64_t rows = int64_t(p.batch) * p.heads_q * p.seqlen_q;
  if (rows == 0) return ATTNFORGE_OK;
  const bool p_vec = ld_p % 4 == 0 && reinterpret_cast<uintptr_t>(P) % (4 * sizeof(*P)) == 0;
  const int64_t width = ld_p;  // the columns each row writes: the register path must hold them all
  if (width <= 4 * 8 * 32) {
    const int64_t blocks = (rows + kThreads / 32 - 1) / (kThreads / 32);
    softmax_fwd_kernel<V, 32, 8><<<dim3(unsigned(blocks)), kThreads, 0, stream>>>(p, S, ld_s, P, ld_p, p_vec);
  } else if (width <= 4 * 16 * kThreads) {
    softmax_fwd_kernel<V, kThreads, 16><<<dim3(unsigned(rows)), kThreads, 0, stream>>>(p, S, ld_s, P, ld_p, p_vec);
  } else {
    softmax_fwd_kernel<V, kThreads, 0><<<dim3(unsigned(rows)), kThreads, 0, stream>>>(p, S, ld_s, P, ld_p, p_vec);
  }
  ATTNFORGE_UNFUSED_CUDA(cudaGetLastError());
  return ATTNFORGE_OK;
}

}  // namespace attnforge::unfused
