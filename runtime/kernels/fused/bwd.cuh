// Fused backward: TWO launches. (1) One CTA per (kBlockM query rows, head, batch) walks the whole key
// row of its block: recomputes S, P = exp2(S·scale_log2 − LSE·log2e) exactly from the forward's LSE,
// dP = dO·Vᵀ, dS = P∘(dP − Di) with Di = rowsum(dO∘O) — or, when the key row fits one block, P
// renormalised by its row sum over the tile and Di = Σ_j P·dP;
// dQ = scale·dS·K stays in registers and is written once;
// dV += Pᵀ·dO and dK += scale·dSᵀ·Q go into fp32 accumulators (workspace) by atomics, shared by all
// query blocks and the heads of a KV group. (2) A conversion kernel rounds the accumulators into dk, dv.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "common/copy.cuh"
#include "common/mask_apply.cuh"
#include "common/mma.cuh"
#include "common/numeric.cuh"
#include "common/params.hpp"
#include "common/softmax.cuh"
#include "common/variant.hpp"
#include "fused/column_partials.cuh"
#include "fused/config.cuh"
#include "fused/f32.cuh"
#include "fused/host_util.hpp"

namespace attnforge::fused {

// Shared-memory plan of the backward (codegen/limits.py, direction "bwd", computes the same sum).
template <class V>
struct BwdConfig : Config<V> {
  using Base = Config<V>;
  using PLayout = prim::SmemTile<Base::kBlockM, Base::kKeyBlock>;  // P and dS staging, 16-bit
  static constexpr int kSmemQ = Base::QLayout::kBytes;             // Q, and dO beside it
  static constexpr int kSmemKV = Base::KVLayout::kBytes;           // one K block, one V block
  static constexpr int kSmemP = PLayout::kBytes;
  static constexpr int kSmemDQReduce = (Base::kWarpsN - 1) * Base::kBlockM * Base::kHeadDim * 4;
  static constexpr int kSmemKVOrReduce = 2 * kSmemKV > kSmemDQReduce ? 2 * kSmemKV : kSmemDQReduce;
  // [Q][dO][K | V (reused for the dQ reduction)][P][dS][lse2 (kBlockM)][Di (kBlockM)]
  static constexpr int kOffDO = kSmemQ;
  static constexpr int kOffK = 2 * kSmemQ;
  static constexpr int kOffV = kOffK + kSmemKV;
  static constexpr int kOffP = kOffK + kSmemKVOrReduce;
  static constexpr int kOffDS = kOffP + kSmemP;
  static constexpr int kOffStats = kOffDS + kSmemP;
  static constexpr int kSmemBytes = kOffStats + 2 * Base::kBlockM * 4;
  static_assert(kSmemBytes <= kSmemLimit, "fused backward shared memory over the per-block limit");
  static_assert(Base::kHeadDim % 32 == 0, "dK/dV units are 16 keys × 32 dims");
};

template <class V>
__global__ void __launch_bounds__(Config<V>::kThreads, 1) bwd_kernel(const __grid_constant__ Params p) {
  using Cfg = BwdConfig<V>;
  using Num = typename Cfg::Num;
  using Element = typename Cfg::Element;
  using Mask = typename Cfg::Mask;
  using QL = typename Cfg::QLayout;
  using KVL = typename Cfg::KVLayout;
  using PL = typename Cfg::PLayout;
  constexpr int kBlockM = Cfg::kBlockM, kSteps = Cfg::kSteps, kKeyBlock = Cfg::kKeyBlock;
  constexpr int kWarpsM = Cfg::kWarpsM, kWarpsN = Cfg::kWarpsN, kThreads = Cfg::kThreads;
  constexpr int kWarps = Cfg::kWarps, kKSteps = Cfg::kKSteps, kONTiles = Cfg::kONTiles;
  constexpr int kHeadDim = Cfg::kHeadDim;
  constexpr float kLog2e = 1.4426950408889634f;

  const int m_block = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const SeqInfo seq = seq_info(p, b);
  const int sq = seq.seqlen_q, sk = seq.seqlen_k;
  const int m0 = m_block * kBlockM;
  if (m0 >= sq) return;  // varlen: shorter sequence
  const int h_kv = h / p.group();

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int wm = warp % kWarpsM, wn = warp / kWarpsM;
  const int row0 = 16 * wm;

  const Element* q_ptr = static_cast<const Element*>(p.q) + b * p.q_batch_stride +
                         (seq.q_start + m0) * p.q_row_stride + int64_t(h) * p.q_head_stride;  // (kBlockM, D)
  const Element* do_ptr = static_cast<const Element*>(p.d_o) + b * p.do_batch_stride +
                          (seq.q_start + m0) * p.do_row_stride + int64_t(h) * p.do_head_stride;  // (kBlockM, D)
  const Element* o_ptr = static_cast<const Element*>(p.o) + b * p.o_batch_stride +
                         (seq.q_start + m0) * p.o_row_stride + int64_t(h) * p.o_head_stride;  // (kBlockM, D)
  const Element* k_ptr = static_cast<const Element*>(p.k) + b * p.k_batch_stride +
                         seq.k_start * p.k_row_stride + int64_t(h_kv) * p.k_head_stride;  // (Sk, D)
  const Element* v_ptr = static_cast<const Element*>(p.v) + b * p.v_batch_stride +
                         seq.k_start * p.v_row_stride + int64_t(h_kv) * p.v_head_stride;  // (Sk, D)
  // fp32 accumulators (total_k, Hkv, D): row of key j of this sequence.
  const int64_t acc_row0 = (p.is_varlen() ? 0 : int64_t(b) * p.seqlen_k) + seq.k_start;
  const int64_t acc_elems = p.total_k * p.heads_kv * kHeadDim;
  float* dk_acc = static_cast<float*>(p.workspace);
  float* dv_acc = dk_acc + (acc_elems + 63) / 64 * 64;

  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t s_base = uint32_t(__cvta_generic_to_shared(smem));
  const uint32_t s_q = s_base, s_do = s_base + Cfg::kOffDO;
  const uint32_t s_k = s_base + Cfg::kOffK, s_v = s_base + Cfg::kOffV;
  const uint32_t s_p = s_base + Cfg::kOffP, s_ds = s_base + Cfg::kOffDS;
  float* s_lse2 = reinterpret_cast<float*>(smem + Cfg::kOffStats);  // (kBlockM) LSE·log2e
  float* s_di = s_lse2 + kBlockM;                                    // (kBlockM) rowsum(dO∘O)

  prim::load_tile_async<QL, kThreads>(s_q, q_ptr, p.q_row_stride, sq - m0, tid);
  prim::load_tile_async<QL, kThreads>(s_do, do_ptr, p.do_row_stride, sq - m0, tid);
  prim::cp_async_commit();

  // Di = Σ_d dO∘O per row (fp32) and the row's LSE in log2 units; rows past sq: Di 0, LSE −inf (P = 0).
  {
    constexpr int kTPR = kThreads / kBlockM;  // threads per row (power of two)
    static_assert(kThreads % kBlockM == 0 && (kTPR & (kTPR - 1)) == 0, "threads split rows evenly");
    const int r = tid / kTPR, part = tid % kTPR;
    float acc = 0.f;
    if (m0 + r < sq) {
      for (int c = part; c < kHeadDim / 8; c += kTPR) {
        const uint4 ov = *reinterpret_cast<const uint4*>(o_ptr + r * p.o_row_stride + c * 8);
        const uint4 dv = *reinterpret_cast<const uint4*>(do_ptr + r * p.do_row_stride + c * 8);
        const Element* oe = reinterpret_cast<const Element*>(&ov);
        const Element* de = reinterpret_cast<const Element*>(&dv);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc += Num::to_float(oe[e]) * Num::to_float(de[e]);
      }
    }
#pragma unroll
    for (int off = kTPR / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (part == 0) {
      s_di[r] = acc;
      s_lse2[r] = m0 + r < sq
                      ? p.lse[b * p.lse_batch_stride + int64_t(h) * p.lse_head_stride + seq.q_start + m0 + r] * kLog2e
                      : -INFINITY;
    }
  }

  prim::BiasView bias_here{};  // scores are in log2 units when the bias is added: bias·log2(e)
  bias_here.dtype = p.bias_dtype;
  bias_here.stride_q = p.bias_stride_q;
  bias_here.stride_k = p.bias_stride_k;
  bias_here.to_score = 1.4426950408889634f;
  if constexpr (Mask::kHasTensor) {
    const int esz = p.bias_dtype == ATTNFORGE_F32 ? 4 : (p.bias_dtype == ATTNFORGE_BOOL ? 1 : 2);
    bias_here.ptr = static_cast<const char*>(p.bias) + (b * p.bias_stride_b + int64_t(h) * p.bias_stride_h) * esz;
  }
  const int q_first = m0 + row0;
  const bool band_live = q_first < sq;

  float dq[kONTiles][4];  // (16 rows × D) partial over this warp's key tiles
#pragma unroll
  for (int nt = 0; nt < kONTiles; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dq[nt][e] = 0.f;

  const int n_steps = (sk + kKeyBlock - 1) / kKeyBlock;
  const int q_last = min(m0 + kBlockM, sq) - 1;
  for (int i = 0; i < n_steps; ++i) {
    // K and V blocks i: (kKeyBlock, D) each; rows past sk, and keys no query of this CTA sees, are
    // zero-filled: dS and P are 0 there, but 0·NaN would carry garbage into dQ and dP.
    const int k0 = i * kKeyBlock;
    auto key_ok = [&](int r) { return prim::key_live<Mask>(m0, q_last, k0 + r, sq, sk, p.mask); };
    prim::load_tile_async_if<KVL, kThreads>(s_k, k_ptr + int64_t(k0) * p.k_row_stride, p.k_row_stride, key_ok, tid);
    prim::load_tile_async_if<KVL, kThreads>(s_v, v_ptr + int64_t(k0) * p.v_row_stride, p.v_row_stride, key_ok, tid);
    prim::cp_async_commit();
    prim::cp_async_wait<0>();
    __syncthreads();

    const int k_first = (i * kWarpsN + wn) * Cfg::kKeyTile;
    const TileClass cls = (band_live && k_first < sk)
                              ? prim::classify_tile<Mask>(q_first, 16, k_first, Cfg::kKeyTile, sq, sk, p.mask)
                              : TileClass::kEmpty;
    float s[1][8][4];   // S, then P (16 × 64)
    float dp[8][4];     // dP, then dS (16 × 64)
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[0][nt][e] = 0.f, dp[nt][e] = 0.f;
    if (cls != TileClass::kEmpty) {
      // S = Q·K_tileᵀ and dP = dO·V_tileᵀ (16 × 64 each), sharing the k-step loop.
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) {
        uint32_t aq[4], ado[4];
        prim::ldmatrix_x4(aq, s_q + QL::offset(row0 + (lane & 15), kk * 16 + 8 * (lane >> 4)));
        prim::ldmatrix_x4(ado, s_do + QL::offset(row0 + (lane & 15), kk * 16 + 8 * (lane >> 4)));
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          const int key = wn * Cfg::kKeyTile + np * 16 + (lane & 7) + 8 * (lane >> 4);
          const int col = kk * 16 + 8 * ((lane >> 3) & 1);
          uint32_t bk[4], bv[4];
          prim::ldmatrix_x4(bk, s_k + KVL::offset(key, col));
          prim::ldmatrix_x4(bv, s_v + KVL::offset(key, col));
          prim::mma_m16n8k16<Cfg::kDType>(s[0][2 * np], aq, bk[0], bk[1]);
          prim::mma_m16n8k16<Cfg::kDType>(s[0][2 * np + 1], aq, bk[2], bk[3]);
          prim::mma_m16n8k16<Cfg::kDType>(dp[2 * np], ado, bv[0], bv[1]);
          prim::mma_m16n8k16<Cfg::kDType>(dp[2 * np + 1], ado, bv[2], bv[3]);
        }
      }
      scale_scores(s, p.scale_log2);
      if (cls == TileClass::kPartial)
        prim::apply_mask<Mask>(s, q_first + g, k_first + 2 * t4, sq, sk, p.mask, bias_here);
      // P = exp2(s − LSE·log2e) exactly as the forward normalised it.
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float lse2 = s_lse2[row0 + g + 8 * r];
        const bool row_live = lse2 != -INFINITY;  // a row that saw nothing has P = 0 (and no NaN)
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
          for (int c = 0; c < 2; ++c)
            s[0][nt][2 * r + c] = row_live ? prim::exp2_approx(s[0][nt][2 * r + c] - lse2) : 0.f;
      }
    }
    if (n_steps == 1) {
      // The whole key row is in this block: P and Di are finished from the tile itself. Row sums over
      // the block: per-warp partial rows (quad shuffle) meet in the P staging area (free until P is
      // staged below) and are summed in a fixed warp order (deterministic), then published in dst.
      float* part = reinterpret_cast<float*>(smem + Cfg::kOffP);  // (kWarpsN, kBlockM) fp32
      float* s_l = part + kWarpsN * kBlockM;                       // (kBlockM) Σ_j P, beside the partials
      static_assert((kWarpsN + 1) * kBlockM * 4 <= Cfg::kSmemP, "row-sum scratch exceeds the P staging area");
      auto block_row_sum = [&](float (&acc)[2], float* dst) {  // acc: this thread's part of rows g, g + 8
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], 1);
          acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], 2);
          if (t4 == 0) part[wn * kBlockM + row0 + g + 8 * r] = acc[r];
        }
        __syncthreads();
        if (tid < kBlockM) {
          float d = 0.f;
#pragma unroll
          for (int w = 0; w < kWarpsN; ++w) d += part[w * kBlockM + tid];
          dst[tid] = d;
        }
        __syncthreads();  // dst published; the partials are free again
      };
      // Σ_j term(nt, e) over this thread's elements of rows g (e = 0, 1) and g + 8 (e = 2, 3), then over
      // the block into dst.
      auto row_sum = [&](auto term, float* dst) {
        float acc[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          acc[r] = 0.f;
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int c = 0; c < 2; ++c) acc[r] += term(nt, 2 * r + c);
        }
        block_row_sum(acc, dst);
      };
      // P̂ = P / Σ_j P: exact row normalisation from the tile. The recomputed P = exp2(s − lse2) is a few
      // ulps off (lse2 = LSE·log2e is rounded, worse when |s| is large, as with a bias), and with one key
      // dS = P·dP·(1 − P) ≠ 0; the correctly rounded division gives P̂ = P/P = 1, so dS = 0 exactly.
      // A row with Σ P = 0 (fully masked) keeps P = 0 (no 0/0).
      row_sum([&](int nt, int e) { return s[0][nt][e]; }, s_l);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float l = s_l[row0 + g + 8 * r];
        if (l != 0.f) {
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int c = 0; c < 2; ++c) s[0][nt][2 * r + c] = __fdiv_rn(s[0][nt][2 * r + c], l);
        }
      }
      // Di = Σ_j P̂_ij·dP_ij from the tile replaces rowsum(dO∘O), whose O is rounded to the dtype — the
      // error that dominates dS = P̂∘(dP − Di) when a row sees few keys (one key: P̂ = 1, Di = dP exactly).
      // P == 0 selects 0 (NaN in masked V). Ends on a barrier: the staging area is free for P again.
      row_sum([&](int nt, int e) { return s[0][nt][e] != 0.f ? s[0][nt][e] * dp[nt][e] : 0.f; }, s_di);
    }
    if (cls != TileClass::kEmpty) {
      // dS = P∘(dP − Di) (P̂ when the key row fits one block; it is also what is staged for dV = Pᵀ·dO).
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float di = s_di[row0 + g + 8 * r];
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
          for (int c = 0; c < 2; ++c) dp[nt][2 * r + c] = s[0][nt][2 * r + c] * (dp[nt][2 * r + c] - di);
      }
      // dQ(16 × D) += dS(16 × 64)·K_tile(64 × D): dS C fragments are the A fragments; K via ldmatrix.trans.
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        uint32_t a[4];
        prim::c_to_a<Num>(a, dp, kk);
#pragma unroll
        for (int dpi = 0; dpi < kONTiles / 2; ++dpi) {
          uint32_t bf[4];
          const int key = wn * Cfg::kKeyTile + kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
          const int col = dpi * 16 + 8 * (lane >> 4);
          prim::ldmatrix_x4_trans(bf, s_k + KVL::offset(key, col));
          prim::mma_m16n8k16<Cfg::kDType>(dq[2 * dpi], a, bf[0], bf[1]);
          prim::mma_m16n8k16<Cfg::kDType>(dq[2 * dpi + 1], a, bf[2], bf[3]);
        }
      }
    }
    // Stage P and dS (16-bit) for the transposed products; empty tiles stage zeros.
    char* smem_p = reinterpret_cast<char*>(smem) + Cfg::kOffP;
    char* smem_ds = reinterpret_cast<char*>(smem) + Cfg::kOffDS;
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        const uint32_t off = PL::offset(row0 + g + 8 * r, wn * Cfg::kKeyTile + nt * 8 + 2 * t4);
        *reinterpret_cast<uint32_t*>(smem_p + off) = Num::pack2(s[0][nt][2 * r], s[0][nt][2 * r + 1]);
        *reinterpret_cast<uint32_t*>(smem_ds + off) = Num::pack2(dp[nt][2 * r], dp[nt][2 * r + 1]);
      }
    __syncthreads();

    // dV_blk(kKeyBlock × D) = Pᵀ·dO and dK_blk = scale·dSᵀ·Q over this CTA's kBlockM rows, in units of
    // 16 keys × 32 dims spread over all warps; each unit is added once into the fp32 accumulators.
    constexpr int kUnitsD = kHeadDim / 32;
    constexpr int kUnits = (kKeyBlock / 16) * kUnitsD;
    for (int u = warp; u < kUnits; u += kWarps) {
      const int kb = u / kUnitsD, dc = u % kUnitsD;
      const int key0 = i * kKeyBlock + kb * 16;  // sequence index of the unit's first key
      if (key0 >= sk) continue;
      float dv_u[4][4], dk_u[4][4];
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) dv_u[nt][e] = 0.f, dk_u[nt][e] = 0.f;
#pragma unroll
      for (int rs = 0; rs < kBlockM / 16; ++rs) {
        uint32_t ap[4], ads[4];  // Pᵀ, dSᵀ (16 keys × 16 rows) via transposed loads of the staging tiles
        const int qrow = rs * 16 + (lane & 7) + 8 * (lane >> 4);
        const int kcol = kb * 16 + 8 * ((lane >> 3) & 1);
        prim::ldmatrix_x4_trans(ap, s_p + PL::offset(qrow, kcol));
        prim::ldmatrix_x4_trans(ads, s_ds + PL::offset(qrow, kcol));
#pragma unroll
        for (int dpi = 0; dpi < 2; ++dpi) {
          const int r = rs * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
          const int col = dc * 32 + dpi * 16 + 8 * (lane >> 4);
          uint32_t bdo[4], bq[4];
          prim::ldmatrix_x4_trans(bdo, s_do + QL::offset(r, col));
          prim::ldmatrix_x4_trans(bq, s_q + QL::offset(r, col));
          prim::mma_m16n8k16<Cfg::kDType>(dv_u[2 * dpi], ap, bdo[0], bdo[1]);
          prim::mma_m16n8k16<Cfg::kDType>(dv_u[2 * dpi + 1], ap, bdo[2], bdo[3]);
          prim::mma_m16n8k16<Cfg::kDType>(dk_u[2 * dpi], ads, bq[0], bq[1]);
          prim::mma_m16n8k16<Cfg::kDType>(dk_u[2 * dpi + 1], ads, bq[2], bq[3]);
        }
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int key = key0 + g + 8 * r;
        if (key < sk) {
          const int64_t base = ((acc_row0 + key) * p.heads_kv + h_kv) * kHeadDim + dc * 32 + 2 * t4;
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) {
            atomicAdd(reinterpret_cast<float2*>(dv_acc + base + nt * 8),
                      make_float2(dv_u[nt][2 * r], dv_u[nt][2 * r + 1]));
            atomicAdd(reinterpret_cast<float2*>(dk_acc + base + nt * 8),
                      make_float2(dk_u[nt][2 * r] * p.scale, dk_u[nt][2 * r + 1] * p.scale));
          }
        }
      }
    }
    __syncthreads();  // K, V, P, dS are overwritten by the next step
  }
  (void)kSteps;

  // dQ: sum the kWarpsN key-column partials through shared memory (K/V region), scale, write.
  if constexpr (kWarpsN > 1) {  // the loop ended on a barrier: the K region is free
    if (!sum_column_partials<kWarpsM, kWarpsN, kONTiles>(dq, reinterpret_cast<float4*>(smem + Cfg::kOffK), wm,
                                                         wn, lane))
      return;
  }
  prim::cp_async_wait<0>();
  Element* dq_ptr = static_cast<Element*>(p.dq) + b * p.dq_batch_stride + (seq.q_start + m0) * p.dq_row_stride +
                    int64_t(h) * p.dq_head_stride;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + g + 8 * r;
    if (m0 + row < sq) {
      Element* dq_row = dq_ptr + int64_t(row) * p.dq_row_stride;
#pragma unroll
      for (int nt = 0; nt < kONTiles; ++nt)
        *reinterpret_cast<uint32_t*>(dq_row + nt * 8 + 2 * t4) =
            Num::pack2(dq[nt][2 * r] * p.scale, dq[nt][2 * r + 1] * p.scale);
    }
  }
}

// Launch 2: dk, dv (any strides) ← the fp32 accumulators (total_k, Hkv, D), 8 elements per thread.
template <class V>
__global__ void __launch_bounds__(256) convert_dkdv_kernel(const __grid_constant__ Params p) {
  using Num = typename Config<V>::Num;
  using Element = typename Config<V>::Element;
  constexpr int kHeadDim = V::kHeadDim;
  constexpr int kChunks = kHeadDim / 8;
  const int64_t acc_elems = p.total_k * p.heads_kv * kHeadDim;
  const float* dk_acc = static_cast<const float*>(p.workspace);
  const float* dv_acc = dk_acc + (acc_elems + 63) / 64 * 64;
  const int64_t n = p.total_k * p.heads_kv * kChunks;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(idx % kChunks);
    const int hk = int((idx / kChunks) % p.heads_kv);
    const int64_t tok = idx / (int64_t(kChunks) * p.heads_kv);  // dense: b·Sk + j; varlen: packed token
    const int64_t b = p.is_varlen() ? 0 : tok / p.seqlen_k;
    const int64_t j = p.is_varlen() ? tok : tok % p.seqlen_k;
    const int64_t src = (tok * p.heads_kv + hk) * kHeadDim + c * 8;
    uint32_t wk[4], wv[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      wk[e] = Num::pack2(dk_acc[src + 2 * e], dk_acc[src + 2 * e + 1]);
      wv[e] = Num::pack2(dv_acc[src + 2 * e], dv_acc[src + 2 * e + 1]);
    }
    Element* dk = static_cast<Element*>(p.dk) + b * p.dk_batch_stride + j * p.dk_row_stride + int64_t(hk) * p.dk_head_stride + c * 8;
    Element* dv = static_cast<Element*>(p.dv) + b * p.dv_batch_stride + j * p.dv_row_stride + int64_t(hk) * p.dv_head_stride + c * 8;
    *reinterpret_cast<uint4*>(dk) = make_uint4(wk[0], wk[1], wk[2], wk[3]);
    *reinterpret_cast<uint4*>(dv) = make_uint4(wv[0], wv[1], wv[2], wv[3]);
  }
}

template <class V>
attnforge_status run_bwd(const Params& p, cudaStream_t stream) {
  if (attnforge_status st = check_variant_runs(p, V::kHeadDim, V::TileT::kBlockN, true); st != ATTNFORGE_OK)
    return st;
  if constexpr (V::kDType == DType::f32) {
    return run_f32<V>(p, stream);  // CUDA cores (fused/f32.cuh)
  } else {
    using Cfg = BwdConfig<V>;
    if (p.batch == 0 || p.heads_q == 0) return ATTNFORGE_OK;
    if (!rows_aligned16(p, true)) return fail(ATTNFORGE_UNSUPPORTED, kNeedsAlignedRows);
    if (exceeds_grid_yz(p.heads_q, p.batch)) return fail(ATTNFORGE_UNSUPPORTED, kGridLimits);
    const int64_t acc_elems = p.total_k * p.heads_kv * Cfg::kHeadDim;
    const size_t acc_bytes = size_t((acc_elems + 63) / 64 * 64 + acc_elems) * sizeof(float);
    if (acc_elems > 0) {  // no keys at all: dk, dv are empty, and the kernel below writes dQ = 0
      if (p.workspace == nullptr || p.workspace_bytes < acc_bytes)
        return fail(ATTNFORGE_INTERNAL, "fused backward needs " + std::to_string(acc_bytes) +
                                            " B of workspace, got " + std::to_string(p.workspace_bytes));
      if (cudaError_t e = cudaMemsetAsync(p.workspace, 0, acc_bytes, stream); e != cudaSuccess)
        return fail(ATTNFORGE_CUDA_ERROR,
                    std::string("cudaMemsetAsync(dK/dV accumulators) failed: ") + cudaGetErrorString(e));
    }
    if (p.seqlen_q > 0) {
      constexpr int smem = Cfg::kSmemBytes;
      static int raised[64] = {};
      if (attnforge_status st = raise_smem_limit(bwd_kernel<V>, smem, raised); st != ATTNFORGE_OK) return st;
      const dim3 grid((p.seqlen_q + Cfg::kBlockM - 1) / Cfg::kBlockM, p.heads_q, p.batch);
      bwd_kernel<V><<<grid, Cfg::kThreads, smem, stream>>>(p);
      if (attnforge_status st = check_launch("fused backward"); st != ATTNFORGE_OK) return st;
    }
    if (acc_elems == 0) return ATTNFORGE_OK;
    const int64_t chunks = p.total_k * p.heads_kv * (Cfg::kHeadDim / 8);
    const int blocks = int(std::min<int64_t>((chunks + 255) / 256, int64_t(p.num_sms > 0 ? p.num_sms : 132) * 16));
    convert_dkdv_kernel<V><<<blocks, 256, 0, stream>>>(p);
    return check_launch("fused backward dK/dV conversion");
  }
}

}  // namespace attnforge::fused
