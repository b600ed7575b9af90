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
// gmem + r·row_stride (elements; last dim contiguous, 16-byte aligned). Rows ≥ rows_valid are
// zero-filled in shared memory and never read, so partial tiles need no other predication.
// All kThreads threads of the CTA call it; each issues its share of the 16-byte chunks.
template <class Layout, int kThreads, class Element>
__device__ __forceinline__ void load_tile_async(uint32_t smem_base, const Element* gmem,
                                                int64_t row_stride, int rows_valid, int tid) {
  constexpr int kChunks = Layout::kRows * Layout::kChunksPerRow;
  constexpr int kIters = (kChunks + kThreads - 1) / kThreads;
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    const int idx = it * kThreads + tid;
    if (kChunks % kThreads == 0 || idx < kChunks) {
      const int row = idx / Layout::kChunksPerRow;
      const int chunk = idx % Layout::kChunksPerRow;
      const bool ok = row < rows_valid;
      const Element* src = ok ? gmem + row * row_stride + chunk * 8 : gmem;
      cp_async_16(smem_base + Layout::chunk_offset(row, chunk), src, ok);
    }
  }
}

}  // namespace attnforge::prim
