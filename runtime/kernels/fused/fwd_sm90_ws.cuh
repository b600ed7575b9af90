// Fused forward with a streamed key row, warp-specialized (sm_90a tiles with stages and a producer
// warpgroup: warps = 4 · (m / 64 + 1)). The algorithm of fwd_sm90_stream.cuh — pass 1: S = Q·Kᵀ and the
// row max (and sum, with the weights); pass 2: S again (at D 64 not for the two tiles pass 1 ends with, still
// in registers), P against the final statistics (nothing rescaled), the weights by TMA stores, O += P·V —
// with the flash forward's mechanics: a persistent CTA per SM, one producer thread moving Q, K (both
// passes) and V (pass 2) by TMA into mbarrier rings (the next block's Q and first K tiles land while this
// one finishes; at D 64 it also publishes each block to the consumers), two consumer warpgroups of 64 rows
// sharing each 128-key tile, and pass 2 issuing S_j beside P_{j−1}·V_{j−1} (the softmax of S_j runs while
// that P·V does).
#pragma once
#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "common/mask_apply.cuh"
#include "common/mma.cuh"
#include "common/numeric.cuh"
#include "common/params.hpp"
#include "common/smem_layout.cuh"
#include "common/smem_tile_ops.cuh"
#include "common/tma.cuh"
#include "common/variant.hpp"
#include "common/wgmma.cuh"
#include "common/ws_barriers.cuh"
#include "fused/row_store.cuh"
#include "fused/stream_row.cuh"
#include "fused/ws_units.hpp"

namespace attnforge::fused {

template <class V>
struct WsStreamConfig {
  static constexpr DType kDType = V::kDType;
  using Num = prim::Numeric<kDType>;
  using Element = typename Num::Element;
  using Mask = typename V::Mask;
  static constexpr int kD = V::kHeadDim;
  static constexpr int kBlockM = V::TileT::kBlockM;  // kConsumers × 64 query rows
  static constexpr int kStages = V::TileT::kStages;  // depth of the K ring and of the V ring
  static constexpr int kConsumers = kBlockM / 64;
  static constexpr int kThreads = 32 * V::TileT::kWarps;  // warpgroup 0 produces, 1 … kConsumers consume
  static constexpr int kConsumerThreads = 128 * kConsumers;
  // Keys per step: S (64, 128) + O (64, D) + P's and Q's A fragments per consumer thread fit 240
  // registers up to D 128 (= codegen/limits.py fused_fwd_stream).
  static constexpr int kKeyStep = 128;
  // Pass 2 opens with the two score tiles pass 1 ends with, still in registers, instead of forming them
  // again (HeldTiles). At D 128 the two tiles beside O, Q and P's fragments overflow 240 registers (ptxas:
  // 1.5 KB of spill, every wgmma serialized), and with a bias tensor at D 64 its view spills 76 bytes: there
  // pass 2 forms every tile again.
  static constexpr bool kHoldTwo = kD <= 64 && !Mask::kHasTensor;
  static constexpr bool kSupported = (kDType == DType::f16 || kDType == DType::bf16) && kD % 64 == 0 && kD <= 128 &&
                                     kConsumers == 2 && V::TileT::kWarps == 4 * (kConsumers + 1) && kStages >= 2;
  using QL = prim::SmemTileSw128<kBlockM, kD>;        // (kBlockM, D)
  using KVL = prim::SmemTileSw128<kKeyStep, kD>;      // (kKeyStep, D) per K or V stage
  using SL = prim::SmemTileSw128<64, kKeyStep>;       // P of one warpgroup and step, staged for the TMA store
  // [Q][K × kStages][V × kStages][P staging × 2 × kConsumers][mbarriers][block slot], tiles 1024-byte aligned.
  static constexpr int kOffK = QL::kBytes;
  static constexpr int kOffV = kOffK + kStages * KVL::kBytes;
  static constexpr int kOffP = kOffV + kStages * KVL::kBytes;
  static constexpr int kStageBytes = kConsumers * SL::kBytes;
  static constexpr int kOffBar = kOffP + 2 * kStageBytes;
  static constexpr int kNumBars = prim::tma::WsBarriers<kStages>::kCount;  // Q, K, V full / empty
  // The row block whose Q is in flight, as the producer publishes it (the kernel's Published): with
  // kPublishBlocks the consumers read it there instead of walking the schedule themselves. At D 128 the
  // block's fields then live in registers the whole block (the walk's are rematerialized from the kernel
  // parameters): 1.8 KB of spill and every wgmma serialized, and with a bias tensor at D 64 68 B: so with
  // kHoldTwo only (the slot is there in every tile: codegen/limits.py counts it).
  static constexpr bool kPublishBlocks = kHoldTwo;
  static constexpr int kOffBlockSlot = kOffBar + 8 * kNumBars, kBlockSlotBytes = prim::tma::kWsBlockSlotBytes;
  static constexpr int kSmemBytes = kOffBlockSlot + kBlockSlotBytes + 1024;  // + 1024: base alignment
  static constexpr int kProducerRegs = 24, kConsumerRegs = 240;
  static_assert(prim::tma::regs_split_fits(kProducerRegs, kConsumerRegs, kConsumerThreads, kThreads));
};

// The kernel's arguments: the library's Params, TMA maps of Q, K, V (4-D views, boxes of kBlockM and
// kKeyStep rows) and, when the weights are requested and describable, theirs (encode_weights_view).
struct WsStreamArgs {
  Params p;
  CUtensorMap tq, tk, tv, tw;
  bool w_tma;
};

template <class V>
__global__ void __launch_bounds__(WsStreamConfig<V>::kThreads, 1)
    fwd_kernel_sm90_ws(const __grid_constant__ WsStreamArgs a) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = WsStreamConfig<V>;
  using Num = typename C::Num;
  using Element = typename C::Element;
  using Mask = typename C::Mask;
  using QL = typename C::QL;
  using KVL = typename C::KVL;
  using SL = typename C::SL;
  using MmaS = prim::sm90::Wgmma<C::kDType, C::kKeyStep>;  // S (64, kKeyStep)
  using MmaO = prim::sm90::Wgmma<C::kDType, C::kD>;        // O (64, D)
  namespace w = prim::sm90;
  namespace tma = prim::tma;
  constexpr int kBM = C::kBlockM, kN = C::kKeyStep, kD = C::kD, kStages = C::kStages;
  constexpr int kNS = kN / 8, kNO = kD / 8;  // n8 tiles of S and of O
  constexpr uint32_t kSbo = 1024;            // 8 rows × 128 bytes between core-matrix groups
  const Params& p = a.p;

  // Persistent: CTA x takes units x, x + grid, … of WsUnits (head-major; causal work in pairs of a long and
  // a short row block of one head). The producer walks them and, with kPublishBlocks, publishes each block
  // to the consumers (Published); otherwise the consumers walk the same blocks. A block past its sequence
  // (varlen) is skipped.
  struct Block {
    int m0, q_last, h, b, sq, sk, n_tiles;
    SeqInfo seq;
  };
  const WsUnits units(p.seqlen_q, kBM, p.heads_q, p.batch, prim::kMaskEmptiesTiles<Mask>);
  const int n_units = units.n_units;  // < 2^31 − grid: launch_fwd_ws checks
  // The CTA's next block: the unit's next one, else the first of the CTA's next unit.
  auto next_block = [&](int& u, int& kb) {
    if (++kb >= units.blocks(u)) kb = 0, u += gridDim.x;
  };
  auto block_at = [&](int u, int kb) {
    Block blk;
    const WsUnits::Block id = units.at(u, kb);
    blk.h = id.bh % p.heads_q, blk.b = id.bh / p.heads_q;
    blk.seq = seq_info(p, blk.b);
    blk.sq = blk.seq.seqlen_q, blk.sk = blk.seq.seqlen_k;
    blk.m0 = id.m_block * kBM;
    blk.q_last = min(blk.m0 + kBM, blk.sq) - 1;
    blk.n_tiles = (blk.sk + kN - 1) / kN;
    return blk;
  };
  // The key tiles of a row block, dead ones (no row of the block sees a key) skipped, walked twice.
  auto block_tile_class = [&](const Block& blk, int j) {
    return prim::classify_tile<Mask>(blk.m0, kBM, j * kN, kN, blk.sq, blk.sk, p.mask);
  };
  auto block_next_tile = [&](const Block& blk, int j) {
    while (j < blk.n_tiles && block_tile_class(blk, j) == TileClass::kEmpty) ++j;
    return j;
  };
  // Pass 1 leaves live tile k's scores in buffer k % 2, so its last two tiles are still in registers when
  // it ends: with kHoldTwo pass 2 takes them first (buffer 0's, then buffer 1's) and forms S again only for
  // live tiles 0 … n − 3 (at S ≤ 256 for none: two GEMMs per tile, as flash).
  struct HeldTiles {
    int n;       // tiles held: min(live tiles, 2), 0 without kHoldTwo
    int j0, j1;  // the tiles whose S ends pass 1 in buffer 0 and 1 (−1: none)
    int j_stop;  // pass 2 forms S again for the live tiles before this one
  };
  auto block_held_tiles = [&](const Block& blk) {
    HeldTiles hd{0, -1, -1, blk.n_tiles};
    if constexpr (C::kHoldTwo) {
      int n = 0;
      for (int j = block_next_tile(blk, 0); j < blk.n_tiles; j = block_next_tile(blk, j + 1), ++n)
        (n % 2 == 0 ? hd.j0 : hd.j1) = j;
      hd.n = min(n, 2);
      hd.j_stop = n >= 2 ? min(hd.j0, hd.j1) : n == 1 ? hd.j0 : blk.n_tiles;
    }
    return hd;
  };

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int wg = warp >> 2;
  extern __shared__ __align__(128) char smem_fws[];
  const uint32_t base = (static_cast<uint32_t>(__cvta_generic_to_shared(smem_fws)) + 1023u) & ~1023u;
  const uint32_t sQ = base;
  auto sK = [&](int st) { return base + C::kOffK + uint32_t(st * KVL::kBytes); };
  auto sV = [&](int st) { return base + C::kOffV + uint32_t(st * KVL::kBytes); };
  const prim::tma::WsBarriers<kStages> bars{base + C::kOffBar};  // Q, K and V full / empty
  // With kPublishBlocks the producer hands each block to the consumers through this slot (the protocol:
  // common/ws_barriers.cuh, kWsBlockSlotBytes).
  struct Published {
    Block blk;
    HeldTiles held;
    bool live;
  };
  static_assert(sizeof(Published) <= C::kBlockSlotBytes && alignof(Published) <= 8);
  Published* const slot = reinterpret_cast<Published*>(
      smem_fws + (base - static_cast<uint32_t>(__cvta_generic_to_shared(smem_fws))) + C::kOffBlockSlot);
  if (tid == 0) bars.init(C::kConsumerThreads, C::kConsumerThreads);
  __syncthreads();

  if (wg == 0) {
    // ---- producer: one thread; K stages counted over both passes, V stages over pass 2 -------------------
    tma::regs_dealloc<C::kProducerRegs>();
    if (tid == 0) {
      int it = 0, iv = 0, n_q = 0;
      for (int u = blockIdx.x, kb = 0; u < n_units; next_block(u, kb)) {
        const Block blk = block_at(u, kb);
        if (blk.m0 >= blk.sq) continue;
        const int h_kv = blk.h / p.group(), tb = p.is_varlen() ? 0 : blk.b;
        const int k_row0 = int(blk.seq.k_start);  // rows of the TMA view
        const HeldTiles held = block_held_tiles(blk);
        tma::mbar_wait(bars.q_empty(), (n_q & 1) ^ 1);  // the consumers hold the last block's Q in registers
        if constexpr (C::kPublishBlocks) *slot = Published{blk, held, true};  // published by the arrive below
        tma::mbar_expect_tx(bars.q_full(), QL::kBytes);
        tma::load_rows<QL>(sQ, &a.tq, bars.q_full(), blk.h, int(blk.seq.q_start) + blk.m0, tb);
        ++n_q;
        auto load = [&](const CUtensorMap* map, uint32_t full, uint32_t empty, uint32_t dst, int ph, int j) {
          tma::mbar_wait(empty, ph ^ 1);
          tma::mbar_expect_tx(full, KVL::kBytes);
          tma::load_rows<KVL>(dst, map, full, h_kv, k_row0 + j * kN, tb);
        };
        auto load_k = [&](int j) {
          const int st = it % kStages;
          load(&a.tk, bars.k_full(st), bars.k_empty(st), sK(st), (it / kStages) & 1, j), ++it;
        };
        auto load_v = [&](int j) {
          const int sv = iv % kStages;
          load(&a.tv, bars.v_full(sv), bars.v_empty(sv), sV(sv), (iv / kStages) & 1, j), ++iv;
        };
        for (int j = block_next_tile(blk, 0); j < blk.n_tiles; j = block_next_tile(blk, j + 1)) load_k(j);  // pass 1
        if (held.n >= 1) load_v(held.j0);  // pass 2: the held tiles' V, then K and V of the others
        if (held.n >= 2) load_v(held.j1);
        for (int j = block_next_tile(blk, 0); j < held.j_stop; j = block_next_tile(blk, j + 1)) load_k(j), load_v(j);
      }
      if constexpr (C::kPublishBlocks) prim::tma::ws_publish_end(bars, slot, n_q);
    }
    return;
  }

  // ---- consumers: warpgroup cw owns query rows 64·cw … 64·cw + 63 of the block -----------------------------
  tma::regs_alloc<C::kConsumerRegs>();
  const int cw = wg - 1, ctid = tid - 128;
  const int wg_row0 = 64 * cw, warp_row0 = wg_row0 + (warp & 3) * 16;
  const int wg_bar = 1 + cw;           // named barrier of this warpgroup's 128 threads
  const float c = fabsf(p.scale_log2);  // s·c: log2-domain scores; a negative scale is folded into Q
  // Weights (B, Hq, Sq, Sk) contiguous, dense only (validation rejects weights with varlen); may be null.
  // With a map, P leaves by one TMA store per warpgroup and step from shared memory, issued by the
  // warpgroup's first thread; otherwise from registers (store_band).
  const bool weights = p.weights != nullptr, w_tma = a.w_tma;
  auto sP = [&](int buf) { return base + C::kOffP + uint32_t(buf * C::kStageBytes + cw * SL::kBytes); };
  using Scores = float[1][kNS][4];
  int it = 0, iv = 0, n_q = 0;  // K and V stages and Q loads consumed, as the producer counts them
  int step = 0;                 // P's staging buffer is step % 2 (steps with the weights, over all blocks)
  // The next row block: published by the producer once its Q landed (the unit loop only counts then), or
  // this warpgroup's own walk of the schedule (the Q wait follows).
  for (int u = blockIdx.x, kb = 0; C::kPublishBlocks || u < n_units; next_block(u, kb)) {
    Block blk;
    HeldTiles held;
    if constexpr (C::kPublishBlocks) {
      tma::mbar_wait(bars.q_full(), n_q & 1);
      const Published pub = *slot;
      if (!pub.live) break;
      blk = pub.blk, held = pub.held;
    } else {
      blk = block_at(u, kb);
      if (blk.m0 >= blk.sq) continue;
      held = block_held_tiles(blk);
    }
    const int m0 = blk.m0, q_last = blk.q_last, h = blk.h, b = blk.b, sq = blk.sq, sk = blk.sk, n_tiles = blk.n_tiles;
    const SeqInfo& seq = blk.seq;
    auto tile_class = [&](int j) { return block_tile_class(blk, j); };
    auto next_tile = [&](int j) { return block_next_tile(blk, j); };
    const int q_first = m0 + warp_row0;  // this warp's first row, as a sequence row
    prim::BiasView bias{};  // of kinds with a tensor: added to raw q·k before the ·c
    if constexpr (Mask::kHasTensor) bias = prim::bias_view_raw(p, b, h, c);
    Element* w_band = !weights ? nullptr
                               : static_cast<Element*>(p.weights) +
                                     ((int64_t(b) * p.heads_q + h) * p.seqlen_q + q_first) * p.seqlen_k;
    const bool w_issuer = w_tma && (ctid & 127) == 0 && m0 + wg_row0 < sq;  // a warpgroup with rows
    const int plane = b * p.heads_q + h;                                     // of the weights' (Sk, Sq, B·Hq) view
    // This warpgroup's (64, kN) rows of staging buffer `buf` as TMA stores of 64 columns at key k0.
    auto store_staged = [&](int buf, int k0) {
#pragma unroll
      for (int cc = 0; cc < kN / 64; ++cc)
        if (k0 + 64 * cc < sk) tma::store_3d(&a.tw, sP(buf) + cc * SL::kSlabBytes, k0 + 64 * cc, m0 + wg_row0, plane);
      tma::bulk_commit();
    };

    // Q_w (64, D) as kD / 16 A fragments, read once: S = Q·Kᵀ then streams only K through shared memory, and
    // the next block's Q may land as soon as every consumer has its fragments.
    if constexpr (!C::kPublishBlocks) tma::mbar_wait(bars.q_full(), n_q & 1);
    if (p.scale_log2 < 0.f) {  // fold a negative scale into this warpgroup's Q rows (exact sign flips)
      for (int i = ctid & 127; i < 64 * QL::kChunksPerRow; i += 128)
        prim::negate_chunk16(sQ + QL::chunk_offset(wg_row0 + i / QL::kChunksPerRow, i % QL::kChunksPerRow));
      w::fence_proxy_async();
      tma::bar_sync(wg_bar, 128);
    }
    uint32_t qa[kD / 16][4];
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks)
      prim::ldmatrix_x4(qa[ks], sQ + QL::offset(warp_row0 + (lane & 15), ks * 16 + (lane >> 4) * 8));
    tma::mbar_arrive(bars.q_empty());
    ++n_q;

    // S = Q_w·K_jᵀ (64, kN) from the next K stage: waits for it and issues; the caller waits for the wgmma
    // and then releases the stage (release_k).
    auto issue_s = [&](Scores& sc) {
      const int st = it % kStages;
      tma::mbar_wait(bars.k_full(st), (it / kStages) & 1);
      w::fence();
#pragma unroll
      for (int ks = 0; ks < kD / 16; ++ks) {
        const uint64_t dk = w::desc_sw128_at(sK(st), (ks / 4) * KVL::kSlabBytes + (ks % 4) * 32, 16, kSbo);
        if (ks == 0) MmaS::template rs_bk<false>(sc[0], qa[ks], dk);
        else MmaS::template rs_bk<true>(sc[0], qa[ks], dk);
      }
      w::commit();
    };
    auto release_k = [&] { tma::mbar_arrive(bars.k_empty(it % kStages)), ++it; };
    auto finish_s = [&](Scores& sc, int j) {  // masked scores −inf where the tile is partial
      if (tile_class(j) != TileClass::kFull)
        prim::apply_mask<Mask, 64>(sc, q_first + g, j * kN + 2 * t, sq, sk, p.mask, bias);
    };

    // V_j of the next V stage arrived. On a partial tile, V rows no query of this block sees (past sk,
    // outside a window, the next packed sequence) are zeroed before any P·V reads them: P is 0 there, but
    // 0·NaN would reach O. Each warpgroup zeroes every such row itself (where both do, they write the same
    // zeros) and meets only its own warps.
    auto v_ready = [&](int j) {
      const int sv = iv % kStages;
      tma::mbar_wait(bars.v_full(sv), (iv / kStages) & 1);
      if (tile_class(j) != TileClass::kFull) {
        for (int r = ctid & 127; r < kN; r += 128)
          if (!prim::key_live<Mask>(m0, q_last, j * kN + r, sq, sk, p.mask)) prim::zero_row_sw128<KVL>(sV(sv), r);
        w::fence_proxy_async();
        tma::bar_sync(wg_bar, 128);
      }
      return sv;
    };
    // O += P·V_j: P (64, kN) from registers, V (kN keys, D) MN-major. Issue only.
    auto issue_pv = [&](float (&o)[1][kNO][4], const uint32_t (&pa)[kN / 16][4], int sv) {
      w::fence();
#pragma unroll
      for (int kk = 0; kk < kN / 16; ++kk)
        MmaO::rs(o[0], pa[kk], w::desc_sw128_at(sV(sv), kk * 2048, KVL::kSlabBytes, kSbo));
      w::commit();
    };
    auto release_v = [&](int sv) { tma::mbar_arrive(bars.v_empty(sv)), ++iv; };

    // The two passes and the epilogue, compiled twice: with the weights (pass 1 takes the row max and sum, pass
    // 2 writes P = exp2(s·c − max)/Σ) and without (pass 1 takes the max only, pass 2 sums P = exp2(s·c − max)
    // and O /= Σ at the end: one exponential per score instead of two). Neither rescales anything.
    auto passes = [&](auto with_weights) {
      constexpr bool kWeights = decltype(with_weights)::value;
      // ---- pass 1: the row max (and sum) over every live key tile --------------------------------------------
      // Two score buffers: S_{j+1} = Q·K_{j+1}ᵀ runs on the tensor cores while S_j's statistics run. Written as
      // a peeled first tile and steps that always issue: with a conditional issue and an unroll by two that
      // breaks out, ptxas serialized every wgmma of the persistent loop (C7515) and spilled 1 KB at D 128.
      StreamRowStats<kNS> stats;
      Scores s, s_next;
      auto add = [&](const Scores& sc) {
        if constexpr (kWeights) stats.add(sc, c);
        else stats.add_max(sc, c);
      };
      // S_jn into nxt beside the statistics of cur.
      auto step1 = [&](Scores& cur, Scores& nxt, int jn) {
        issue_s(nxt);
        add(cur);
        w::wait<0>();
        release_k();
        finish_s(nxt, jn);
      };
      int j = next_tile(0);
      if (j < n_tiles) {
        issue_s(s);
        w::wait<0>();
        release_k();
        finish_s(s, j);
        while (true) {
          j = next_tile(j + 1);
          if (j >= n_tiles) {
            add(s);
            break;
          }
          step1(s, s_next, j);
          j = next_tile(j + 1);
          if (j >= n_tiles) {
            add(s_next);
            break;
          }
          step1(s_next, s, j);
        }
      }
      float fbase[2], inv[2];         // P = exp2(s·c − fbase)·inv (with the weights; without, inv after pass 2)
      float row_sum[2] = {0.f, 0.f};  // without the weights: this thread's part of Σ P, summed in pass 2
      if constexpr (kWeights) {
        float lse_unused[2];  // formed from fbase and inv at the end instead: two registers fewer through pass 2
        stats.finish(fbase, inv, lse_unused);
      } else {
        stats.bases(fbase);
      }

      // ---- pass 2: P, the weights, O += P·V ----------------------------------------------------------------
      float o[1][kNO][4];        // O (64 rows of this warpgroup, D), fp32
      uint32_t pa[kN / 16][4];  // P of the previous tile in 16 bits: the A fragments of O += P·V and the weights
#pragma unroll
      for (int nt = 0; nt < kNO; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[0][nt][e] = 0.f;
      // Masked S_j → P_j (fp32, in place); without a map the weights leave from registers here.
      auto p_of_masked = [&](Scores& sc, int j) {
        if constexpr (kWeights) {
          exact_p(sc, c, fbase, inv);
          if (!w_tma) store_band<Num, kNS>(w_band, p.seqlen_k, sc[0], sq - q_first, j * kN, sk, false, g, t);
        } else {
          sum_p(sc, c, fbase, row_sum);
        }
      };
      auto p_of = [&](Scores& sc, int j) {
        finish_s(sc, j);
        p_of_masked(sc, j);
      };
      // P_j (in pa) to the weights through staging buffer step % 2: the issuer's wait makes sure the store of
      // step − 1 has read its buffer before the barrier, after which the next step may overwrite it.
      auto store_p = [&](int j) {
        if (!kWeights || !w_tma) return;
        stage_p<SL>(sP(step & 1), pa, warp & 3, lane);
        w::fence_proxy_async();
        if (w_issuer) tma::bulk_wait_read<0>();
        tma::bar_sync(wg_bar, 128);
        if (w_issuer) store_staged(step & 1, j * kN);  // rows past Sq and keys past Sk are clipped by the map
        ++step;
      };
      auto to_pa = [&](const Scores& sc) {
#pragma unroll
        for (int kk = 0; kk < kN / 16; ++kk) prim::c_to_a<Num>(pa[kk], sc[0], kk);
      };
      int jf = next_tile(0);  // the next tile whose S pass 2 forms again (those before held.j_stop)
      if (held.n >= 1 || jf < held.j_stop) {
        int j_prev;  // the tile whose P is in pa
        if (held.n >= 1) {
          // The tiles pass 1 left in registers, masked already: P_{held 0} → pa, whose P·V runs beside
          // P_{held 1}.
          j_prev = held.j0;
          p_of_masked(s, j_prev);
          to_pa(s);
          if (held.n >= 2) {
            const int sv = v_ready(j_prev);
            issue_pv(o, pa, sv);
            store_p(j_prev);
            p_of_masked(s_next, held.j1);
            w::wait<0>();
            release_v(sv);
            to_pa(s_next);
            j_prev = held.j1;
          }
        } else {
          issue_s(s);
          w::wait<0>();
          release_k();
          p_of(s, jf);
          to_pa(s);
          j_prev = jf, jf = next_tile(jf + 1);
        }
        for (; jf < held.j_stop; jf = next_tile(jf + 1)) {
          const int sv = v_ready(j_prev);
          issue_s(s);           // S_j = Q·K_jᵀ ...
          issue_pv(o, pa, sv);  // ... and O += P_{j−1}·V_{j−1} behind it
          store_p(j_prev);      // P_{j−1} leaves while both run
          w::wait<1>();         // S_j landed
          release_k();
          p_of(s, jf);
          w::wait<0>();  // O complete up to tile j − 1: P_{j−1}'s registers are free
          release_v(sv);
          to_pa(s);
          j_prev = jf;
        }
        const int sv = v_ready(j_prev);  // the last tile's P·V
        issue_pv(o, pa, sv);
        store_p(j_prev);
        w::wait<0>();
        release_v(sv);
      }

      // ---- the weights of dead tiles are 0; O and LSE ----------------------------------------------------------
      if constexpr (kWeights) {
        if (w_tma) {  // a zeroed staging buffer, stored once per dead tile
          if (w_issuer) tma::bulk_wait_read<0>();
          tma::bar_sync(wg_bar, 128);
          zero_staging<SL>(sP(0), ctid & 127);
          w::fence_proxy_async();
          tma::bar_sync(wg_bar, 128);
          if (w_issuer) {
            for (int j = 0; j < n_tiles; ++j)
              if (tile_class(j) == TileClass::kEmpty) store_staged(0, j * kN);
            tma::bulk_wait_read<0>();  // the zeros are read before the next block stages P there
          }
          tma::bar_sync(wg_bar, 128);
        } else {
          const float zeros[kNS][4] = {};
          for (int j = 0; j < n_tiles; ++j)
            if (tile_class(j) == TileClass::kEmpty)
              store_band<Num, kNS>(w_band, p.seqlen_k, zeros, sq - q_first, j * kN, sk, false, g, t);
        }
      } else {  // O /= Σ P; a row that sees no key has Σ = 0: O = 0
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const float l = prim::quad_sum(row_sum[r]);
          inv[r] = l > 0.f ? 1.f / l : 0.f;
        }
#pragma unroll
        for (int nt = 0; nt < kNO; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) o[0][nt][e] *= inv[e >> 1];
      }
      float lse[2];  // (max + log2 Σ)·ln 2 in natural-log units; −inf for a row that sees no key
#pragma unroll
      for (int r = 0; r < 2; ++r)
        lse[r] = inv[r] > 0.f ? (fbase[r] - __log2f(inv[r])) * 0.69314718055994531f : -INFINITY;
      store_lse_o<Num, kD>(p, b, h, seq.q_start, q_first, sq, lse, o[0], g, t);
    };
    if (weights) passes(std::true_type{});
    else passes(std::false_type{});
  }
  if (w_tma && (ctid & 127) == 0) tma::bulk_wait_all();  // every weights store is done before the CTA ends
#else
  __trap();  // built without sm_90a: the variant is sm90a-only, so run_fwd is never asked for it then
#endif
}

}  // namespace attnforge::fused
