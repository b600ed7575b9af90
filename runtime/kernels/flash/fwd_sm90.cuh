// Flash forward, Hopper path (sm_90a): the same algorithm and data flow as flash/fwd.cuh, with both
// GEMMs on warpgroup MMA. Each warpgroup (4 warps) owns 64·kMTiles query rows; S = Q·Kᵀ reads Q and K
// straight from 128-byte-swizzled shared memory (wgmma SS), O += P·V takes P from registers and V from
// shared memory (wgmma RS, V MN-major). K/V tiles stream through the same kStages cp.async ring.
// Used by run_fwd<V> on sm_90 devices when the variant fits (head dim multiple of 64, 64 or 128 rows
// per warpgroup); the mma.sync kernel serves every other case.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/copy.cuh"
#include "common/mask_apply.cuh"
#include "common/mma.cuh"
#include "common/numeric.cuh"
#include "common/params.hpp"
#include "common/smem_layout.cuh"
#include "common/smem_tile_ops.cuh"
#include "common/softmax.cuh"
#include "common/variant.hpp"
#include "common/wgmma.cuh"

namespace attnforge::flash {

template <class V>
struct FwdSm90Config {
  static constexpr DType kDType = V::kDType;
  using Num = prim::Numeric<kDType>;
  using Element = typename Num::Element;
  using Mask = typename V::Mask;

  static constexpr int kHeadDim = V::kHeadDim;
  static constexpr int kBlockM = V::TileT::kBlockM;
  static constexpr int kBlockN = V::TileT::kBlockN;
  static constexpr int kWarps = V::TileT::kWarps;
  static constexpr int kStages = V::TileT::kStages;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kWarpgroups = kWarps / 4;
  static constexpr int kRowsPerWg = kWarpgroups > 0 ? kBlockM / kWarpgroups : 0;
  static constexpr int kMTiles = kRowsPerWg / 64;  // m64 tiles per warpgroup
  static constexpr int kNTilesS = kBlockN / 8;
  static constexpr int kNTilesO = kHeadDim / 8;

  // Whether this variant can take the Hopper path at all (else run_fwd uses the mma.sync kernel).
  static constexpr bool kSupported = kWarps % 4 == 0 && kWarpgroups > 0 && kBlockM % kWarpgroups == 0 &&
                                     (kRowsPerWg == 64 || kRowsPerWg == 128) && kHeadDim % 64 == 0 &&
                                     kHeadDim <= 256 && prim::sm90::kWgmmaHasN<kBlockN> && kStages >= 2 &&
                                     (kDType == DType::f16 || kDType == DType::bf16);

  using QLayout = prim::SmemTileSw128<kBlockM, kHeadDim>;   // (kBlockM, D), reused to stage O
  using KVLayout = prim::SmemTileSw128<kBlockN, kHeadDim>;  // (kBlockN, D) per K or V slot
  static constexpr int kSmemQ = QLayout::kBytes;
  static constexpr int kSmemKV = KVLayout::kBytes;
  static constexpr int kSmemBytes = kSmemQ + 2 * kStages * kSmemKV + 1024;  // + 1024: base alignment

  // Blocks per SM the register cap should allow: what shared memory allows, at most what an estimate
  // of the live registers (accumulators + ~72 others) allows at 64 K registers per SM.
  static constexpr int kAccRegs = kMTiles * (kNTilesS + kNTilesO) * 4;
  static constexpr int kBySmem = (227 * 1024) / kSmemBytes;
  static constexpr int kByRegs = 65536 / (kThreads * (kAccRegs + 72));
  static constexpr int kMinBlocks = kBySmem < 1 ? 1 : (kBySmem < kByRegs ? kBySmem : (kByRegs < 1 ? 1 : kByRegs));
};

template <class V>
__global__ void __launch_bounds__(FwdSm90Config<V>::kThreads, FwdSm90Config<V>::kMinBlocks)
    fwd_kernel_sm90(const __grid_constant__ Params p) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = FwdSm90Config<V>;
  using Element = typename Cfg::Element;
  using Mask = typename Cfg::Mask;
  using QL = typename Cfg::QLayout;
  using KVL = typename Cfg::KVLayout;
  using MmaS = prim::sm90::Wgmma<Cfg::kDType, Cfg::kBlockN>;   // S (64, BlockN)
  using MmaO = prim::sm90::Wgmma<Cfg::kDType, Cfg::kHeadDim>;  // O (64, D)
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kStages = Cfg::kStages;
  constexpr int kMTiles = Cfg::kMTiles, kNTilesS = Cfg::kNTilesS, kNTilesO = Cfg::kNTilesO;
  constexpr int kD = Cfg::kHeadDim;

  const int m_block = int(gridDim.x) - 1 - int(blockIdx.x);  // heavy (causal) row blocks first
  const int h = blockIdx.y;
  const int b = blockIdx.z;
  const SeqInfo seq = seq_info(p, b);
  const int m0 = m_block * kBlockM;
  if (m0 >= seq.seqlen_q) return;
  const int sq = seq.seqlen_q, sk = seq.seqlen_k;
  const int h_kv = h / p.group();

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int wg = warp >> 2;                           // warpgroup
  const int wg_row0 = wg * Cfg::kRowsPerWg;           // its first CTA-local row
  const int warp_row0 = wg_row0 + (warp & 3) * 16;    // this warp's first row of each m64 tile

  const Element* q_ptr = static_cast<const Element*>(p.q) + b * p.q_batch_stride +
                         seq.q_start * p.q_row_stride + h * p.q_head_stride;  // (Sq, D)
  const Element* k_ptr = static_cast<const Element*>(p.k) + b * p.k_batch_stride +
                         seq.k_start * p.k_row_stride + h_kv * p.k_head_stride;  // (Sk, D)
  const Element* v_ptr = static_cast<const Element*>(p.v) + b * p.v_batch_stride +
                         seq.k_start * p.v_row_stride + h_kv * p.v_head_stride;  // (Sk, D)
  Element* o_ptr = static_cast<Element*>(p.o) + b * p.o_batch_stride + seq.q_start * p.o_row_stride +
                   h * p.o_head_stride;  // (Sq, D)
  const float c = fabsf(p.scale_log2);
  prim::BiasView bias{};  // of kinds with a tensor: added to raw q·k before the ·c
  if constexpr (Mask::kHasTensor) bias = prim::bias_view_raw(p, b, h, c);

  extern __shared__ __align__(128) char smem_sm90[];
  const uint32_t smem_raw = static_cast<uint32_t>(__cvta_generic_to_shared(smem_sm90));
  const uint32_t sQ = (smem_raw + 1023u) & ~1023u;  // (kBlockM, D), 1024-aligned for the swizzle
  auto sK = [&](int slot) { return sQ + Cfg::kSmemQ + (2 * slot) * Cfg::kSmemKV; };
  auto sV = [&](int slot) { return sQ + Cfg::kSmemQ + (2 * slot + 1) * Cfg::kSmemKV; };

  const int n_tiles = (sk + kBlockN - 1) / kBlockN;
  auto tile_class = [&](int j) {
    return prim::classify_tile<Mask>(m0, kBlockM, j * kBlockN, kBlockN, sq, sk, p.mask);
  };
  auto next_tile = [&](int j) {
    while (j < n_tiles && tile_class(j) == TileClass::kEmpty) ++j;
    return j;
  };
  const int q_last = min(m0 + kBlockM, sq) - 1;
  auto load_kv = [&](int j, int slot) {  // as in fwd.cuh: K, V as two groups; dead keys zero-filled
    const int k0 = j * kBlockN;
    const bool partial = j < n_tiles && tile_class(j) != TileClass::kFull;
    auto row_ok = [&](int r) {
      return k0 + r < sk && (!partial || prim::key_seen_by_rows<Mask>(m0, q_last, k0 + r, sq, sk, p.mask));
    };
    if (j < n_tiles)
      prim::load_tile_async_if<KVL, Cfg::kThreads>(sK(slot), k_ptr + k0 * p.k_row_stride, p.k_row_stride, row_ok, tid);
    prim::cp_async_commit();
    if (j < n_tiles)
      prim::load_tile_async_if<KVL, Cfg::kThreads>(sV(slot), v_ptr + k0 * p.v_row_stride, p.v_row_stride, row_ok, tid);
    prim::cp_async_commit();
  };

  // ---- prologue ---------------------------------------------------------------------------------------
  prim::load_tile_async<QL, Cfg::kThreads>(sQ, q_ptr + m0 * p.q_row_stride, p.q_row_stride, sq - m0, tid);
  prim::cp_async_commit();
  if (p.scale_log2 < 0.f) {  // fold a negative scale into Q (exact sign flips), see fwd.cuh
    prim::cp_async_wait<0>();
    prim::for_each_own_chunk<QL, Cfg::kThreads>(
        tid, [&](int row, int chunk) { prim::negate_chunk16(sQ + QL::chunk_offset(row, chunk)); });
  }
  int load_j = next_tile(0);
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    load_kv(load_j, s);
    load_j = next_tile(load_j + 1);
  }

  float o[kMTiles][kNTilesO][4];  // O accumulators: (64, D) per m-tile per warpgroup
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int nt = 0; nt < kNTilesO; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) o[mt][nt][i] = 0.f;
  prim::OnlineSoftmax<kMTiles> softmax;
  softmax.init();

  // Descriptor pieces. Q (A, K-major): m-tile rows of this warpgroup; step ks = 16 columns: slab ks/4,
  // +32 bytes per k16 inside a 128-byte row. K (B, K-major): same stepping over its kBlockN rows.
  // V (B, MN-major): k16 step = 16 key rows = 2048 bytes; LBO = one 64-column slab of V.
  constexpr uint32_t kSbo = 1024;

  // ---- main loop ----------------------------------------------------------------------------------------
  int slot = 0;
  for (int j = next_tile(0); j < n_tiles; j = next_tile(j + 1)) {
    prim::cp_async_wait<2 * kStages - 3>();  // K_j (and Q) landed
    prim::sm90::fence_proxy_async();          // ... and are visible to wgmma
    __syncthreads();
    load_kv(load_j, (slot + kStages - 1) % kStages);
    load_j = next_tile(load_j + 1);

    // S = Q·Kᵀ: (64, kBlockN) per m-tile, fp32, on the warpgroup's tensor cores (the first k-step
    // overwrites, so S needs no zeroing).
    float s[kMTiles][kNTilesS][4];
    const uint32_t k_s = sK(slot);
    prim::sm90::fence();
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      const uint64_t dk = prim::sm90::desc_sw128_at(k_s, (ks / 4) * KVL::kSlabBytes + (ks % 4) * 32, 16, kSbo);
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        const uint64_t dq = prim::sm90::desc_sw128_at(sQ + wg_row0 * 128,
                                                      (ks / 4) * QL::kSlabBytes + mt * 64 * 128 + (ks % 4) * 32, 16, kSbo);
        if (ks == 0) MmaS::template ss<false>(s[mt], dq, dk);
        else MmaS::template ss<true>(s[mt], dq, dk);
      }
    }
    prim::sm90::commit();
    prim::sm90::wait<0>();

    if (tile_class(j) != TileClass::kFull)
      prim::apply_mask<Mask, 64>(s, m0 + warp_row0 + g, j * kBlockN + 2 * t, sq, sk, p.mask, bias);
    softmax.update(s, o, c);  // s now holds P

    prim::cp_async_wait<2 * kStages - 2>();  // V_j landed
    prim::sm90::fence_proxy_async();
    __syncthreads();

    // O += P·V: P (64, kBlockN) per m-tile from registers (k16 slices), V (kBlockN, D) MN-major.
    uint32_t pa[kMTiles][kBlockN / 16][4];  // P in 16 bits: the A fragments, packed before the fence
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) prim::c_to_a<typename Cfg::Num>(pa[mt][kk], s[mt], kk);
    const uint32_t v_s = sV(slot);
    prim::sm90::fence();
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      const uint64_t dv = prim::sm90::desc_sw128_at(v_s, kk * 2048, KVL::kSlabBytes, kSbo);
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) MmaO::rs(o[mt], pa[mt][kk], dv);
    }
    prim::sm90::commit();
    prim::sm90::wait<0>();
    slot = (slot + 1) % kStages;
  }

  // ---- epilogue (as fwd.cuh): O /= l, LSE, O staged through this warp's own Q rows -------------------
  float lse[kMTiles][2];
  softmax.finalize(o, lse);
  prim::cp_async_wait<0>();
  __syncthreads();
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = warp_row0 + mt * 64 + hh * 8 + g;
      prim::stage_fragment_row<QL, typename Cfg::Num>(sQ, r, o[mt], hh, t);
      const int q = m0 + r;
      if (t == 0 && q < sq)
        p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + seq.q_start + q] = lse[mt][hh];
    }
  __syncwarp();
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)  // a warp's 16 rows of each m-tile
    prim::store_staged_rows<QL, 16>(sQ, warp_row0 + mt * 64, o_ptr, p.o_row_stride, m0, sq, lane);
#else
  __trap();  // built without sm_90a: run_fwd never selects this kernel then (device check), so be loud
#endif  // sm_90a
}

}  // namespace attnforge::flash
