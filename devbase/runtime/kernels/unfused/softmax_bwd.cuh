// The backward softmax of the unfused backend, per (dtype, mask kind): recompute P from the raw
// scores and the forward's LSE (normalized by its row sum), and the full softmax Jacobian with
// δ = rowsum(dO ∘ O) = Σ_j P·dP: dS = P ∘ (dP − δ) · scale, written over P in the dtype for the dQ / dK GEMMs.
#pragma once
#include <cuda_runtime.h>

#include "common/params.hpp"
#include "unfused/error.hpp"
#include "unfused/rows.cuh"
#include "unfused/types.cuh"

namespace attnforge::unfused {

// P = exp2(x − LSE·log2 e) / Z with x the masked log2 logit and Z = Σ_j exp2(x_j − LSE·log2 e).
// Z is 1 only within the LSE's rounding (LSE·log2e does not give back the forward's log2 sum exactly),
// and that error reaches dV = Pᵀ·dO and, not cancelling in dP − δ, dS: a row that sees one key had
// P = 1 − ε, dS = ε·dP instead of 0 and dV off by ε·dO (fp32, |dK| 1.2e-5 where the reference is 0:
// the GPU sweep of 2026-11-30; dV 4.7e-5 over a bound of 4e-5 at scale 4). Normalized, such a row has
// P = 1 and dS = 0 exactly. A row whose LSE is −∞ saw no key: P = 0 (not exp2(−∞ + ∞) = NaN).
// Columns past the sequence: 0.
template <class V, int kRowThreads>
__global__ void __launch_bounds__(V::TileT::kWarps * 32)
    softmax_recompute_kernel(const Params p, const float* __restrict__ S, int64_t ld_s,
                             elem_t<V::kDType>* __restrict__ P, int64_t ld_p) {
  constexpr int kThreads = V::TileT::kWarps * 32;
  const int lane = threadIdx.x % kRowThreads;
  const int64_t r = int64_t(blockIdx.x) * (kThreads / kRowThreads) + threadIdx.x / kRowThreads;
  if (r >= int64_t(p.batch) * p.heads_q * p.seqlen_q) return;
  const ScoreRow row = locate_row(p, r);
  const float lse = row.live ? p.lse[row.lse_index] : -INFINITY;
  const float lse2 = lse * kLog2e;  // LSE in log2 units
  const int seen = lse == -INFINITY ? 0 : row.seq.seqlen_k;
  const float* s_row = S + r * ld_s;
  auto* p_row = P + r * ld_p;
  auto exp_at = [&](int c, float (&x)[4]) {  // the unnormalized P of columns c … c + 3 (0 past seen)
    float s[4];
    load4(s_row + c, /*vec=*/true, seen - c, s);
#pragma unroll
    for (int j = 0; j < 4; ++j) x[j] = c + j < seen ? exp2f(logit2<typename V::Mask>(p, row, c + j, s[j]) - lse2) : 0.0f;
  };
  __shared__ float smem[kThreads / 32];
  const RowReduce<kRowThreads, kThreads> red{smem};
  float zpart = 0.0f;
  for (int c = 4 * lane; c < seen; c += 4 * kRowThreads) {
    float x[4];
    exp_at(c, x);
#pragma unroll
    for (int j = 0; j < 4; ++j) zpart += x[j];
  }
  const float z = red.sum(zpart);  // z = 0 only when every P underflowed (or none was seen): P stays 0
  for (int c = 4 * lane; c < ld_p; c += 4 * kRowThreads) {  // zeros past Sk: the pitch's padding
    float x[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (c < seen) {
      exp_at(c, x);
#pragma unroll
      for (int j = 0; j < 4; ++j) x[j] = z > 0.0f ? x[j] / z : 0.0f;  // a division: x / x is exactly 1, x · (1 / x) not always
    }
    store4(p_row + c, /*vec=*/true, int(ld_p - c), x);  // workspace P: 16-byte rows
  }
}

// dS = P ∘ (dP − δ) · scale — the softmax Jacobian applied to dP = dO·Vᵀ (fp32), written over P.
// Masked entries have P = 0, so dS = 0 there; columns past the sequence are never read from dP
// (cuBLAS did not write them) and get 0.
template <class V, int kRowThreads>
__global__ void __launch_bounds__(V::TileT::kWarps * 32)
    softmax_grad_kernel(const Params p, const float* __restrict__ dP, int64_t ld_s,
                        elem_t<V::kDType>* __restrict__ P, int64_t ld_p) {
  constexpr int kThreads = V::TileT::kWarps * 32;
  const int lane = threadIdx.x % kRowThreads;
  const int64_t r = int64_t(blockIdx.x) * (kThreads / kRowThreads) + threadIdx.x / kRowThreads;
  if (r >= int64_t(p.batch) * p.heads_q * p.seqlen_q) return;
  const ScoreRow row = locate_row(p, r);
  const int seen = row.live ? row.seq.seqlen_k : 0;
  const float* dp_row = dP + r * ld_s;
  auto* p_row = P + r * ld_p;
  // δ = rowsum(dO ∘ O) with O = P·V as the forward formed it, i.e. Σ_j P_ij·dP_ij over this row,
  // rather than from the stored O: its rounding to the dtype dominates dS when a row sees only a
  // few keys or the head dim is small. P == 0 selects 0 (dP may hold garbage from masked V).
  __shared__ float smem[kThreads / 32];
  const RowReduce<kRowThreads, kThreads> red{smem};
  float part = 0.0f;
  for (int c = 4 * lane; c < seen; c += 4 * kRowThreads) {
    float pr[4], g[4];
    load4(p_row + c, /*vec=*/true, seen - c, pr);
    load4(dp_row + c, /*vec=*/true, seen - c, g);
#pragma unroll
    for (int j = 0; j < 4; ++j) part += pr[j] != 0.0f ? pr[j] * g[j] : 0.0f;
  }
  const float d = red.sum(part);
  for (int c = 4 * lane; c < ld_p; c += 4 * kRowThreads) {  // zeros past Sk: the pitch's padding
    float x[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (c < seen) {
      float pr[4];
      float g[4];
      load4(p_row + c, /*vec=*/true, seen - c, pr);
      load4(dp_row + c, /*vec=*/true, seen - c, g);
#pragma unroll
      for (int j = 0; j < 4; ++j) x[j] = c + j < seen ? pr[j] * (g[j] - d) * p.scale : 0.0f;
    }
    store4(p_row + c, /*vec=*/true, int(ld_p - c), x);
  }
}

// Row groups as in the forward: a warp per row up to Sk = 1024, else the block.
template <class V, template <class, int> class Launch, class... Args>
attnforge_status launch_rows(const Params& p, cudaStream_t stream, Args... args) {
  constexpr int kThreads = V::TileT::kWarps * 32;
  const int64_t rows = int64_t(p.batch) * p.heads_q * p.seqlen_q;
  if (rows == 0) return ATTNFORGE_OK;
  if (p.seqlen_k <= 1024)
    Launch<V, 32>::run(dim3(unsigned((rows + kThreads / 32 - 1) / (kThreads / 32))), kThreads, stream, p, args...);
  else
    Launch<V, kThreads>::run(dim3(unsigned(rows)), kThreads, stream, p, args...);
  ATTNFORGE_UNFUSED_CUDA(cudaGetLastError());
  return ATTNFORGE_OK;
}

template <class V, int kRowThreads>
struct RecomputeLaunch {
  template <class... A>
  static void run(dim3 g, int t, cudaStream_t s, const Params& p, A... a) {
    softmax_recompute_kernel<V, kRowThreads><<<g, t, 0, s>>>(p, a...);
  }
};
template <class V, int kRowThreads>
struct GradLaunch {
  template <class... A>
  static void run(dim3 g, int t, cudaStream_t s, const Params& p, A... a) {
    softmax_grad_kernel<V, kRowThreads><<<g, t, 0, s>>>(p, a...);
  }
};

template <class V>
attnforge_status softmax_recompute(const Params& p, const float* S, int64_t ld_s,
                                   elem_t<V::kDType>* P, int64_t ld_p, cudaStream_t stream) {
  return launch_rows<V, RecomputeLaunch>(p, stream, S, ld_s, P, ld_p);
}

template <class V>
attnforge_status softmax_grad(const Params& p, const float* dP, int64_t ld_s, elem_t<V::kDType>* P,
                              int64_t ld_p, cudaStream_t stream) {
  return launch_rows<V, GradLaunch>(p, stream, dP, ld_s, P, ld_p);
}

}  // namespace attnforge::unfused
