// Thread-block clusters on Hopper (sm_90a): a CTA's rank in its cluster, the cluster-wide barrier, an
// mbarrier arrival on a peer CTA's barrier, and the TMA load that multicasts one box into the same
// shared-memory offset of several CTAs, completing on each one's barrier at that offset.
#pragma once
#include <cuda.h>

#include <cstdint>

namespace attnforge::prim::cluster {

__device__ __forceinline__ uint32_t cta_rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
// Every thread of every CTA of the cluster (aligned: the whole warp executes it): arrive, then wait.
// Orders the barrier inits (fence_barrier_init) before any peer's arrival or multicast reaches them.
__device__ __forceinline__ void sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// An arrival on the mbarrier at shared-memory address `bar` of this CTA, as CTA `rank` of the cluster
// sees it (mapa). The default semantics (release at CTA scope), as CUTLASS's ClusterBarrier: the callers
// arrive after a wgmma wait, so the reads the arrival frees are done; .release.cluster cost the D 128 steady
// loop 34 instructions (MEMBAR / CGAERRBAR per arrival).
__device__ __forceinline__ void mbar_arrive_at(uint32_t bar, uint32_t rank) {
  asm volatile(
      "{\n.reg .b32 remote;\n"
      "mapa.shared::cluster.u32 remote, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [remote];\n}\n" ::"r"(bar),
      "r"(rank)
      : "memory");
}
// One box of a 4-D tensor map at (c0, c1, c2, c3) into shared-memory address `dst` of every CTA in
// `cta_mask`, each completing `bar` (the same offset) by the box's bytes.
__device__ __forceinline__ void load_4d_multicast(uint32_t dst, const CUtensorMap* map, uint32_t bar, uint16_t cta_mask,
                                                  int c0, int c1, int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster "
      "[%0], [%1, {%4, %5, %6, %7}], [%2], %3;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "h"(cta_mask), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}
// Rows row … row + kRows − 1 of head `head` (batch `batch`) of encode_rows_view's view (boxes of kRows
// rows) into rows tile_row … of a 128-byte-swizzled tile (Layout) in every CTA of `cta_mask`: one box per
// 64-column slab. tile_row a multiple of 8 keeps the swizzle's phase (8 rows of 128 bytes per atom).
template <class Layout, int kRows>
__device__ __forceinline__ void load_rows_multicast(uint32_t tile, int tile_row, const CUtensorMap* map, uint32_t bar,
                                                    uint16_t cta_mask, int head, int row, int batch) {
  static_assert(kRows % 8 == 0);
#pragma unroll
  for (int slab = 0; slab < Layout::kCols / 64; ++slab)
    load_4d_multicast(tile + slab * Layout::kSlabBytes + tile_row * 128, map, bar, cta_mask, slab * 64, head, row, batch);
}

}  // namespace attnforge::prim::cluster
