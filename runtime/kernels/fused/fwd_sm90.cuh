// Fused forward, Hopper path (sm_90a wgmma): the same algorithm as fwd.cuh — whole key row of a
// 64-row query block in fp32 registers, exact two-pass softmax, LSE, optional weights, O = P·V, one
// launch — with warpgroup MMAs, and a CTA that stays on one (batch, head) for several query blocks:
// K is loaded into shared memory ONCE per CTA (resident), V too when it fits (else it streams through
// a 2-slot ring per query block), Q of the next block is prefetched while the current one finishes.
// Warpgroup wn (warps 4·wn .. 4·wn+3) owns key tiles t ≡ wn (mod kWarpsN) of all 64 rows, each its own
// m64n64 wgmma chain (measured on the H100: 4 independent n64 chains beat one n256 chain over contiguous
// keys by 6–16 %).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/copy.cuh"
#include "common/mask_apply.cuh"
#include "common/mma.cuh"
#include "common/numeric.cuh"
#include "common/params.hpp"
#include "common/smem_layout.cuh"
#include "common/wgmma.cuh"
#include "fused/config.cuh"
#include "fused/row_softmax.cuh"

namespace attnforge::fused {

template <class V>
struct Sm90Config : Config<V> {
  using Base = Config<V>;
  static constexpr int kKeyBlock = Base::kKeyBlock;  // keys per streamed block: 64 per warpgroup
  static constexpr int kMaxBlocks = Base::kSteps;    // blocks of the longest key row
  static constexpr int kSwD = Base::kHeadDim % 64 == 0 ? Base::kHeadDim : 64;  // (unsupported D: a stand-in)
  using QL = prim::SmemTileSw128<64, kSwD>;         // (64, D)
  using BL = prim::SmemTileSw128<kKeyBlock, kSwD>;  // one K or V block (kKeyBlock, D)
  static constexpr int kReduceBytes = (Base::kWarpsN - 1) * 64 * 64 * 4;  // O partials, 64 columns a round
  static constexpr int kStatsBytes = 2 * Base::kWarpsN * 64 * 4;
  static constexpr int kFixed = 1024 + QL::kBytes + kMaxBlocks * BL::kBytes + kReduceBytes + kStatsBytes;
  static constexpr int kVSlotsFit = kFixed < kSmemLimit ? (kSmemLimit - kFixed) / BL::kBytes : 0;
  static constexpr int kVSlots = kVSlotsFit < kMaxBlocks ? kVSlotsFit : kMaxBlocks;
  static constexpr bool kSupported = (Base::kDType == DType::f16 || Base::kDType == DType::bf16) &&
                                     Base::kHeadDim % 64 == 0 && Base::kBlockM == 64 && Base::kWarpsM == 4 &&
                                     kVSlots >= (kMaxBlocks < 2 ? kMaxBlocks : 2);
  static constexpr int kSmemBytes = kFixed + kVSlots * BL::kBytes;
};

// cp.async.wait_group with a small run-time count (0..2).
__device__ __forceinline__ void cp_async_wait_dyn(int n) {
  if (n <= 0) prim::cp_async_wait<0>();
  else if (n == 1) prim::cp_async_wait<1>();
  else prim::cp_async_wait<2>();
}

template <class V>
__global__ void __launch_bounds__(Config<V>::kThreads, 1) fwd_kernel_sm90(const __grid_constant__ Params p) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = Sm90Config<V>;
  using Num = typename Cfg::Num;
  using Element = typename Cfg::Element;
  using Mask = typename Cfg::Mask;
  using QL = typename Cfg::QL;
  using BL = typename Cfg::BL;
  using MmaS = prim::sm90::Wgmma<Cfg::kDType, 64>;             // S tile (64 rows, 64 keys)
  using MmaO = prim::sm90::Wgmma<Cfg::kDType, Cfg::kHeadDim>;  // O (64 rows, D)
  constexpr int kSteps = Cfg::kSteps, kKeyBlock = Cfg::kKeyBlock, kWarpsN = Cfg::kWarpsN;
  constexpr int kThreads = Cfg::kThreads, kONTiles = Cfg::kONTiles, kD = Cfg::kHeadDim;
  constexpr int kVSlots = Cfg::kVSlots;
  constexpr uint32_t kSbo = 1024;  // 8 rows × 128 bytes between core-matrix groups

  const int h = blockIdx.y, b = blockIdx.z;
  const SeqInfo seq = seq_info(p, b);
  const int sq = seq.seqlen_q, sk = seq.seqlen_k;
  const int n_mblocks = (sq + 63) / 64;
  if (int(blockIdx.x) >= n_mblocks) return;  // varlen: shorter sequence
  const int h_kv = h / p.group();

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int wm = warp & 3, wn = warp >> 2;  // warp wm of warpgroup wn: rows 16·wm .. 16·wm + 15
  const int row0 = 16 * wm;

  const Element* q_ptr = static_cast<const Element*>(p.q) + b * p.q_batch_stride + seq.q_start * p.q_row_stride +
                         int64_t(h) * p.q_head_stride;  // (Sq, D)
  const Element* k_ptr = static_cast<const Element*>(p.k) + b * p.k_batch_stride + seq.k_start * p.k_row_stride +
                         int64_t(h_kv) * p.k_head_stride;  // (Sk, D)
  const Element* v_ptr = static_cast<const Element*>(p.v) + b * p.v_batch_stride + seq.k_start * p.v_row_stride +
                         int64_t(h_kv) * p.v_head_stride;  // (Sk, D)

  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t raw = uint32_t(__cvta_generic_to_shared(smem));
  const uint32_t s_q = (raw + 1023u) & ~1023u;  // (64, D), 1024-aligned for the 128-byte swizzle
  const uint32_t s_k0 = s_q + QL::kBytes;        // kMaxBlocks × (kKeyBlock, D): K, resident
  const uint32_t s_v0 = s_k0 + Cfg::kMaxBlocks * BL::kBytes;  // kVSlots × (kKeyBlock, D)
  unsigned char* gen = smem + (s_v0 + kVSlots * BL::kBytes - raw);
  float4* s_red = reinterpret_cast<float4*>(gen);                               // (kWarpsN−1, 4 warps, 8, 32) float4
  float* s_max = reinterpret_cast<float*>(gen + Cfg::kReduceBytes);             // (kWarpsN, 64)
  float* s_sum = s_max + kWarpsN * 64;                                          // (kWarpsN, 64)
  auto s_k = [&](int i) { return s_k0 + uint32_t(i * BL::kBytes); };
  auto s_v = [&](int slot) { return s_v0 + uint32_t(slot * BL::kBytes); };

  // Under a mask that leaves key tiles dead for a whole query block (causal, window: kSkipDead), those
  // tiles issue no wgmma: each live step is its own guarded wgmma group behind its own fence (a guard
  // around a shared fence or commit makes ptxas serialize every wgmma, C7520), the guard warp-uniform
  // by a shuffle; their P is 0 (row_softmax) and their weights are stored as zeros. H200, 2026-11-30:
  // causal S 512 +4 % (D 64) / +9 % (D 128). Without a mask every tile is issued in one group (per-step
  // groups cost D 64 S 512 ~5 %); tiles past sk are then zero-filled K/V and contribute exact zeros.
  // K/V blocks past sk are zero-filled in shared memory either way (no global reads).
  constexpr bool kSkipDead = prim::kMaskEmptiesTiles<Mask>;
  constexpr bool kResident = kVSlots >= Cfg::kMaxBlocks;  // V fits beside K: loaded once too
  // Keys no query of the sequence sees are zero-filled too (this CTA walks several query blocks
  // over resident K/V): P is 0 there, but 0·NaN (garbage in masked-out V) would poison O.
  auto load_block = [&](uint32_t dst, const Element* src, int64_t stride, int i) {
    const int k0 = i * kKeyBlock;  // ≥ sk: the whole block is zero-filled, src is not read
    prim::load_tile_async_if<BL, kThreads>(
        dst, k0 < sk ? src + int64_t(k0) * stride : src, stride,
        [&](int r) { return prim::key_live<Mask>(0, sq - 1, k0 + r, sq, sk, p.mask); }, tid);
  };
  auto load_q = [&](int m) {
    prim::load_tile_async<QL, kThreads>(s_q, q_ptr + int64_t(m) * 64 * p.q_row_stride, p.q_row_stride, sq - m * 64, tid);
  };

  // K (and V when it fits) once for this CTA; rows past sk zero-filled. Then Q of the first block.
  for (int i = 0; i < Cfg::kMaxBlocks; ++i) {
    load_block(s_k(i), k_ptr, p.k_row_stride, i);
    if (kResident) load_block(s_v(i), v_ptr, p.v_row_stride, i);
  }
  prim::cp_async_commit();
  load_q(blockIdx.x);
  prim::cp_async_commit();

  prim::BiasView bias{};  // scores are in log2 units when the bias is added: bias·log2(e)
  bias.dtype = p.bias_dtype;
  bias.stride_q = p.bias_stride_q;
  bias.stride_k = p.bias_stride_k;
  bias.to_score = 1.4426950408889634f;
  if constexpr (Mask::kHasTensor) {
    const int esz = p.bias_dtype == ATTNFORGE_F32 ? 4 : (p.bias_dtype == ATTNFORGE_BOOL ? 1 : 2);
    bias.ptr = static_cast<const char*>(p.bias) + (b * p.bias_stride_b + int64_t(h) * p.bias_stride_h) * esz;
  }

  for (int m = blockIdx.x; m < n_mblocks; m += gridDim.x) {
    const int m0 = m * 64;
    const int q_first = m0 + row0;  // this warp's first sequence row
    // V blocks 0, 1 of this query block (streaming mode): in flight during S and the softmax.
    if constexpr (!kResident) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        load_block(s_v(j), v_ptr, p.v_row_stride, j);
        prim::cp_async_commit();
      }
      prim::cp_async_wait<2>();  // Q(m) (and K) landed
    } else {
      prim::cp_async_wait<0>();
    }
    prim::sm90::fence_proxy_async();  // ... and are visible to wgmma
    __syncthreads();

    // ---- pass 1: S = Q·Kᵀ for all key tiles of this warpgroup, issued back to back ----------------------
    float s[kSteps][1][8][4];
    uint32_t live = 0, partial = 0;
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
      const int k_first = (i * kWarpsN + wn) * 64;
      const TileClass cls = (k_first < sk)
                                ? prim::classify_tile<Mask>(m0, 64, k_first, 64, sq, sk, p.mask)
                                : TileClass::kEmpty;
      if (cls != TileClass::kEmpty) live |= 1u << i;
      if (cls == TileClass::kPartial) partial |= 1u << i;
    }
    if constexpr (kSkipDead) live = __shfl_sync(0xffffffffu, live, 0);  // warp-uniform: it guards wgmmas
    else prim::sm90::fence();
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
      if constexpr (kSkipDead) {
        if (!(live & (1u << i))) continue;  // no row of the block sees this warpgroup's tile i
        prim::sm90::fence();
      }
      const uint32_t kb = s_k(i) + uint32_t(wn * 64 * 128);  // this warpgroup's 64 keys of block i
#pragma unroll
      for (int ks = 0; ks < kD / 16; ++ks) {
        const uint64_t dq = prim::sm90::desc_sw128(s_q + (ks / 4) * QL::kSlabBytes + (ks % 4) * 32, 16, kSbo);
        const uint64_t dk = prim::sm90::desc_sw128(kb + (ks / 4) * BL::kSlabBytes + (ks % 4) * 32, 16, kSbo);
        if (ks == 0) MmaS::template ss<false>(s[i][0], dq, dk);
        else MmaS::template ss<true>(s[i][0], dq, dk);
      }
      if constexpr (kSkipDead) prim::sm90::commit();
    }
    if constexpr (!kSkipDead) prim::sm90::commit();
    prim::sm90::wait<0>();
    __syncthreads();  // every warpgroup is done reading Q(m): prefetch the next block's Q
    const bool q_next = m + int(gridDim.x) < n_mblocks;
    if (q_next) {
      load_q(m + gridDim.x);
      prim::cp_async_commit();
    }

    // Scale into log2 units, mask partial tiles (per element, bias included), −inf for dead tiles.
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
      if (live & (1u << i)) {
        scale_scores(s[i], p.scale_log2);
        if (partial & (1u << i))
          prim::apply_mask<Mask>(s[i], q_first + g, (i * kWarpsN + wn) * 64 + 2 * t4, sq, sk, p.mask, bias);
      }
    }

    // ---- pass 2: exact softmax, LSE, weights ---------------------------------------------------------------
    float lse[2], inv[2];
    row_softmax<kSteps, kWarpsN, 64>(s, live, s_max, s_sum, row0 + g, wn, t4, p.weights != nullptr, lse, inv);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = q_first + g + 8 * r;
      if (wn == 0 && t4 == 0 && row < sq)
        p.lse[b * p.lse_batch_stride + int64_t(h) * p.lse_head_stride + seq.q_start + row] = lse[r];
    }
    if (p.weights != nullptr) store_weights<Num, kSteps, kWarpsN, false>(p, s, b, h, q_first, sq, sk, wn, g, t4);

    // ---- pass 3: O = P·V (P from registers, V MN-major from shared memory) -----------------------------------
    float o[kONTiles][4];
#pragma unroll
    for (int nt = 0; nt < kONTiles; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[nt][e] = 0.f;
    auto pv_step = [&](int i, uint32_t v_block) {
      uint32_t pa[4][4];  // P (16 rows × 64 keys per warp) as four k16 A fragments, packed before the fence
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) prim::c_to_a<Num>(pa[kk], s[i][0], kk);
      const uint32_t vb = v_block + uint32_t(wn * 64 * 128);
      prim::sm90::fence();  // orders the A-fragment register writes before the wgmmas that read them
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint64_t dv = prim::sm90::desc_sw128(vb + kk * 2048, BL::kSlabBytes, kSbo);
        MmaO::rs(o, pa[kk], dv);
      }
    };
    if constexpr (kResident) {
#pragma unroll
      for (int i = 0; i < kSteps; ++i)
        if (!kSkipDead || (live & (1u << i))) {  // dead tiles (P = 0) add nothing
          pv_step(i, s_v(i));
          if constexpr (kSkipDead) prim::sm90::commit();
        }
      if constexpr (!kSkipDead) prim::sm90::commit();
      prim::sm90::wait<0>();
    } else {
#pragma unroll
      for (int i = 0; i < kSteps; ++i) {
        // Groups committed after V_i: V_{i+1} (if any) and Q(next) when i < 2 (it followed V_0, V_1).
        cp_async_wait_dyn(int(i + 1 < kSteps) + int(q_next && i < 2));
        prim::sm90::fence_proxy_async();
        __syncthreads();
        if (!kSkipDead || (live & (1u << i))) {  // dead tiles (P = 0) add nothing
          pv_step(i, s_v(i & 1));
          prim::sm90::commit();
          prim::sm90::wait<0>();
        }
        __syncthreads();  // slot i % 2 is free
        if (i + 2 < kSteps) {
          load_block(s_v(i & 1), v_ptr, p.v_row_stride, i + 2);
          prim::cp_async_commit();
        }
      }
    }

    scale_rows(o, inv);  // O = (Σ exp2(s − max)·V) / Σ unless P was normalised already (weights)

    // ---- O partials of the key columns summed through shared memory, 64 columns a round -----------------------
    Element* o_ptr = static_cast<Element*>(p.o) + b * p.o_batch_stride + (seq.q_start + q_first) * p.o_row_stride +
                     int64_t(h) * p.o_head_stride;
    if constexpr (kWarpsN > 1) {
#pragma unroll
      for (int c = 0; c < kD / 64; ++c) {
        if (wn > 0) {
#pragma unroll
          for (int j = 0; j < 8; ++j)
            s_red[(((wn - 1) * 4 + wm) * 8 + j) * 32 + lane] =
                make_float4(o[8 * c + j][0], o[8 * c + j][1], o[8 * c + j][2], o[8 * c + j][3]);
        }
        __syncthreads();
        if (wn == 0) {
#pragma unroll
          for (int w = 1; w < kWarpsN; ++w)
#pragma unroll
            for (int j = 0; j < 8; ++j) {
              const float4 x = s_red[(((w - 1) * 4 + wm) * 8 + j) * 32 + lane];
              o[8 * c + j][0] += x.x, o[8 * c + j][1] += x.y, o[8 * c + j][2] += x.z, o[8 * c + j][3] += x.w;
            }
        }
        __syncthreads();
      }
    }
    if (wn == 0) store_o<Num, kONTiles>(o_ptr, p.o_row_stride, o, sq - q_first, g, t4);
  }
  prim::cp_async_wait<0>();
#else
  __trap();  // built without sm_90a: run_fwd never picks this kernel then
#endif
}

}  // namespace attnforge::fused
