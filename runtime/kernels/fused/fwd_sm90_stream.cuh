// Fused forward with a streamed key row (sm_90a, tiles with `stages`): one launch, exact softmax, the
// attention weights written from the same kernel, for key rows longer than 64 register-held query rows
// allow (64 rows × 1024 fp32 scores = 256 KB, the whole register file). Each warpgroup owns 64 rows; the
// CTA walks its row block's key tiles twice: pass 1 forms S = Q·Kᵀ and the row max and sum, pass 2 forms
// S again, P = exp2(s − max)/Σ exactly from the final statistics (O exists only in pass 2, so nothing is
// rescaled), writes P by TMA and accumulates O += P·V. One Q·Kᵀ more than flash, P written once.
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
#include "common/tma.cuh"
#include "common/variant.hpp"
#include "common/wgmma.cuh"
#include "fused/row_store.cuh"
#include "fused/stream_row.cuh"

namespace attnforge::fused {

template <class V>
struct StreamConfig {
  static constexpr DType kDType = V::kDType;
  using Num = prim::Numeric<kDType>;
  using Element = typename Num::Element;
  using Mask = typename V::Mask;
  static constexpr int kHeadDim = V::kHeadDim;
  static constexpr int kBlockM = V::TileT::kBlockM;      // query rows per CTA: 64 per warpgroup
  static constexpr int kWarps = V::TileT::kWarps;
  static constexpr int kStages = V::TileT::kStages;      // K/V ring depth
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kWarpgroups = kWarps / 4;
  // Keys per step: S (64, kKeyStep) + O (64, D) + P's A fragments per warpgroup must fit 255 registers,
  // and from D 128 the K/V ring and P's staging fit twice per SM (= codegen/limits.py fused_fwd_stream).
  static constexpr int kKeyStep = kHeadDim <= 64 ? 128 : 64;
  static constexpr int kNTilesS = kKeyStep / 8, kNTilesO = kHeadDim / 8;
  static constexpr bool kSupported = (kDType == DType::f16 || kDType == DType::bf16) && kHeadDim % 64 == 0 &&
                                     kHeadDim <= 256 && kWarps % 4 == 0 && kBlockM == 64 * kWarpgroups &&
                                     kStages >= 2;
  using QLayout = prim::SmemTileSw128<kBlockM, kHeadDim>;    // (kBlockM, D)
  using KVLayout = prim::SmemTileSw128<kKeyStep, kHeadDim>;  // (kKeyStep, D) per K or V slot
  // P of a step staged for the TMA store of the weights: (64, kKeyStep) per warpgroup in the tensor map's
  // 128-byte swizzle; two buffers, so a step does not wait for the last one's store to read out.
  using StageLayout = prim::SmemTileSw128<64, kKeyStep>;
  static constexpr int kStageBytes = kWarpgroups * StageLayout::kBytes;
  static constexpr int kSmemBytes = QLayout::kBytes + 2 * kStages * KVLayout::kBytes + 2 * kStageBytes + 1024;
  // One warpgroup per CTA leaves room for two CTAs per SM (their steps interleave); more take the SM alone.
  static constexpr int kMinBlocks = kWarpgroups == 1 ? 2 : 1;
};

// The kernel's arguments: the library's Params and, when the weights are requested and the driver can
// describe them (Sk a multiple of 8, 16-byte aligned), their TMA map (encode_weights_view, 64-row boxes).
struct StreamArgs {
  Params p;
  CUtensorMap tw;
  bool w_tma;
};

template <class V>
__global__ void __launch_bounds__(StreamConfig<V>::kThreads, StreamConfig<V>::kMinBlocks)
    fwd_kernel_sm90_stream(const __grid_constant__ StreamArgs a) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  const Params& p = a.p;
  using Cfg = StreamConfig<V>;
  using SL = typename Cfg::StageLayout;
  using Num = typename Cfg::Num;
  using Element = typename Cfg::Element;
  using Mask = typename Cfg::Mask;
  using QL = typename Cfg::QLayout;
  using KVL = typename Cfg::KVLayout;
  using MmaS = prim::sm90::Wgmma<Cfg::kDType, Cfg::kKeyStep>;  // S (64, kKeyStep)
  using MmaO = prim::sm90::Wgmma<Cfg::kDType, Cfg::kHeadDim>;  // O (64, D)
  constexpr int kN = Cfg::kKeyStep, kStages = Cfg::kStages, kD = Cfg::kHeadDim;
  constexpr int kNTilesS = Cfg::kNTilesS, kNTilesO = Cfg::kNTilesO;
  constexpr uint32_t kSbo = 1024;  // 8 rows × 128 bytes between core-matrix groups

  const int m_block = int(gridDim.x) - 1 - int(blockIdx.x);  // heavy (causal) row blocks first
  const int h = blockIdx.y, b = blockIdx.z;
  const SeqInfo seq = seq_info(p, b);
  const int sq = seq.seqlen_q, sk = seq.seqlen_k;
  const int m0 = m_block * Cfg::kBlockM;
  if (m0 >= sq) return;
  const int h_kv = h / p.group();

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int wg_row0 = (warp >> 2) * 64;           // this warpgroup's first CTA-local row
  const int warp_row0 = wg_row0 + (warp & 3) * 16;  // this warp's 16 rows
  const int q_first = m0 + warp_row0;             // ... as sequence rows

  const Element* q_ptr = static_cast<const Element*>(p.q) + b * p.q_batch_stride + seq.q_start * p.q_row_stride +
                         int64_t(h) * p.q_head_stride;  // (Sq, D)
  const Element* k_ptr = static_cast<const Element*>(p.k) + b * p.k_batch_stride + seq.k_start * p.k_row_stride +
                         int64_t(h_kv) * p.k_head_stride;  // (Sk, D)
  const Element* v_ptr = static_cast<const Element*>(p.v) + b * p.v_batch_stride + seq.k_start * p.v_row_stride +
                         int64_t(h_kv) * p.v_head_stride;  // (Sk, D)
  // Weights (B, Hq, Sq, Sk) contiguous, dense only (validation rejects weights with varlen); may be null.
  Element* w_band = p.weights == nullptr ? nullptr
                                         : static_cast<Element*>(p.weights) +
                                               ((int64_t(b) * p.heads_q + h) * p.seqlen_q + q_first) * p.seqlen_k;
  // With a map, P leaves by one TMA store per warpgroup and step from shared memory, issued by the
  // warpgroup's first thread; otherwise from registers (store_band).
  const bool w_tma = a.w_tma;
  const bool w_issuer = w_tma && (tid & 127) == 0 && m0 + (tid >> 7) * 64 < sq;  // a warpgroup with rows
  const int plane = b * p.heads_q + h;  // of the weights' (Sk, Sq, B·Hq) view
  const float c = fabsf(p.scale_log2);  // s·c: log2-domain scores; a negative scale is folded into Q
  prim::BiasView bias{};  // of kinds with a tensor: added to raw q·k before the ·c
  if constexpr (Mask::kHasTensor) bias = prim::bias_view_raw(p, b, h, c);

  extern __shared__ __align__(128) char smem_stream[];
  const uint32_t smem_raw = static_cast<uint32_t>(__cvta_generic_to_shared(smem_stream));
  const uint32_t sQ = (smem_raw + 1023u) & ~1023u;  // (kBlockM, D), 1024-aligned for the swizzle
  auto sK = [&](int slot) { return sQ + QL::kBytes + (2 * slot) * KVL::kBytes; };
  auto sV = [&](int slot) { return sQ + QL::kBytes + (2 * slot + 1) * KVL::kBytes; };
  const uint32_t sP0 = sQ + QL::kBytes + 2 * kStages * KVL::kBytes;  // 2 × warpgroups × (64, kN) staged P
  auto sP = [&](int buf) { return sP0 + uint32_t(buf * Cfg::kStageBytes + (warp >> 2) * SL::kBytes); };
  // This warpgroup's (64, kN) rows of staging buffer `buf` as TMA stores of 64 columns at key k0.
  auto store_staged = [&](int buf, int k0) {
#pragma unroll
    for (int c = 0; c < kN / 64; ++c)
      if (k0 + 64 * c < sk) prim::tma::store_3d(&a.tw, sP(buf) + c * SL::kSlabBytes, k0 + 64 * c, m0 + wg_row0, plane);
    prim::tma::bulk_commit();
  };

  // The key tiles of the row block, dead ones (no row of the block sees a key) skipped, walked twice.
  // The load cursor (load_pass, load_j): load_pass 0 walks pass 1's tiles, 1 pass 2's, 2 is past the end.
  const int n_tiles = (sk + kN - 1) / kN;
  const int q_last = min(m0 + Cfg::kBlockM, sq) - 1;
  auto tile_class = [&](int j) {
    return prim::classify_tile<Mask>(m0, Cfg::kBlockM, j * kN, kN, sq, sk, p.mask);
  };
  auto next_tile = [&](int j) {
    while (j < n_tiles && tile_class(j) == TileClass::kEmpty) ++j;
    return j;
  };
  int load_pass = 0, load_j = next_tile(0);
  // K (both passes) and V (pass 2 only) of the cursor's tile as two cp.async groups, empty ones included,
  // so that every step waits on the same group counts. Keys no row of the block sees are zero-filled.
  auto load_next = [&](int slot) {
    const bool any = load_pass < 2 && load_j < n_tiles;
    const int k0 = load_j * kN;
    const bool partial = any && tile_class(load_j) != TileClass::kFull;
    auto row_ok = [&](int r) {
      return k0 + r < sk && (!partial || prim::key_seen_by_rows<Mask>(m0, q_last, k0 + r, sq, sk, p.mask));
    };
    if (any)
      prim::load_tile_async_if<KVL, Cfg::kThreads>(sK(slot), k_ptr + int64_t(k0) * p.k_row_stride, p.k_row_stride,
                                                     row_ok, tid);
    prim::cp_async_commit();
    if (any && load_pass == 1)
      prim::load_tile_async_if<KVL, Cfg::kThreads>(sV(slot), v_ptr + int64_t(k0) * p.v_row_stride, p.v_row_stride,
                                                     row_ok, tid);
    prim::cp_async_commit();
    if (load_pass < 2) {
      load_j = next_tile(load_j + 1);
      if (load_j >= n_tiles) load_pass += 1, load_j = next_tile(0);
    }
  };

  // ---- prologue: Q, the first kStages − 1 tiles ----------------------------------------------------------
  prim::load_tile_async<QL, Cfg::kThreads>(sQ, q_ptr + int64_t(m0) * p.q_row_stride, p.q_row_stride, sq - m0, tid);
  prim::cp_async_commit();
  if (p.scale_log2 < 0.f) {  // fold a negative scale into Q (exact sign flips)
    prim::cp_async_wait<0>();
    prim::for_each_own_chunk<QL, Cfg::kThreads>(
        tid, [&](int row, int chunk) { prim::negate_chunk16(sQ + QL::chunk_offset(row, chunk)); });
  }
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) load_next(s);
  // Q's rows of this warpgroup as kD / 16 A fragments, read once: S = Q·Kᵀ then streams only K through
  // shared memory (an SS wgmma at n64 reads as many bytes per clock as shared memory delivers).
  uint32_t qa[kD / 16][4];
  prim::cp_async_wait<2 * (kStages - 1)>();  // Q landed (the K/V groups after it may still fly)
  __syncthreads();
#pragma unroll
  for (int ks = 0; ks < kD / 16; ++ks)
    prim::ldmatrix_x4(qa[ks], sQ + QL::offset(warp_row0 + (lane & 15), ks * 16 + (lane >> 4) * 8));

  // S = Q·Kᵀ of tile j from `slot`: (64, kN) per warpgroup, raw scores; issued here, finished by finish_s.
  using Scores = float[1][kNTilesS][4];
  auto issue_s = [&](Scores& sc, int slot) {
    prim::cp_async_wait<2 * kStages - 3>();  // K_j (and Q) landed
    prim::sm90::fence_proxy_async();          // ... and are visible to wgmma
    __syncthreads();                          // every warp is done with the slot the next load overwrites
    load_next((slot + kStages - 1) % kStages);
    const uint32_t k_s = sK(slot);
    prim::sm90::fence();
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      const uint64_t dk = prim::sm90::desc_sw128_at(k_s, (ks / 4) * KVL::kSlabBytes + (ks % 4) * 32, 16, kSbo);
      if (ks == 0) MmaS::template rs_bk<false>(sc[0], qa[ks], dk);
      else MmaS::template rs_bk<true>(sc[0], qa[ks], dk);
    }
    prim::sm90::commit();
  };
  auto finish_s = [&](Scores& sc, int j) {  // after the wait: masked scores −inf where the tile is partial
    if (tile_class(j) != TileClass::kFull)
      prim::apply_mask<Mask, 64>(sc, q_first + g, j * kN + 2 * t, sq, sk, p.mask, bias);
  };

  // ---- pass 1: the row max and sum over every live key tile ----------------------------------------------
  // Two score buffers: the next tile's S = Q·Kᵀ runs on the tensor cores while this one's exponentials
  // (its Σ) run beside it. Every wgmma is issued with none in flight (ptxas serializes otherwise).
  StreamRowStats<kNTilesS> stats;
  int slot = 0;
  Scores s, s_next;
  // One pipelined step: S of tile jn (if any) into `nxt` beside the statistics of `cur` (tile j's).
  auto pass1_step = [&](Scores& cur, Scores& nxt, int jn) {
    if (jn < n_tiles) {
      issue_s(nxt, slot);
      slot = (slot + 1) % kStages;
    }
    stats.add(cur, c);
    prim::sm90::wait<0>();
    if (jn < n_tiles) finish_s(nxt, jn);
  };
  const int j_first = next_tile(0);
  for (int j = j_first; j < n_tiles;) {
    if (j == j_first) {  // the first tile: nothing to overlap with yet
      issue_s(s, slot);
      slot = (slot + 1) % kStages;
      prim::sm90::wait<0>();
      finish_s(s, j);
    }
    int jn = next_tile(j + 1);
    pass1_step(s, s_next, jn);
    if (jn >= n_tiles) break;
    j = jn;
    jn = next_tile(j + 1);
    pass1_step(s_next, s, jn);
    j = jn;
  }
  float base[2], inv[2], lse[2];  // P = exp2(s·c − base)·inv
  stats.finish(base, inv, lse);

  // ---- pass 2: P exactly, the weights, O += P·V ------------------------------------------------------------
  float o[kNTilesO][4];  // (64, D) per warpgroup
#pragma unroll
  for (int nt = 0; nt < kNTilesO; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[nt][e] = 0.f;
  int step = 0;  // pass-2 steps so far: the staging buffer is step % 2
  for (int j = next_tile(0); j < n_tiles; j = next_tile(j + 1), ++step) {
    if (w_issuer) prim::tma::bulk_wait_read<1>();  // the buffer of step − 2 has been read out
    issue_s(s, slot);                              // (its barrier tells every thread so)
    prim::sm90::wait<0>();
    finish_s(s, j);
    exact_p(s, c, base, inv);
    uint32_t pa[kN / 16][4];  // P in 16 bits as k16 A fragments: the operand of P·V and the weights
#pragma unroll
    for (int kk = 0; kk < kN / 16; ++kk) prim::c_to_a<Num>(pa[kk], s[0], kk);
    if (w_tma) {
      stage_p<SL>(sP(step & 1), pa, warp & 3, lane);
    } else if (w_band != nullptr) {
      store_band<Num, kNTilesS>(w_band, p.seqlen_k, s[0], sq - q_first, j * kN, sk, false, g, t);
    }

    prim::cp_async_wait<2 * kStages - 2>();  // V_j landed
    prim::sm90::fence_proxy_async();          // (and the staged P is visible to the TMA store)
    __syncthreads();
    if (w_issuer) store_staged(step & 1, j * kN);  // rows past Sq and keys past Sk are clipped by the map
    const uint32_t v_s = sV(slot);
    prim::sm90::fence();
#pragma unroll
    for (int kk = 0; kk < kN / 16; ++kk)
      MmaO::rs(o, pa[kk], prim::sm90::desc_sw128_at(v_s, kk * 2048, KVL::kSlabBytes, kSbo));
    prim::sm90::commit();
    prim::sm90::wait<0>();
    slot = (slot + 1) % kStages;
  }
  prim::cp_async_wait<0>();

  // ---- the weights of dead tiles are 0; O (already normalised through P) and LSE ----------------------------
  if (w_tma) {  // a zeroed staging buffer, stored once per dead tile
    if (w_issuer) prim::tma::bulk_wait_read<0>();
    __syncthreads();
    zero_staging<SL>(sP(0), tid & 127);
    prim::sm90::fence_proxy_async();
    __syncthreads();
    if (w_issuer) {
      for (int j = 0; j < n_tiles; ++j)
        if (tile_class(j) == TileClass::kEmpty) store_staged(0, j * kN);
      prim::tma::bulk_wait_all();  // the staged P is read before the CTA's shared memory goes
    }
  } else if (w_band != nullptr) {
    const float zeros[kNTilesS][4] = {};
    for (int j = 0; j < n_tiles; ++j)
      if (tile_class(j) == TileClass::kEmpty)
        store_band<Num, kNTilesS>(w_band, p.seqlen_k, zeros, sq - q_first, j * kN, sk, false, g, t);
  }
  store_lse_o<Num, kD>(p, b, h, seq.q_start, q_first, sq, lse, o, g, t);
#else
  __trap();  // built without sm_90a: the variant is sm90a-only, so run_fwd is never asked for it then
#endif
}

}  // namespace attnforge::fused
