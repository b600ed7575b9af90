// The mbarriers of a warp-specialized forward's Q / K / V traffic (flash/fwd_sm90_ws.cuh,
// fused/fwd_sm90_ws.cuh): Q full / empty, then per K/V stage K full, K empty, V full, V empty, 8 bytes
// each from `base`. The producer's expect_tx completes a full barrier; every consumer thread arrives on
// an empty one when done with the buffer.
#pragma once
#include <cstdint>

#include "common/tma.cuh"

namespace attnforge::prim::tma {

template <int kStages>
struct WsBarriers {
  static constexpr int kCount = 2 + 4 * kStages;
  uint32_t base;  // shared-memory address, 8-byte aligned

  __device__ __forceinline__ uint32_t q_full() const { return base; }
  __device__ __forceinline__ uint32_t q_empty() const { return base + 8u; }
  __device__ __forceinline__ uint32_t k_full(int st) const { return base + 8u * (2 + st); }
  __device__ __forceinline__ uint32_t k_empty(int st) const { return base + 8u * (2 + kStages + st); }
  __device__ __forceinline__ uint32_t v_full(int st) const { return base + 8u * (2 + 2 * kStages + st); }
  __device__ __forceinline__ uint32_t v_empty(int st) const { return base + 8u * (2 + 3 * kStages + st); }

  // By one thread, before the CTA's first __syncthreads.
  __device__ __forceinline__ void init(uint32_t consumer_threads) const {
    mbar_init(q_full(), 1);
    mbar_init(q_empty(), consumer_threads);
    for (int st = 0; st < kStages; ++st) {
      mbar_init(k_full(st), 1);
      mbar_init(v_full(st), 1);
      mbar_init(k_empty(st), consumer_threads);
      mbar_init(v_empty(st), consumer_threads);
    }
    fence_barrier_init();
  }
};

}  // namespace attnforge::prim::tma
