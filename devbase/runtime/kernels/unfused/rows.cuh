// One score row of the unfused kernels: which (b, h, i) a row of the (B, Hq, Sq, ·) buffers is,
// its sequence's lengths, and the log2-domain logit of a raw score under the variant's mask kind.
// Shared by the forward softmax and the backward recompute so both see exactly the same logits.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/params.hpp"
#include "unfused/types.cuh"

namespace attnforge::unfused {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Block/row-group reductions: kRowThreads == 32 ⇒ one warp per row (shuffles only); otherwise the
// whole block is one row group and partial results meet in shared memory.
template <int kRowThreads, int kThreads>
struct RowReduce {
  static_assert(kRowThreads == 32 || kRowThreads == kThreads, "a row is one warp or the block");
  float* smem;  // kThreads / 32 floats (block groups only)

  template <class Op>
  __device__ __forceinline__ float reduce(float v, Op op) const {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    if constexpr (kRowThreads > 32) {
      const int warp = threadIdx.x / 32;
      __syncthreads();  // smem may still be read by a previous reduction
      if (threadIdx.x % 32 == 0) smem[warp] = v;
      __syncthreads();
      v = smem[0];
#pragma unroll
      for (int w = 1; w < kThreads / 32; ++w) v = op(v, smem[w]);
    }
    return v;
  }
  __device__ __forceinline__ float max(float v) const {
    return reduce(v, [](float a, float b) { return fmaxf(a, b); });
  }
  __device__ __forceinline__ float sum(float v) const {
    return reduce(v, [](float a, float b) { return a + b; });
  }
};

struct ScoreRow {
  int b, h, i;           // batch, query head, query position inside the sequence
  SeqInfo seq;           // this sequence's offsets and lengths
  bool live;             // i < seq.seqlen_q (varlen rows past the sequence are padding)
  int64_t lse_index;     // into Params::lse
  const char* bias_row;  // bias(b, h, i, 0) (kinds with a tensor), element strides in Params
};

// r indexes the rows of a (B, Hq, Sq, ·) buffer, Sq being Params::seqlen_q (the max for varlen).
__device__ __forceinline__ ScoreRow locate_row(const Params& p, int64_t r) {
  ScoreRow row;
  const int64_t per_batch = int64_t(p.heads_q) * p.seqlen_q;
  row.b = int(r / per_batch);
  const int64_t rem = r - int64_t(row.b) * per_batch;
  row.h = int(rem / p.seqlen_q);
  row.i = int(rem - int64_t(row.h) * p.seqlen_q);
  row.seq = seq_info(p, row.b);
  row.live = row.i < row.seq.seqlen_q;
  row.lse_index = row.b * p.lse_batch_stride + row.h * p.lse_head_stride + row.seq.q_start + row.i;
  row.bias_row = nullptr;
  if (p.bias != nullptr) {
    const int64_t off = row.b * p.bias_stride_b + row.h * p.bias_stride_h + row.i * p.bias_stride_q;
    const int es = p.bias_dtype == ATTNFORGE_F32 ? 4 : p.bias_dtype == ATTNFORGE_BOOL ? 1 : 2;
    row.bias_row = static_cast<const char*>(p.bias) + off * es;
  }
  return row;
}

// The tensor part of a mask in the log2 domain: additive bias · log2(e), or 0 / −∞ for a boolean.
__device__ __forceinline__ float bias_log2(const Params& p, const char* bias_row, int k) {
  const int64_t o = k * p.bias_stride_k;
  switch (p.bias_dtype) {
    case ATTNFORGE_F32: return reinterpret_cast<const float*>(bias_row)[o] * kLog2e;
    case ATTNFORGE_F16: return __half2float(reinterpret_cast<const __half*>(bias_row)[o]) * kLog2e;
    case ATTNFORGE_BF16:
      return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(bias_row)[o]) * kLog2e;
    default: return reinterpret_cast<const uint8_t*>(bias_row)[o] != 0 ? 0.0f : -INFINITY;
  }
}

// x = (s·scale + bias)·log2(e), so that softmax weights are exp2(x − max) — or −∞ for a key the
// mask hides or one past this sequence's length (masked scores are −∞, never −1e9).
template <class Mask>
__device__ __forceinline__ float logit2(const Params& p, const ScoreRow& row, int k, float s) {
  if (k >= row.seq.seqlen_k ||
      !Mask::visible(row.i, k, row.seq.seqlen_q, row.seq.seqlen_k, p.mask))
    return -INFINITY;
  float x = s * p.scale_log2;
  if constexpr (Mask::kHasTensor)
    if (row.bias_row != nullptr) x += bias_log2(p, row.bias_row, k);
  return x;
}

}  // namespace attnforge::unfused
