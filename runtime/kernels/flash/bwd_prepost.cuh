// The two memory-bound passes around the flash backward main kernel: the preprocess computes
// D = rowsum(dO ∘ O) per (query token, head) in fp32; the postprocess turns the fp32 dQ
// accumulator into dQ = scale · acc in the output dtype, written with dQ's strides.
#pragma once
#include "flash/bwd_dq_acc.cuh"
#include "flash/bwd_primitives.cuh"
#include "flash/bwd_workspace.hpp"

namespace attnforge::flash::bwd_detail {

constexpr int kPrepostThreads = 256;
constexpr int kRowThreads = 8;  // threads that share one (token, head) row

// Offset of query token t (packed index into total_q) in a tensor laid out like q.
__device__ __forceinline__ int64_t q_token_offset(const Params& p, int64_t t, int64_t bs, int64_t rs) {
  if (p.is_varlen()) return t * rs;  // varlen: batch stride 0, t is the packed row
  const int64_t b = t / p.seqlen_q, i = t % p.seqlen_q;
  return b * bs + i * rs;
}

// D[h, t] = Σ_d dO[t, h, d] · O[t, h, d]   (fp32; one group of kRowThreads per row)
template <DType DT, int kD>
__global__ void __launch_bounds__(kPrepostThreads) flash_bwd_dot_do_o_kernel(const __grid_constant__ Params p) {
  using E = Elem<DT>;
  using T = typename E::type;
  const int64_t row = (int64_t(blockIdx.x) * kPrepostThreads + threadIdx.x) / kRowThreads;
  const int sub = threadIdx.x % kRowThreads;
  const int64_t rows = p.total_q * p.heads_q;
  float sum = 0.f;
  if (row < rows) {
    const int64_t t = row / p.heads_q;
    const int h = int(row % p.heads_q);
    const T* o = static_cast<const T*>(p.o) + q_token_offset(p, t, p.o_batch_stride, p.o_row_stride) +
                 int64_t(h) * p.o_head_stride;
    const T* dO = static_cast<const T*>(p.d_o) +
                  q_token_offset(p, t, p.do_batch_stride, p.do_row_stride) + int64_t(h) * p.do_head_stride;
    for (int c = sub; c < kD / 8; c += kRowThreads) {
      const uint4 ov = *reinterpret_cast<const uint4*>(o + c * 8);
      const uint4 dv = *reinterpret_cast<const uint4*>(dO + c * 8);
      const T* oe = reinterpret_cast<const T*>(&ov);
      const T* de = reinterpret_cast<const T*>(&dv);
#pragma unroll
      for (int e = 0; e < 8; ++e) sum += E::to_float(oe[e]) * E::to_float(de[e]);
    }
  }
#pragma unroll
  for (int off = kRowThreads / 2; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (row < rows && sub == 0) {
    const int64_t t = row / p.heads_q;
    const int h = int(row % p.heads_q);
    float* dsum = reinterpret_cast<float*>(static_cast<char*>(p.workspace));  // dsum_offset == 0
    dsum[int64_t(h) * p.total_q + t] = sum;
  }
}

// dQ[t, h, :] = scale · acc[t, h, :] in the output dtype (8 elements per thread).
template <DType DT, int kD>
__global__ void __launch_bounds__(kPrepostThreads) flash_bwd_convert_dq_kernel(const __grid_constant__ Params p,
                                                                             size_t dq_acc_offset) {
  using E = Elem<DT>;
  using T = typename E::type;
  constexpr int kChunks = kD / 8;
  const int64_t idx = int64_t(blockIdx.x) * kPrepostThreads + threadIdx.x;
  if (idx >= p.total_q * p.heads_q * kChunks) return;
  const int c = int(idx % kChunks);
  const int64_t row = idx / kChunks;
  const int64_t t = row / p.heads_q;
  const int h = int(row % p.heads_q);
  const float* acc = reinterpret_cast<const float*>(static_cast<const char*>(p.workspace) + dq_acc_offset) +
                     row * kD + c * 8;
  const float4 a = *reinterpret_cast<const float4*>(acc);
  const float4 b = *reinterpret_cast<const float4*>(acc + 4);
  uint4 out;
  out.x = E::pack(a.x * p.scale, a.y * p.scale);
  out.y = E::pack(a.z * p.scale, a.w * p.scale);
  out.z = E::pack(b.x * p.scale, b.y * p.scale);
  out.w = E::pack(b.z * p.scale, b.w * p.scale);
  T* dq = static_cast<T*>(p.dq) + q_token_offset(p, t, p.dq_batch_stride, p.dq_row_stride) +
          int64_t(h) * p.dq_head_stride + c * 8;
  *reinterpret_cast<uint4*>(dq) = out;
}

// Tiled accumulator (bwd_dq_acc.cuh): one CTA per (query tile, head, batch) with the main
// kernel's thread count reads the tile block in fragment order (coalesced) and writes
// dQ = scale · acc for the rows inside the sequence.
template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads) flash_bwd_convert_dq_tiled_kernel(const __grid_constant__ Params p,
                                                                                 size_t dq_acc_offset) {
  using Acc = DqAcc<Tr>;
  using E = typename Tr::E;
  using T = typename Tr::T;
  const int mb = blockIdx.x, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
  const SeqInfo si = seq_info(p, b);
  const int m0 = mb * Tr::kBlockM;
  if (m0 >= si.seqlen_q) return;
  const float* tile = reinterpret_cast<const float*>(static_cast<const char*>(p.workspace) + dq_acc_offset) +
                      Acc::tile_base(p, b, h, mb);
  T* dq = static_cast<T*>(p.dq) + int64_t(b) * p.dq_batch_stride + si.q_start * p.dq_row_stride +
          int64_t(h) * p.dq_head_stride;
#pragma unroll
  for (int i = 0; i < Acc::kI; ++i)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int q = m0 + Acc::row(tid, i, r);
      if (q >= si.seqlen_q) continue;
#pragma unroll
      for (int j = 0; j < Acc::kJ; ++j) {
        const float2 a = *reinterpret_cast<const float2*>(tile + Acc::tiled_offset(tid, i, j, r));
        *reinterpret_cast<uint32_t*>(dq + int64_t(q) * p.dq_row_stride + Acc::col(tid, j)) =
            E::pack(a.x * p.scale, a.y * p.scale);
      }
    }
}

}  // namespace attnforge::flash::bwd_detail
