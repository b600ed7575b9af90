// The mbarriers of a warp-specialized forward's Q / K / V traffic (flash/fwd_sm90_ws.cuh,
// fused/fwd_sm90_ws.cuh): Q full / empty, then per K/V stage K full, K empty, V full, V empty, 8 bytes
// each from `base`. The producer's expect_tx completes a full barrier; every consumer thread arrives on
// an empty one when done with the buffer. And the row-block slot that rides on the Q barriers.
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

  // By one thread, before the CTA's first __syncthreads. kv_releases: arrivals that free a K or V stage
  // (every consumer thread, or in a CTA pair sharing K / V one per consumer warp of both CTAs).
  __device__ __forceinline__ void init(uint32_t consumer_threads, uint32_t kv_releases) const {
    mbar_init(q_full(), 1);
    mbar_init(q_empty(), consumer_threads);
    for (int st = 0; st < kStages; ++st) {
      mbar_init(k_full(st), 1);
      mbar_init(v_full(st), 1);
      mbar_init(k_empty(st), kv_releases);
      mbar_init(v_empty(st), kv_releases);
    }
    fence_barrier_init();
  }
};

// The row block whose Q is in flight, published by the producer's thread to the consumers (the kernels'
// kPublishBlocks), so that they do none of the schedule's arithmetic between blocks. The producer writes it
// after its wait on q_empty and before the arrive that starts the Q load (a release; the consumers' wait on
// q_full acquires, then they copy it), and after the last block one with live = false (ws_publish_end); the
// consumers copy it before they arrive on q_empty, after which the producer may write the next. Block: a
// trivially copyable struct with a bool `live`, at most kWsBlockSlotBytes (the kernels' shared-memory plans
// and codegen/limits.py count the slot). Each kernel forms the slot's address from its own extern
// __shared__ array: formed here from a char* parameter, ptxas lost the array's alignment and the kernels'
// SASS moved (STS.128 → STS.64 on the slot, thousands of lines rescheduled).
inline constexpr int kWsBlockSlotBytes = 128;

// Producer, after its last block (n_q: its Q loads so far): once the consumers are done with that block,
// a block with live = false, made visible by a plain arrive on q_full.
template <class Block, int kStages>
__device__ __forceinline__ void ws_publish_end(const WsBarriers<kStages>& bars, Block* slot, int n_q) {
  mbar_wait(bars.q_empty(), (n_q & 1) ^ 1);
  Block end{};
  end.live = false;
  *slot = end;
  mbar_arrive(bars.q_full());
}

}  // namespace attnforge::prim::tma
