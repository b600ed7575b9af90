// Flash forward (FlashAttention-2 class): one CTA per (kBlockM query rows, head, batch); the Q tile stays
// in shared memory, K/V tiles stream through a kStages-deep cp.async ring, S = Q·Kᵀ and O += P·V run on
// tensor cores with fp32 accumulators, and an online softmax (fp32, exp2) keeps O exact. Writes O and LSE
// once; no O(N²) buffer. This file holds the mma.sync (sm_80+) kernel and the entry point
// run_fwd<V>(params, stream), which runs the Hopper wgmma kernel of flash/fwd_sm90.cuh instead on
// sm_90 devices when the variant fits it, and the warp-specialized one of flash/fwd_sm90_ws.cuh for
// sm_90a variants (see FwdPath).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/copy.cuh"
#include "common/launch_checks.hpp"
#include "common/mask_apply.cuh"
#include "common/mma.cuh"
#include "common/numeric.cuh"
#include "common/params.hpp"
#include "common/smem_layout.cuh"
#include "common/smem_tile_ops.cuh"
#include "common/softmax.cuh"
#include "common/variant.hpp"
#include "flash/fwd_sm90.cuh"
#include "flash/fwd_sm90_ws.cuh"

namespace attnforge::flash {

// Everything the kernel derives from its Variant at compile time.
template <class V>
struct FwdConfig {
  static constexpr DType kDType = V::kDType;
  using Num = prim::Numeric<kDType>;
  using Element = typename Num::Element;
  using Mask = typename V::Mask;

  static constexpr int kHeadDim = V::kHeadDim;
  static constexpr int kBlockM = V::TileT::kBlockM;  // query rows per CTA
  static constexpr int kBlockN = V::TileT::kBlockN;  // key rows per streamed K/V tile
  static constexpr int kWarps = V::TileT::kWarps;
  static constexpr int kStages = V::TileT::kStages;  // K/V tiles resident at once (ring slots)
  static constexpr int kThreads = kWarps * 32;

  static constexpr int kRowsPerWarp = kBlockM / kWarps;  // each warp owns a contiguous row band
  static constexpr int kMTiles = kRowsPerWarp / 16;      // m16 tiles per warp
  static constexpr int kNTilesS = kBlockN / 8;           // n8 tiles of S per warp
  static constexpr int kNTilesO = kHeadDim / 8;          // n8 tiles of O per warp
  static constexpr int kKStepsQK = kHeadDim / 16;        // k16 steps of S = Q·Kᵀ
  static constexpr int kKStepsPV = kBlockN / 16;         // k16 steps of O += P·V

  static_assert(kHeadDim % 16 == 0 && kHeadDim >= 16 && kHeadDim <= 256, "head dim 16..256, ×16");
  static_assert(kBlockM % (16 * kWarps) == 0, "every warp owns whole m16 tiles");
  static_assert(kBlockN % 16 == 0, "BlockN is a multiple of 16");
  static_assert(kStages >= 2, "the K/V ring needs at least two slots");

  using QLayout = prim::SmemTile<kBlockM, kHeadDim>;   // (kBlockM, kHeadDim), reused for O
  using KVLayout = prim::SmemTile<kBlockN, kHeadDim>;  // (kBlockN, kHeadDim) per K or V slot
  static constexpr int kSmemQ = QLayout::kBytes;
  static constexpr int kSmemKV = KVLayout::kBytes;
  // [Q][K slot 0][V slot 0][K slot 1][V slot 1]...
  static constexpr int kSmemBytes = kSmemQ + 2 * kStages * kSmemKV;
};

template <class V>
__global__ void __launch_bounds__(FwdConfig<V>::kThreads, 1) fwd_kernel(const __grid_constant__ Params p) {
  using Cfg = FwdConfig<V>;
  using Element = typename Cfg::Element;
  using Mask = typename Cfg::Mask;
  using QL = typename Cfg::QLayout;
  using KVL = typename Cfg::KVLayout;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kStages = Cfg::kStages;
  constexpr int kMTiles = Cfg::kMTiles, kNTilesS = Cfg::kNTilesS, kNTilesO = Cfg::kNTilesO;

  // Heavy (late, for causal) row blocks first: they then overlap the light tail.
  const int m_block = int(gridDim.x) - 1 - int(blockIdx.x);
  const int h = blockIdx.y;
  const int b = blockIdx.z;
  const SeqInfo seq = seq_info(p, b);
  const int m0 = m_block * kBlockM;
  if (m0 >= seq.seqlen_q) return;  // varlen: this sequence is shorter than the longest
  const int sq = seq.seqlen_q, sk = seq.seqlen_k;
  const int h_kv = h / p.group();

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int warp_row0 = warp * Cfg::kRowsPerWarp;  // first CTA-local row of this warp

  // Row 0 of this (batch, head) in each tensor; all offsets 64-bit.
  const Element* q_ptr = static_cast<const Element*>(p.q) + b * p.q_batch_stride +
                         seq.q_start * p.q_row_stride + h * p.q_head_stride;  // (Sq, D)
  const Element* k_ptr = static_cast<const Element*>(p.k) + b * p.k_batch_stride +
                         seq.k_start * p.k_row_stride + h_kv * p.k_head_stride;  // (Sk, D)
  const Element* v_ptr = static_cast<const Element*>(p.v) + b * p.v_batch_stride +
                         seq.k_start * p.v_row_stride + h_kv * p.v_head_stride;  // (Sk, D)
  Element* o_ptr = static_cast<Element*>(p.o) + b * p.o_batch_stride + seq.q_start * p.o_row_stride +
                   h * p.o_head_stride;  // (Sq, D)
  // c = scale·log2(e) > 0 drives the softmax; a negative scale is folded into Q below.
  const float c = fabsf(p.scale_log2);
  prim::BiasView bias{};  // of kinds with a tensor: added to raw q·k before the ·c
  if constexpr (Mask::kHasTensor) bias = prim::bias_view_raw(p, b, h, c);

  extern __shared__ __align__(128) char smem[];
  const uint32_t sQ = static_cast<uint32_t>(__cvta_generic_to_shared(smem));  // (kBlockM, D)
  auto sK = [&](int slot) { return sQ + Cfg::kSmemQ + (2 * slot) * Cfg::kSmemKV; };      // (kBlockN, D)
  auto sV = [&](int slot) { return sQ + Cfg::kSmemQ + (2 * slot + 1) * Cfg::kSmemKV; };  // (kBlockN, D)

  // Tiles the mask leaves empty are never loaded nor computed (causal: about half of them).
  const int n_tiles = (sk + kBlockN - 1) / kBlockN;
  auto tile_class = [&](int j) {
    return prim::classify_tile<Mask>(m0, kBlockM, j * kBlockN, kBlockN, sq, sk, p.mask);
  };
  auto next_tile = [&](int j) {  // first non-empty tile ≥ j, or n_tiles
    while (j < n_tiles && tile_class(j) == TileClass::kEmpty) ++j;
    return j;
  };
  // K and V of tile j into ring slot `slot`, as two commit groups (K first, so S = Q·Kᵀ can start
  // while V is still in flight). Out-of-range tiles commit empty groups: the group count stays uniform.
  // Rows past seqlen_k, and on partial tiles the keys no query of this CTA sees, are zero-filled
  // instead of read: P is 0 there, but 0·NaN (garbage in masked-out V) would still poison O.
  const int q_last = min(m0 + kBlockM, sq) - 1;
  auto load_kv = [&](int j, int slot) {
    const int k0 = j * kBlockN;
    const bool partial = j < n_tiles && tile_class(j) != TileClass::kFull;
    auto row_ok = [&](int r) { return partial ? prim::key_live<Mask>(m0, q_last, k0 + r, sq, sk, p.mask) : k0 + r < sk; };
    if (j < n_tiles)
      prim::load_tile_async_if<KVL, Cfg::kThreads>(sK(slot), k_ptr + k0 * p.k_row_stride, p.k_row_stride, row_ok, tid);
    prim::cp_async_commit();
    if (j < n_tiles)
      prim::load_tile_async_if<KVL, Cfg::kThreads>(sV(slot), v_ptr + k0 * p.v_row_stride, p.v_row_stride, row_ok, tid);
    prim::cp_async_commit();
  };

  // ---- prologue: Q, then the first kStages-1 K/V tiles ------------------------------------------
  prim::load_tile_async<QL, Cfg::kThreads>(sQ, q_ptr + m0 * p.q_row_stride, p.q_row_stride, sq - m0, tid);
  prim::cp_async_commit();
  if (p.scale_log2 < 0.f) {
    // S·scale = (−Q)·Kᵀ·|scale|: flip the sign bits of the chunks this thread copied (exact), so the
    // softmax always sees c > 0. The first barrier of the main loop publishes them.
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

  float o[kMTiles][kNTilesO][4];  // O accumulator, (kRowsPerWarp, D) per warp in C fragments
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int nt = 0; nt < kNTilesO; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) o[mt][nt][i] = 0.f;
  prim::OnlineSoftmax<kMTiles> softmax;
  softmax.init();

  // ---- main loop over the non-empty K/V tiles -------------------------------------------------------
  int slot = 0;
  for (int j = next_tile(0); j < n_tiles; j = next_tile(j + 1)) {
    // K_j (and Q) landed: in flight may remain V_j and the 2·(kStages−2) groups of later tiles.
    prim::cp_async_wait<2 * kStages - 3>();
    __syncthreads();
    // Every thread is past the previous iteration, so the slot it read can be refilled now.
    load_kv(load_j, (slot + kStages - 1) % kStages);
    load_j = next_tile(load_j + 1);

    // S = Q·Kᵀ: (kRowsPerWarp, kBlockN) per warp, fp32.
    float s[kMTiles][kNTilesS][4];
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNTilesS; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) s[mt][nt][i] = 0.f;
    const uint32_t k_s = sK(slot);
#pragma unroll
    for (int ks = 0; ks < Cfg::kKStepsQK; ++ks) {
      uint32_t a[kMTiles][4];  // Q (16, 16) fragments of this k-step
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt)
        prim::ldmatrix_x4(a[mt], sQ + QL::offset(warp_row0 + mt * 16 + (lane & 15), ks * 16 + (lane >> 4) * 8));
#pragma unroll
      for (int np = 0; np < kNTilesS / 2; ++np) {
        uint32_t bk[4];  // Kᵀ (16, 16): b0,b1 of n-tile 2np, then of 2np+1
        prim::ldmatrix_x4(bk, k_s + KVL::offset(np * 16 + (lane & 7) + ((lane >> 4) << 3),
                                                ks * 16 + ((lane >> 3) & 1) * 8));
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          prim::mma_m16n8k16<Cfg::kDType>(s[mt][2 * np], a[mt], bk[0], bk[1]);
          prim::mma_m16n8k16<Cfg::kDType>(s[mt][2 * np + 1], a[mt], bk[2], bk[3]);
        }
      }
    }

    // Per-element masking only where the tile is not entirely visible.
    if (tile_class(j) != TileClass::kFull)
      prim::apply_mask<Mask>(s, m0 + warp_row0 + g, j * kBlockN + 2 * t, sq, sk, p.mask, bias);
    softmax.update(s, o, c);  // s now holds P = exp2(s·c − m)

    // V_j landed.
    prim::cp_async_wait<2 * kStages - 2>();  // in flight: the 2·(kStages−1) later groups
    __syncthreads();
    const uint32_t v_s = sV(slot);
    // O += P·V: P (kRowsPerWarp, kBlockN) from registers as A fragments, V (kBlockN, D) via ldmatrix.trans.
#pragma unroll
    for (int kk = 0; kk < Cfg::kKStepsPV; ++kk) {
      uint32_t pa[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) prim::c_to_a<typename Cfg::Num>(pa[mt], s[mt], kk);
#pragma unroll
      for (int dp = 0; dp < kNTilesO / 2; ++dp) {
        uint32_t bv[4];  // V (16, 16): b0,b1 of d-tile 2dp, then of 2dp+1
        prim::ldmatrix_x4_trans(bv, v_s + KVL::offset(kk * 16 + (lane & 15), dp * 16 + (lane >> 4) * 8));
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          prim::mma_m16n8k16<Cfg::kDType>(o[mt][2 * dp], pa[mt], bv[0], bv[1]);
          prim::mma_m16n8k16<Cfg::kDType>(o[mt][2 * dp + 1], pa[mt], bv[2], bv[3]);
        }
      }
    }
    slot = (slot + 1) % kStages;
  }

  // ---- epilogue: O /= l, LSE; O staged through this warp's own Q rows for 16-byte stores ----------
  float lse[kMTiles][2];
  softmax.finalize(o, lse);
  prim::cp_async_wait<0>();
  __syncthreads();  // no copy into sQ in flight (e.g. Q itself when no tile was visible)
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = warp_row0 + mt * 16 + hh * 8 + g;  // CTA-local row
      prim::stage_fragment_row<QL, typename Cfg::Num>(sQ, r, o[mt], hh, t);
      const int q = m0 + r;
      if (t == 0 && q < sq)
        p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + seq.q_start + q] = lse[mt][hh];
    }
  __syncwarp();
  prim::store_staged_rows<QL, Cfg::kRowsPerWarp>(sQ, warp_row0, o_ptr, p.o_row_stride, m0, sq, lane);
}

// Which kernel runs a forward: kAuto = the Hopper (wgmma) kernel on sm_90 devices when the variant
// fits it, else the mma.sync kernel. ATTNFORGE_FLASH_FWD_PATH=mma|wgmma overrides kAuto (tests run
// both paths on one GPU; wgmma is honoured only where it can run). sm_90a variants (tile arch) have
// one kernel, the warp-specialized one of flash/fwd_sm90_ws.cuh, and ignore the path.
enum class FwdPath { kAuto, kMma, kWgmma };

template <class V>
attnforge_status launch_fwd_wgmma(const Params& p, cudaStream_t stream, int dev) {
  using Cfg90 = FwdSm90Config<V>;
  static int raised90[64] = {};
  const dim3 grid((p.seqlen_q + Cfg90::kBlockM - 1) / Cfg90::kBlockM, p.heads_q, p.batch);
  if (!allow_smem(fwd_kernel_sm90<V>, Cfg90::kSmemBytes, dev, raised90)) return ATTNFORGE_CUDA_ERROR;
  fwd_kernel_sm90<V><<<grid, Cfg90::kThreads, Cfg90::kSmemBytes, stream>>>(p);
  return cudaGetLastError() == cudaSuccess ? ATTNFORGE_OK : ATTNFORGE_CUDA_ERROR;
}

// The wgmma kernel, or the mma.sync one where the variant, the device or the path does not fit it.
template <class V>
attnforge_status launch_fwd_mma_or_wgmma(const Params& p, cudaStream_t stream, FwdPath path, int dev) {
  if (path == FwdPath::kAuto) path = hopper_path("ATTNFORGE_FLASH_FWD_PATH") ? FwdPath::kWgmma : FwdPath::kMma;
  if constexpr (FwdSm90Config<V>::kSupported)
    if (path == FwdPath::kWgmma && device_cc_major(dev) == 9) return launch_fwd_wgmma<V>(p, stream, dev);
  using Cfg = FwdConfig<V>;
  static int raised80[64] = {};
  const dim3 grid((p.seqlen_q + Cfg::kBlockM - 1) / Cfg::kBlockM, p.heads_q, p.batch);
  if (!allow_smem(fwd_kernel<V>, Cfg::kSmemBytes, dev, raised80)) return ATTNFORGE_CUDA_ERROR;
  fwd_kernel<V><<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p);
  return cudaGetLastError() == cudaSuccess ? ATTNFORGE_OK : ATTNFORGE_CUDA_ERROR;
}

// Host side: checks what the kernels assume beyond validation (16-byte aligned rows for cp.async, TMA
// and vector stores; grid limits), picks the kernel, sizes the grid, launches.
template <class V>
attnforge_status run_fwd_path(const Params& p, cudaStream_t stream, FwdPath path) {
  if (p.head_dim != V::kHeadDim) return ATTNFORGE_INVALID_ARGUMENT;
  if (p.batch == 0 || p.seqlen_q == 0 || p.heads_q == 0) return ATTNFORGE_OK;  // nothing to write
  if (!rows_aligned16(p, /*backward=*/false)) return launch_fail(ATTNFORGE_UNSUPPORTED, "flash", kNeedsAlignedRows);
  if (exceeds_grid_yz(p.heads_q, p.batch)) return launch_fail(ATTNFORGE_UNSUPPORTED, "flash", kGridLimits);

  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return ATTNFORGE_CUDA_ERROR;
  if constexpr (V::TileT::kArch == 90) {
    if (device_cc_major(dev) != 9)
      return launch_fail(ATTNFORGE_UNSUPPORTED, "flash", "an sm_90a variant needs a compute capability 9.x device");
    const attnforge_status st = launch_fwd_sm90_ws<V>(p, stream, dev);
    if (st != ATTNFORGE_UNSUPPORTED) return st;
    // No TMA descriptor for this layout: the wgmma kernel of the same block shape, one warpgroup per
    // 64 query rows (no producer).
    using T = typename V::TileT;
    using Fallback = Variant<Backend::flash, Direction::fwd, V::kDType, V::kHeadDim, typename V::Mask,
                             Tile<T::kBlockM, T::kBlockN, T::kBlockM / 16, T::kStages>>;
    static_assert(FwdSm90Config<Fallback>::kSupported);
    return launch_fwd_wgmma<Fallback>(p, stream, dev);
  } else {
    return launch_fwd_mma_or_wgmma<V>(p, stream, path, dev);
  }
}

template <class V>
attnforge_status run_fwd(const Params& p, cudaStream_t stream) {
  return run_fwd_path<V>(p, stream, FwdPath::kAuto);
}

}  // namespace attnforge::flash
