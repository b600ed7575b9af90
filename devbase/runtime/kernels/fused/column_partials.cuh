// Sums a warp band's key-column partials: when kWarpsN warps split a band's keys, each holds a
// partial (16 rows × D) fp32 fragment of O (forward) or dQ (backward); warps wn > 0 hand theirs to
// warp (wm, 0) through shared memory, which adds them in a fixed order (w = 1, 2, …: deterministic).
#pragma once
#include <cuda_runtime.h>

namespace attnforge::fused {

// acc: this warp's (kONTiles, 4) fragment. red: (kWarpsN − 1, kWarpsM, kONTiles, 32) float4 of shared
// memory that no thread reads any more (the caller puts a barrier before this where it was in use).
// Returns true in the warps that now hold the sum (wn == 0); the other warps are done.
template <int kWarpsM, int kWarpsN, int kONTiles>
__device__ __forceinline__ bool sum_column_partials(float (&acc)[kONTiles][4], float4* red, int wm, int wn,
                                                    int lane) {
  static_assert(kWarpsN > 1, "one warp per band: nothing to sum");
  if (wn > 0) {
#pragma unroll
    for (int nt = 0; nt < kONTiles; ++nt)
      red[(((wn - 1) * kWarpsM + wm) * kONTiles + nt) * 32 + lane] =
          make_float4(acc[nt][0], acc[nt][1], acc[nt][2], acc[nt][3]);
  }
  __syncthreads();
  if (wn > 0) return false;
#pragma unroll
  for (int w = 1; w < kWarpsN; ++w)
#pragma unroll
    for (int nt = 0; nt < kONTiles; ++nt) {
      const float4 x = red[(((w - 1) * kWarpsM + wm) * kONTiles + nt) * 32 + lane];
      acc[nt][0] += x.x, acc[nt][1] += x.y, acc[nt][2] += x.z, acc[nt][3] += x.w;
    }
  return true;
}

}  // namespace attnforge::fused
