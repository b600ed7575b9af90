// The fused backend's fp32 kernels and their launchers: a CTA per (kBlockM query rows, head, sequence)
// runs fused_f32_forward / fused_f32_backward (fused/f32_cta.hpp) on CUDA cores. Forward: one launch.
// Backward: two — dK, dV (fp32, the caller's tensors) zeroed, then the kernel that adds every query
// block's share into them with atomics (not bitwise deterministic: deterministic = 1 is refused).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>

#include "fused/f32_cta.hpp"
#include "fused/host_util.hpp"

namespace attnforge::fused {

// The device's threads for the phases of f32_cta.hpp.
struct DeviceThreads {
  template <class F>
  __host__ __device__ void run(F&& f) const {
#if defined(__CUDA_ARCH__)
    f(int(threadIdx.x));
#else
    (void)f;
#endif
  }
  __host__ __device__ void sync() const {
#if defined(__CUDA_ARCH__)
    __syncthreads();
#endif
  }
};

template <class V>
__global__ void __launch_bounds__(F32Cta<V>::kThreads) f32_kernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(16) float smem_f32[];  // 16-byte loads of Q, dO and K/V rows
  const int b = blockIdx.z, h = blockIdx.y, mb = blockIdx.x;
  const SeqInfo seq = seq_info(p, b);
  if (mb * F32Cta<V>::kBM >= seq.seqlen_q) return;  // varlen: past this sequence's rows (whole CTA)
  const F32Cta<V> cta(p, b, h, mb, seq, smem_f32);
  if constexpr (F32Cta<V>::kBackward) fused_f32_backward(cta, DeviceThreads{});
  else fused_f32_forward(cta, DeviceThreads{});
}

// dK, dV ← 0 over (token rows, Hkv, D), any strides (dense rows are b·Sk + j).
template <int kD>
__global__ void __launch_bounds__(256) f32_zero_dkdv_kernel(const __grid_constant__ Params p) {
  const int64_t n = p.total_k * p.heads_kv * kD;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int d = int(e % kD), hk = int((e / kD) % p.heads_kv);
    const int64_t tok = e / (int64_t(kD) * p.heads_kv);
    const int64_t b = p.is_varlen() ? 0 : tok / p.seqlen_k, j = p.is_varlen() ? tok : tok % p.seqlen_k;
    static_cast<float*>(p.dk)[b * p.dk_batch_stride + j * p.dk_row_stride + int64_t(hk) * p.dk_head_stride + d] = 0.f;
    static_cast<float*>(p.dv)[b * p.dv_batch_stride + j * p.dv_row_stride + int64_t(hk) * p.dv_head_stride + d] = 0.f;
  }
}

// Called by run_fwd / run_bwd after check_variant_runs (head dim, key row, deterministic); refuses a
// grid past its limits, then launches.
template <class V>
attnforge_status run_f32(const Params& p, cudaStream_t stream) {
  using Cta = F32Cta<V>;
  constexpr int kSmem = Cta::Plan::kBytes;
  static_assert(kSmem <= 227 * 1024, "codegen/limits.py (fused_f32_max_seqlen_k) sized kBlockN to fit");
  if (p.batch == 0 || p.heads_q == 0) return ATTNFORGE_OK;
  if (exceeds_grid_yz(p.heads_q, p.batch)) return fail(ATTNFORGE_UNSUPPORTED, kGridLimits);
  if constexpr (Cta::kBackward) {
    const int64_t n = p.total_k * p.heads_kv * Cta::kD;
    if (n > 0) {
      const int blocks = int(std::min<int64_t>((n + 255) / 256, int64_t(p.num_sms > 0 ? p.num_sms : 132) * 16));
      f32_zero_dkdv_kernel<Cta::kD><<<blocks, 256, 0, stream>>>(p);
      if (attnforge_status st = check_launch("fused fp32 backward (dK/dV zeroing)"); st != ATTNFORGE_OK) return st;
    }
  }
  if (p.seqlen_q == 0) return ATTNFORGE_OK;
  static int raised[64] = {};
  if (attnforge_status st = raise_smem_limit(f32_kernel<V>, kSmem, raised); st != ATTNFORGE_OK) return st;
  const dim3 grid((p.seqlen_q + Cta::kBM - 1) / Cta::kBM, p.heads_q, p.batch);
  f32_kernel<V><<<grid, Cta::kThreads, kSmem, stream>>>(p);
  return check_launch(Cta::kBackward ? "fused fp32 backward" : "fused fp32 forward");
}

}  // namespace attnforge::fused
