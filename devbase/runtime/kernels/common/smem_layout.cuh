// Shared-memory layout of a row-major tile of 16-bit elements, addressed in 16-byte chunks, arranged
// so that ldmatrix (8 rows × 16 bytes) and cp.async stores hit 8 distinct 16-byte bank groups:
//   - rows of a multiple of 8 chunks (head dim 64, 128, 192, 256): XOR swizzle, physical chunk =
//     chunk ^ (row % 8) within each aligned group of 8 chunks — no padding;
//   - other widths (32, 96): one chunk of padding per row (row stride ≡ 20 words mod 32 banks, which
//     spreads 8 consecutive rows over all 32 banks).
// SmemTileSw128 is the layout Hopper's wgmma reads (128-byte swizzle, "canonical" K-major/MN-major
// atoms): the tile is cut into 64-column slabs of kRows × 128 bytes, chunk c of row r at c ^ (r % 8);
// its base must be 1024-byte aligned (the hardware swizzles on address bits 4..6 by bits 7..9).
#pragma once
#include <cstdint>

namespace attnforge::prim {

template <int kRows_, int kCols_>
struct SmemTile {
  static_assert(kCols_ % 8 == 0, "rows are whole 16-byte chunks");
  static constexpr int kRows = kRows_;
  static constexpr int kCols = kCols_;
  static constexpr int kChunksPerRow = kCols / 8;
  static constexpr bool kSwizzled = kChunksPerRow % 8 == 0;
  static constexpr int kRowStrideChunks = kSwizzled ? kChunksPerRow : kChunksPerRow + 1;
  static constexpr int kBytes = kRows * kRowStrideChunks * 16;
  static constexpr int kRowBytes = kRowStrideChunks * 16;  // from row r to row r+1, same chunk

  // Byte offset of 16-byte chunk `chunk` (0 .. kChunksPerRow-1) of row `row`.
  __device__ __forceinline__ static uint32_t chunk_offset(int row, int chunk) {
    const int phys = kSwizzled ? (chunk ^ (row & 7)) : chunk;
    return uint32_t((row * kRowStrideChunks + phys) * 16);
  }
  // Byte offset of element (row, col); elements of one chunk stay contiguous.
  __device__ __forceinline__ static uint32_t offset(int row, int col) {
    return chunk_offset(row, col >> 3) + uint32_t((col & 7) * 2);
  }
};

template <int kRows_, int kCols_>
struct SmemTileSw128 {
  static_assert(kCols_ % 64 == 0, "whole 64-element (128-byte) slabs");
  static_assert(kRows_ % 8 == 0, "whole 8-row swizzle atoms");
  static constexpr int kRows = kRows_;
  static constexpr int kCols = kCols_;
  static constexpr int kChunksPerRow = kCols / 8;
  static constexpr int kSlabBytes = kRows * 128;  // one 64-column slab
  static constexpr int kBytes = kSlabBytes * (kCols / 64);
  static constexpr int kRowBytes = 128;

  __device__ __forceinline__ static uint32_t chunk_offset(int row, int chunk) {
    return uint32_t((chunk >> 3) * kSlabBytes + row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
  }
  __device__ __forceinline__ static uint32_t offset(int row, int col) {
    return chunk_offset(row, col >> 3) + uint32_t((col & 7) * 2);
  }
};

}  // namespace attnforge::prim
