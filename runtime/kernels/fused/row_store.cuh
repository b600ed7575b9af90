// Coalesced stores of C-fragment rows: a quad (4 lanes) holds one row's 4 consecutive n8 tiles as
// packed pairs (cols 2t, 2t+1 of each); a 4×4 transpose inside the quad gives lane t the whole
// 16-byte chunk of tile t, so a warp writes 8 rows × 64 contiguous bytes per instruction.
#pragma once
#include <cstdint>

namespace attnforge::fused {

// x[j]: this lane's pair of n8 tile j (j = 0..3); returns the 8 elements of tile t (= lane % 4).
// All 32 lanes must call it (shuffles).
__device__ __forceinline__ uint4 quad_transpose(const uint32_t (&x)[4], int t) {
  uint32_t y[4] = {0u, 0u, 0u, 0u};
  const int quad = (threadIdx.x & 31) & ~3;
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    // Round r: lane t sends its pair of tile (t + r) % 4 to lane (t + r) % 4, and receives from
    // lane (t − r) % 4 that lane's pair of tile t, which is element (t − r) % 4 of chunk t.
    const int out = (t + r) & 3;
    const uint32_t send = out == 0 ? x[0] : out == 1 ? x[1] : out == 2 ? x[2] : x[3];
    const int from = (t - r) & 3;
    const uint32_t got = __shfl_sync(0xffffffffu, send, quad | from);
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (k == from) y[k] = got;
  }
  return make_uint4(y[0], y[1], y[2], y[3]);
}

// Stores chunk (8 elements of 16 bits, columns col0 .. col0+7 of a row starting at `row`): one 16-byte
// store when `vec` (16-byte aligned rows) and the chunk lies inside [0, n_cols); else element-wise.
template <class Element>
__device__ __forceinline__ void store_chunk(Element* row, int col0, int n_cols, uint4 chunk, bool vec) {
  if (vec && col0 + 8 <= n_cols) {
    *reinterpret_cast<uint4*>(row + col0) = chunk;
  } else {
    const uint32_t w[4] = {chunk.x, chunk.y, chunk.z, chunk.w};
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (col0 + e < n_cols) {
        const uint16_t bits = uint16_t(e & 1 ? w[e >> 1] >> 16 : w[e >> 1] & 0xFFFFu);
        *reinterpret_cast<uint16_t*>(row + col0 + e) = bits;
      }
  }
}

// A warp's 16-row band of C fragments f (rows g and g + 8, cols 2t, 2t + 1 of n8 tile nt) as 16-bit rows:
// columns col0 + [0, 8·kNT) of rows [0, rows_valid), columns ≥ n_cols not written. All lanes must call it.
template <class Num, int kNT>
__device__ __forceinline__ void store_band(typename Num::Element* band, int64_t row_stride, const float (&f)[kNT][4],
                                           int rows_valid, int col0, int n_cols, bool vec, int g, int t4) {
  static_assert(kNT % 4 == 0, "rows are stored in groups of 4 n8 tiles (16-byte chunks)");
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = g + 8 * r;
#pragma unroll
    for (int q4 = 0; q4 < kNT / 4; ++q4) {
      uint32_t x[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) x[j] = Num::pack2(f[4 * q4 + j][2 * r], f[4 * q4 + j][2 * r + 1]);
      const uint4 chunk = quad_transpose(x, t4);
      if (row < rows_valid) store_chunk(band + int64_t(row) * row_stride, col0 + (4 * q4 + t4) * 8, n_cols, chunk, vec);
    }
  }
}

}  // namespace attnforge::fused
