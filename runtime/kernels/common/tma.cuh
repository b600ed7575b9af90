// Hopper's tensor memory accelerator and the barriers around it (sm_90a): mbarrier init / arrive /
// expect-tx / parity wait, the 4-D tiled bulk copy global → shared, named barriers for warpgroups,
// and the host side that encodes a (B, S, H, D)-strided tensor of the call as a TMA descriptor.
#pragma once
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/params.hpp"
#include "common/variant.hpp"

namespace attnforge::prim::tma {

// ---- device ---------------------------------------------------------------------------------------
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes the initialised barriers visible to the async proxy (TMA completes on them).
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// The producer's arrival on a "full" barrier, announcing `bytes` of TMA traffic that complete it.
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Blocks until the phase of parity `parity` has completed (a fresh barrier passes parity 1 at once).
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
// One box of a 4-D tensor map at coordinates (c0, c1, c2, c3) into shared memory, completing on `bar`.
__device__ __forceinline__ void load_4d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1, int c2,
                                        int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], "
      "[%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}
// Rows row … row + Layout::kRows − 1 of head `head` (batch `batch`) of encode_rows_view's view into a
// 128-byte-swizzled tile (SmemTileSw128): one box per 64-column slab, all completing on `bar`.
template <class Layout>
__device__ __forceinline__ void load_rows(uint32_t dst, const CUtensorMap* map, uint32_t bar, int head, int row,
                                          int batch) {
#pragma unroll
  for (int slab = 0; slab < Layout::kCols / 64; ++slab)
    load_4d(dst + slab * Layout::kSlabBytes, map, bar, slab * 64, head, row, batch);
}
// Named barrier `id` over `count` threads (a multiple of 32): sync blocks, arrive does not.
__device__ __forceinline__ void bar_sync(int id, int count) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
__device__ __forceinline__ void bar_arrive(int id, int count) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
// Register reallocation between warpgroups: the producer gives registers back, consumers take them.
template <int N>
__device__ __forceinline__ void regs_dealloc() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N) : "memory");
}
template <int N>
__device__ __forceinline__ void regs_alloc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N) : "memory");
}
// Whether a split fits what the CTA got at launch (the launch bound's count per thread, rounded down to a
// multiple of 8): a consumer's increase waits until the producers' decrease has freed enough, forever where
// the two do not fit (a 32-register producer beside 240-register consumers hung the 384-thread flash
// forward: its pool is 168 · 384 = 64 512, not 64 K). Every kernel that splits static_asserts this.
constexpr bool regs_split_fits(int producer_regs, int consumer_regs, int consumer_threads, int threads,
                               int ctas_per_sm = 1) {
  return producer_regs * (threads - consumer_threads) + consumer_regs * consumer_threads <=
         (65536 / (threads * ctas_per_sm)) / 8 * 8 * threads;
}

// One box of a 3-D tensor map from shared memory (the map's layout and swizzle) at (c0, c1, c2), in this
// thread's bulk group; parts of the box outside the tensor are not written. The writes to shared memory it
// reads must be fenced to the async proxy (fence_proxy_async) by the writing threads before the barrier
// that publishes them.
__device__ __forceinline__ void store_3d(const CUtensorMap* map, uint32_t src, int c0, int c1, int c2) {
  asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.bulk_group [%0, {%2, %3, %4}], [%1];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(src), "r"(c0), "r"(c1), "r"(c2)
               : "memory");
}
// One box of a 4-D tensor map from shared memory at (c0, c1, c2, c3), in this thread's bulk group; parts of
// the box outside the tensor are not written (fence the shared-memory writes as for store_3d).
__device__ __forceinline__ void store_4d(const CUtensorMap* map, uint32_t src, int c0, int c1, int c2, int c3) {
  asm volatile("cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%2, %3, %4, %5}], [%1];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(src), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
               : "memory");
}
// Rows row … row + kRows − 1 of a 128-byte-swizzled tile (SmemTileSw128, Layout) from tile row `tile_row` to
// head `head`, batch `batch` of encode_rows_view's view (boxes of kRows rows): one box per 64-column slab.
template <class Layout, int kRows>
__device__ __forceinline__ void store_rows(const CUtensorMap* map, uint32_t tile, int tile_row, int head, int row,
                                           int batch) {
#pragma unroll
  for (int slab = 0; slab < Layout::kCols / 64; ++slab)
    store_4d(map, tile + slab * Layout::kSlabBytes + tile_row * 128, slab * 64, head, row, batch);
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// At most N of this thread's bulk groups still read their shared-memory source (the source is free).
template <int N>
__device__ __forceinline__ void bulk_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
}
// All of this thread's bulk groups complete (their writes performed).
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

// ---- host -----------------------------------------------------------------------------------------
// cuTensorMapEncodeTiled, fetched from the driver once (the runtime library does not export it).
using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
inline EncodeTiledFn encode_tiled_fn() {
  static const EncodeTiledFn fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      f = nullptr;
    return reinterpret_cast<EncodeTiledFn>(f);
  }();
  return fn;
}

// The 4-D view (D, heads, rows, batch) of a 16-bit (B, S, H, D)-strided tensor (strides in elements;
// varlen: batch 1, rows = total tokens), boxes of 64 columns × 1 head × box_rows rows, 128-byte swizzle
// (SmemTileSw128's slab layout). Rows past `rows` read as zeros. False when the driver refuses (the
// strides must be multiples of 16 bytes and the base 16-byte aligned).
inline bool encode_rows_view(CUtensorMap* map, DType dt, const void* ptr, int head_dim, int heads, int64_t rows,
                             int batch, int64_t row_stride, int64_t head_stride, int64_t batch_stride,
                             int box_rows) {
  const EncodeTiledFn fn = encode_tiled_fn();
  if (fn == nullptr || rows < 1) return false;
  const cuuint64_t dims[4] = {cuuint64_t(head_dim), cuuint64_t(heads), cuuint64_t(rows), cuuint64_t(batch)};
  const cuuint64_t strides[3] = {cuuint64_t(head_stride) * 2, cuuint64_t(row_stride) * 2,
                                 cuuint64_t(batch > 1 ? batch_stride : rows * row_stride) * 2};
  const cuuint32_t box[4] = {64, 1, cuuint32_t(box_rows), 1};
  const cuuint32_t elem_strides[4] = {1, 1, 1, 1};
  return fn(map, dt == DType::bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4,
            const_cast<void*>(ptr), dims, strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// The 3-D view (Sk, Sq, planes) of a contiguous 16-bit (planes, Sq, Sk) tensor — the attention weights
// (B, H, Sq, Sk), planes = B·H — in boxes of 64 columns × box_rows rows, 128-byte swizzle. False when the
// driver refuses (Sk·2 bytes must be a multiple of 16, the base 16-byte aligned).
inline bool encode_weights_view(CUtensorMap* map, DType dt, void* ptr, int64_t sk, int64_t sq, int64_t planes,
                                int box_rows) {
  const EncodeTiledFn fn = encode_tiled_fn();
  if (fn == nullptr || sk < 1 || sq < 1 || planes < 1) return false;
  const cuuint64_t dims[3] = {cuuint64_t(sk), cuuint64_t(sq), cuuint64_t(planes)};
  const cuuint64_t strides[2] = {cuuint64_t(sk) * 2, cuuint64_t(sk * sq) * 2};
  const cuuint32_t box[3] = {64, cuuint32_t(box_rows), 1};
  const cuuint32_t elem_strides[3] = {1, 1, 1};
  return fn(map, dt == DType::bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 3, ptr, dims,
            strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
            CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// One of the call's tensors as encode_rows_view's view: query side (Q, O, dO: heads_q heads, Sq rows,
// varlen total_q) or key side (K, V: heads_kv, Sk, total_k); varlen is one batch of packed tokens. At
// least one row: an empty sequence reads no tile but needs a valid descriptor.
enum class Side { queries, keys };
inline bool encode_tensor_view(CUtensorMap* map, const Params& p, Side side, DType dt, int head_dim, const void* ptr,
                               int64_t row_stride, int64_t head_stride, int64_t batch_stride, int box_rows) {
  const bool q = side == Side::queries, varlen = p.is_varlen();
  const int64_t rows = varlen ? (q ? p.total_q : p.total_k) : (q ? p.seqlen_q : p.seqlen_k);
  return encode_rows_view(map, dt, ptr, head_dim, q ? p.heads_q : p.heads_kv, std::max<int64_t>(rows, 1),
                          varlen ? 1 : p.batch, row_stride, head_stride, batch_stride, box_rows);
}

// Q, K and V of the call as encode_tensor_view's views, in boxes of q_rows and kv_rows rows; false when
// the driver cannot describe one of them (the caller then takes a path without TMA).
inline bool encode_qkv_views(CUtensorMap* tq, CUtensorMap* tk, CUtensorMap* tv, const Params& p, DType dt,
                             int head_dim, int q_rows, int kv_rows) {
  return encode_tensor_view(tq, p, Side::queries, dt, head_dim, p.q, p.q_row_stride, p.q_head_stride,
                            p.q_batch_stride, q_rows) &&
         encode_tensor_view(tk, p, Side::keys, dt, head_dim, p.k, p.k_row_stride, p.k_head_stride, p.k_batch_stride,
                            kv_rows) &&
         encode_tensor_view(tv, p, Side::keys, dt, head_dim, p.v, p.v_row_stride, p.v_head_stride, p.v_batch_stride,
                            kv_rows);
}

}  // namespace attnforge::prim::tma
