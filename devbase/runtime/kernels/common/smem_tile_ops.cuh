// Operations on 16-bit tiles staged in shared memory (smem_layout.cuh layouts): the exact negation of
// one 16-byte chunk in place, zeroing one row of a 128-byte-swizzled tile, staging one row of a warp's
// fp32 accumulator fragments, and a warp's store of staged rows to global memory, 16 bytes per lane.
#pragma once
#include <cstdint>

#include "common/smem_layout.cuh"

namespace attnforge::prim {

// Zeroes row `row` of the SmemTileSw128-layout tile at `tile`: its 128 bytes in every 64-column slab
// (all eight chunks, so the swizzle order does not matter).
template <class Layout>
__device__ __forceinline__ void zero_row_sw128(uint32_t tile, int row) {
#pragma unroll
  for (int slab = 0; slab < Layout::kCols / 64; ++slab)
#pragma unroll
    for (int ch = 0; ch < 8; ++ch)
      asm volatile("st.shared.v4.u32 [%0], {%1,%1,%1,%1};\n" ::"r"(tile + slab * Layout::kSlabBytes + row * 128 + ch * 16),
                   "r"(0u));
}

// Flips the sign bits of the eight 16-bit values of the chunk at `addr` (exact: −x for f16/bf16).
__device__ __forceinline__ void negate_chunk16(uint32_t addr) {
  uint32_t x0, x1, x2, x3;
  asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(x0), "=r"(x1), "=r"(x2), "=r"(x3) : "r"(addr));
  constexpr uint32_t kSigns = 0x80008000u;
  asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};\n" ::"r"(addr), "r"(x0 ^ kSigns), "r"(x1 ^ kSigns),
               "r"(x2 ^ kSigns), "r"(x3 ^ kSigns));
}

// Row 8·hh + g of a warp's m16 C fragments acc (fp32; lane (g, t) holds columns 8·nt + 2t, +1, see
// mma.cuh), times sc and packed to 16 bits by Num, into row r of the tile at `tile`: what
// store_staged_rows then writes out.
template <class Layout, class Num, int kN>
__device__ __forceinline__ void stage_fragment_row(uint32_t tile, int r, const float (&acc)[kN][4], int hh, int t,
                                                   float sc = 1.f) {
#pragma unroll
  for (int nt = 0; nt < kN; ++nt)
    asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(tile + Layout::offset(r, nt * 8 + 2 * t)),
                 "r"(Num::pack2(acc[nt][2 * hh] * sc, acc[nt][2 * hh + 1] * sc)));
}

// One warp copies kRows staged rows row0 … of the tile at `tile` to out + q·row_stride (q = q_first +
// row), skipping rows with q < 0 or q ≥ q_end; chunk idx = it·32 + lane, so consecutive lanes write one row.
template <class Layout, int kRows, class Element>
__device__ __forceinline__ void store_staged_rows(uint32_t tile, int row0, Element* out, int64_t row_stride,
                                                  int q_first, int q_end, int lane) {
  constexpr int kChunks = kRows * Layout::kChunksPerRow;
#pragma unroll
  for (int it = 0; it < (kChunks + 31) / 32; ++it) {
    const int idx = it * 32 + lane;
    if (kChunks % 32 == 0 || idx < kChunks) {
      const int r = row0 + idx / Layout::kChunksPerRow;
      const int c = idx % Layout::kChunksPerRow;
      const int q = q_first + r;
      if (q >= 0 && q < q_end) {
        uint32_t x0, x1, x2, x3;
        asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(x0), "=r"(x1), "=r"(x2), "=r"(x3)
                     : "r"(tile + Layout::chunk_offset(r, c)));
        // One 16-byte store (rows are 16-byte aligned; a uint4 assignment compiled to four 4-byte ones).
        asm volatile("st.global.v4.u32 [%0], {%1,%2,%3,%4};\n" ::"l"(out + q * row_stride + c * 8), "r"(x0), "r"(x1),
                     "r"(x2), "r"(x3)
                     : "memory");
      }
    }
  }
}

}  // namespace attnforge::prim
