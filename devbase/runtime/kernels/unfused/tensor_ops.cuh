// Small strided tensor kernels of the unfused backend: zero a block of token rows of a
// (tokens, heads, D) tensor (outputs of sequences that see no key / no query), and write the fp32
// dK / dV accumulators (summed over the GQA head group) into the caller's strided dtype tensors.
#pragma once
#include <cuda_runtime.h>

#include "unfused/error.hpp"
#include "unfused/types.cuh"

namespace attnforge::unfused {

// dst(t, h, d) = 0 for t < rows, h < heads, d < D; dst already points at the first row.
template <class E>
__global__ void zero_rows_kernel(E* dst, int64_t rows, int heads, int D, int64_t row_stride,
                                 int64_t head_stride) {
  const int64_t n = rows * heads * D;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int d = int(e % D);
    const int64_t th = e / D;
    dst[(th / heads) * row_stride + (th % heads) * head_stride + d] = from_float<E>(0.0f);
  }
}

template <class E>
attnforge_status zero_rows(void* dst, int64_t rows, int heads, int D, int64_t row_stride,
                           int64_t head_stride, cudaStream_t stream) {
  const int64_t n = rows * heads * D;
  if (n == 0) return ATTNFORGE_OK;
  const int64_t blocks = (n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096;
  zero_rows_kernel<E><<<unsigned(blocks), 256, 0, stream>>>(static_cast<E*>(dst), rows, heads, D,
                                                            row_stride, head_stride);
  ATTNFORGE_UNFUSED_CUDA(cudaGetLastError());
  return ATTNFORGE_OK;
}

// dst(b, s, h, d) = acc(b, h, s, d): acc is fp32 contiguous (batches, H, rows_per_batch, D) —
// dense: (B, Hkv, Sk, D); varlen: one batch of all total_k tokens, with batch_stride 0 in dst.
template <class E>
__global__ void store_acc_kernel(const float* __restrict__ acc, E* __restrict__ dst, int64_t batches,
                                 int heads, int64_t rows_per_batch, int D, int64_t batch_stride,
                                 int64_t row_stride, int64_t head_stride) {
  const int64_t n = batches * heads * rows_per_batch * D;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int d = int(e % D);
    const int64_t s = (e / D) % rows_per_batch;
    const int64_t bh = e / (D * rows_per_batch);
    const int h = int(bh % heads);
    const int64_t b = bh / heads;
    dst[b * batch_stride + s * row_stride + h * head_stride + d] = from_float<E>(acc[e]);
  }
}

template <class E>
attnforge_status store_acc(const float* acc, void* dst, int64_t batches, int heads,
                           int64_t rows_per_batch, int D, int64_t batch_stride, int64_t row_stride,
                           int64_t head_stride, cudaStream_t stream) {
  const int64_t n = batches * heads * rows_per_batch * D;
  if (n == 0) return ATTNFORGE_OK;
  const int64_t blocks = (n + 255) / 256 < 65536 ? (n + 255) / 256 : 65536;
  store_acc_kernel<E><<<unsigned(blocks), 256, 0, stream>>>(
      acc, static_cast<E*>(dst), batches, heads, rows_per_batch, D, batch_stride, row_stride,
      head_stride);
  ATTNFORGE_UNFUSED_CUDA(cudaGetLastError());
  return ATTNFORGE_OK;
}

}  // namespace attnforge::unfused
