// Where the main kernel adds its dQ fragments and where the conversion kernel reads them: the
// fp32 dQ accumulator, tiled per (b, h, query tile) in register-fragment order (bwd_workspace.hpp).
// Fragment (i, j, r) of thread tid in the dQ phase holds rows row(i, r), columns col(j) .. +1.
#pragma once
#include "flash/bwd_traits.cuh"
#include "flash/bwd_workspace.hpp"

namespace attnforge::flash::bwd_detail {

template <class Tr>
struct DqAcc {
  static constexpr int kI = Tr::kMdq / 16, kJ = Tr::kDdq / 8;  // fragments per thread: kI × kJ × 2

  // Row (inside the query tile) and first column of fragment (i, j, r) of thread tid.
  ATTNFORGE_HD static int row(int tid, int i, int r) {
    return (tid / 32 / Tr::kWarpsDdq) * Tr::kMdq + i * 16 + (tid % 32) / 4 + r * 8;
  }
  ATTNFORGE_HD static int col(int tid, int j) {
    return (tid / 32 % Tr::kWarpsDdq) * Tr::kDdq + j * 8 + 2 * (tid % 4);
  }
  // Float offset of fragment (i, j, r) of thread tid inside its tile's block; for a
  // fixed fragment the 32 lanes of a warp cover 64 consecutive floats.
  ATTNFORGE_HD static int tiled_offset(int tid, int i, int j, int r) {
    return ((i * kJ + j) * 2 + r) * (Tr::kThreads * 2) + tid * 2;
  }
  // First float of the tile block of (b, h, query tile mb).
  __device__ static int64_t tile_base(const Params& p, int b, int h, int mb) {
    return dq_acc_tile_base(p, b, h, mb, Tr::kBlockM, Tr::kD);
  }
};

}  // namespace attnforge::flash::bwd_detail
