// The split tail of the warp-specialized forward (WsSplit, flash/ws_schedule.hpp): each piece of a
// split row block leaves one warp's normalized O and LSE in its workspace slot, and the warp that
// completes the block's tile count merges every piece, in piece order, into the block's O and LSE.
#pragma once
#include <cuda_runtime.h>

#include <cmath>

#include "flash/ws_schedule.hpp"

namespace attnforge::flash {

// One consumer warp's side of split block b. o (kNO n8-tiles × 4, rows g and g + 8 of the warp's 16),
// lse[2]: the piece's normalized O and natural-log LSE (−inf: the rows saw no key), as finalize leaves
// them; tiles: the piece's key tiles. Returns false where another piece will merge (nothing to store);
// true on the merging warp, with o and lse holding the whole block's
//   O = Σ_i e^{lse_i − L} · O_i,  L = log Σ_i e^{lse_i}   (i over the block's pieces, in CTA order).
// ws: the workspace of WsSplit::workspace_bytes, counters zeroed before the launch. cta: the schedule's
// walker (a CTA, or a CTA pair whose two row blocks form one unit: then kConsumerThreads counts both
// CTAs' consumers and ctid runs over them).
template <int kNO, int kConsumerThreads>
__device__ __forceinline__ bool split_merge(const WsSplit& sp, void* ws, int b, int cta, int ctid, int lane, int tiles,
                                            float (&o)[kNO][4], float (&lse)[2]) {
  constexpr int kSlotFloats = int(WsSplit::slot_floats(kConsumerThreads, kNO * 8));
  int* counter = static_cast<int*>(ws) + b * (kConsumerThreads / 32) + ctid / 32;  // this warp's rows of block b
  float* slots = reinterpret_cast<float*>(static_cast<char*>(ws) + sp.counters_bytes(kConsumerThreads));
  // Slot layout, fragment order: O as kNO float4 per thread (coalesced across the consumer threads),
  // then each thread's two LSE values.
  auto o_at = [&](int slot, int nt) {
    return reinterpret_cast<float4*>(slots + size_t(slot) * kSlotFloats) + nt * kConsumerThreads + ctid;
  };
  auto lse_at = [&](int slot) {
    return reinterpret_cast<float2*>(slots + size_t(slot) * kSlotFloats + 4 * kNO * kConsumerThreads) + ctid;
  };
  const int mine = WsSplit::slot(b, cta);
#pragma unroll
  for (int nt = 0; nt < kNO; ++nt) __stcg(o_at(mine, nt), make_float4(o[nt][0], o[nt][1], o[nt][2], o[nt][3]));
  __stcg(lse_at(mine), make_float2(lse[0], lse[1]));
  __threadfence();  // the partial is visible before the count says so
  __syncwarp();
  int before = 0;
  if (lane == 0) before = atomicAdd(counter, tiles);
  before = __shfl_sync(0xffffffffu, before, 0);
  if (before + tiles < sp.tiles) return false;
  __threadfence();  // every other piece's partial, counted before ours, is visible now

  // Merge with a running max m per row (every piece rescaled to it), own piece read back like the
  // others so that the sum's order does not depend on who arrives last.
  float m[2] = {-INFINITY, -INFINITY}, sum[2] = {0.f, 0.f};
#pragma unroll
  for (int nt = 0; nt < kNO; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[nt][e] = 0.f;
  for (int c = sp.first_cta(b), last = sp.last_cta(b); c <= last; ++c) {
    if (sp.begin(c) == sp.begin(c + 1)) continue;  // no tiles (fewer split tiles than CTAs): no piece
    const int slot = WsSplit::slot(b, c);
    const float2 l = __ldcg(lse_at(slot));
    float keep[2], take[2];  // old accumulators' factor, this piece's weight
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float li = h ? l.y : l.x;
      const float mn = fmaxf(m[h], li);
      keep[h] = mn == -INFINITY ? 1.f : expf(m[h] - mn);  // m = −inf (nothing yet): 0
      take[h] = li == -INFINITY ? 0.f : expf(li - mn);
      sum[h] = sum[h] * keep[h] + take[h];
      m[h] = mn;
    }
#pragma unroll
    for (int nt = 0; nt < kNO; ++nt) {
      const float4 v = __ldcg(o_at(slot, nt));
      o[nt][0] = o[nt][0] * keep[0] + v.x * take[0];
      o[nt][1] = o[nt][1] * keep[0] + v.y * take[0];
      o[nt][2] = o[nt][2] * keep[1] + v.z * take[1];
      o[nt][3] = o[nt][3] * keep[1] + v.w * take[1];
    }
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const bool any = sum[h] > 0.f;
    const float inv = any ? 1.f / sum[h] : 0.f;
    lse[h] = any ? m[h] + logf(sum[h]) : -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kNO; ++nt) o[nt][2 * h] *= inv, o[nt][2 * h + 1] *= inv;
  }
  return true;
}

}  // namespace attnforge::flash
