// Asynchronous global → shared copies (cp.async, sm_80+): 16-byte chunks with zero-fill predication,
// commit groups and waits; and a helper that streams a row-predicated 2-D tile into a SmemTile.
#pragma once
#include <cstdint>

#include "common/smem_layout.cuh"

namespace attnforge::prim {

// Copies 16 bytes gmem → smem, or writes 16 zero bytes and reads nothing when !pred (src-size 0).
// gmem must still be a valid address (callers pass the tensor base when !pred).
__device__ __forceinline__ void cp_async_16(uint32_t smem_addr, const void* gmem, bool pred) {
  const int src_bytes = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16, %2;\n" ::"r"(smem_addr),
               "l"(gmem), "r"(src_bytes));
}

// Closes the group of cp.async issued by this thread since the last commit (may be empty).
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

// Waits until at most N of this thread's committed groups are still in flight. Other threads'
// copies are visible only after a following barrier.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Issues the copies of a (Layout::kRows × Layout::kCols) tile of 16-bit elements whose row r is at
// gmem + r·row_stride (elements; last dim contiguous, 16-byte aligned). Rows for which row_ok(r) is
// false are zero-filled in shared memory and never read, so partial tiles need no other predication.
// All kThreads threads of the CTA call it; each issues its share of the 16-byte chunks (chunk
// it·kThreads + tid, it = 0, 1, ...: for_each_own_chunk visits the same ones).
template <class Layout, int kThreads, class F>
__device__ __forceinline__ void for_each_own_chunk(int tid, F&& f) {
  constexpr int kChunks = Layout::kRows * Layout::kChunksPerRow;
  constexpr int kIters = (kChunks + kThreads - 1) / kThreads;
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    const int idx = it * kThreads + tid;
    if (kChunks % kThreads == 0 || idx < kChunks) f(idx / Layout::kChunksPerRow, idx % Layout::kChunksPerRow);
  }
}

template <class Layout, int kThreads, class Element, class RowOk>
__device__ __forceinline__ void load_tile_async_if(uint32_t smem_base, const Element* gmem,
                                                   int64_t row_stride, RowOk&& row_ok, int tid) {
  constexpr int kCpr = Layout::kChunksPerRow;
  if constexpr (kThreads % kCpr == 0 && (kThreads / kCpr) % 8 == 0) {
    // Regular case (head dim 32, 64, 128 with 128+ threads): this thread's chunks are one column c0 of
    // rows r0, r0 + kRowStep, ...; one 64-bit pointer walks them, and as kRowStep % 8 == 0 the
    // swizzle phase is the same for all, so shared addresses differ by immediates.
    constexpr int kRowStep = kThreads / kCpr;
    constexpr int kIters = (Layout::kRows + kRowStep - 1) / kRowStep;
    const int r0 = tid / kCpr, c0 = tid % kCpr;
    const Element* src = gmem + r0 * row_stride + c0 * 8;
    const int64_t step = kRowStep * row_stride;
    const uint32_t dst = smem_base + Layout::chunk_offset(r0, c0);
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int row = r0 + it * kRowStep;
      if (Layout::kRows % kRowStep == 0 || row < Layout::kRows) {
        const bool ok = row_ok(row);
        cp_async_16(dst + uint32_t(it * kRowStep * Layout::kRowBytes), ok ? src : gmem, ok);
      }
      src += step;
    }
  } else {
    for_each_own_chunk<Layout, kThreads>(tid, [&](int row, int chunk) {
      const bool ok = row_ok(row);
      const Element* src = ok ? gmem + row * row_stride + chunk * 8 : gmem;
      cp_async_16(smem_base + Layout::chunk_offset(row, chunk), src, ok);
    });
  }
}

// The common case: rows [0, rows_valid) exist, the rest are zero-filled.
template <class Layout, int kThreads, class Element>
__device__ __forceinline__ void load_tile_async(uint32_t smem_base, const Element* gmem,
                                                int64_t row_stride, int rows_valid, int tid) {
  load_tile_async_if<Layout, kThreads>(smem_base, gmem, row_stride,
                                       [&](int row) { return row < rows_valid; }, tid);
}

}  // namespace attnforge::prim
